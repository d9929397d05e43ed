"""The Distributed Map: reads its items (`itemreader.py`), selects and batches them
(`itembatcher.py`), runs them as child executions bounded by MaxConcurrency with tolerated
failures, Map Run records and redrive (here), and shapes or exports the results
(`resultwriter.py`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sluice.local.workflow.errors import StatesError, runtime_error
from sluice.local.workflow.interpreter import (
    Interpreter,
    Run,
    iso,
    item_context,
    map_items,
    max_concurrency,
    select_item,
    whole_number,
)
from sluice.local.workflow.itembatcher import batch_items
from sluice.local.workflow.itemreader import ItemReaderRunner
from sluice.local.workflow.models import ChildResult, dumps
from sluice.local.workflow.ports import EXECUTION_ROLE, ServiceError
from sluice.local.workflow.resultwriter import shape_results, write_results

if TYPE_CHECKING:
    from sluice.local.workflow.interpreter import Deps
    from sluice.local.workflow.models import ExecutionRecord, MapRunRecord
    from sluice.local.workflow.tree import Machine, MapState
    from sluice.local.workflow.values import Scope

THRESHOLD_ERROR = "States.ExceedToleratedFailureThreshold"


class MapRunHost(Protocol):
    """The engine side of a Distributed Map: it owns Map Run and child execution records."""

    def create_map_run(
        self,
        parent: ExecutionRecord,
        state_name: str,
        label: str,
        max_concurrency: int,
        tolerated_percentage: float,
        tolerated_count: int,
    ) -> MapRunRecord:
        """Register and return a new Map Run of `parent`'s state `state_name`."""
        ...

    def redrive_child(self, child: ExecutionRecord) -> ExecutionRecord:
        """Reopen an unsuccessful child for a redrive (same ARN, redrive count up)."""
        ...

    def create_child(
        self,
        map_run: MapRunRecord,
        parent: ExecutionRecord,
        label: str,
        execution_type: str,
        child_input: Any,
    ) -> ExecutionRecord:
        """Register and return a new RUNNING child execution of `map_run`."""
        ...


@dataclass(frozen=True)
class _Tolerance:
    """ToleratedFailurePercentage/Count; with neither set nothing is tolerated (AWS default)."""

    percentage: float | None
    count: int | None

    def exceeded(self, failed_items: int, total_items: int) -> bool:
        if self.percentage is None and self.count is None:
            return failed_items > 0
        if self.count is not None and failed_items > self.count:
            return True
        if self.percentage is None or total_items == 0:
            return False
        return failed_items * 100.0 / total_items > self.percentage


class DistributedMap:
    """Runs Map states whose ItemProcessor has `ProcessorConfig.Mode: DISTRIBUTED`."""

    def __init__(self, deps: Deps, host: MapRunHost, interpreter: Interpreter):
        self.deps = deps
        self.host = host
        self.interpreter = interpreter
        self.reader = ItemReaderRunner(self._s3)

    async def __call__(self, state: MapState, scope: Scope, run: Run) -> Any:
        """Run one Distributed Map state; returns the state's result (before ResultSelector).

        Raises:
            StatesError: `States.ExceedToleratedFailureThreshold` above the tolerance,
            `States.ItemReaderFailed` / `States.ResultWriterFailed` for S3 failures,
            `States.Runtime` for bad paths or item shapes.
        """
        name = state.name
        processor = state.processor
        assert processor is not None
        label = state.label or name
        parent = run.execution
        previous = parent.map_runs.get(name) if run.redrive and run.top_level else None

        if previous is not None:
            map_run = previous
            inputs = map_run.inputs
            map_run.redrive_count += 1
            map_run.redrive_date = self.deps.clock.now()
            map_run.status = "RUNNING"
            map_run.stop = None
            parent.record(
                map_run.redrive_date,
                "MapRunRedriven",
                "mapRunRedrivenEventDetails",
                {"mapRunArn": map_run.arn, "redriveCount": map_run.redrive_count},
            )
        else:
            items = await self._read_items(state, scope)
            selected = [
                select_item(state, scope, item_context(i, key, value))
                for i, (key, value) in enumerate(items)
            ]
            inputs = batch_items(state.batcher, scope, selected)
            pct, count = self._tolerance(state, scope)
            map_run = self.host.create_map_run(
                parent,
                name,
                label,
                max_concurrency(state, scope),
                -1.0 if pct is None else pct,
                -1 if count is None else count,
            )
            map_run.total_items = len(selected)
            map_run.total_children = len(inputs)
            map_run.inputs = inputs
            if run.top_level:
                parent.map_runs[name] = map_run
        tolerance = _Tolerance(
            None
            if map_run.tolerated_failure_percentage < 0
            else map_run.tolerated_failure_percentage,
            None if map_run.tolerated_failure_count < 0 else map_run.tolerated_failure_count,
        )
        parent.record(
            self.deps.clock.now(),
            "MapRunStarted",
            "mapRunStartedEventDetails",
            {"mapRunArn": map_run.arn},
        )
        try:
            exceeded = await self._run_children(
                processor,
                state.execution_type,
                label,
                map_run,
                parent,
                inputs,
                tolerance,
            )
        except asyncio.CancelledError:
            map_run.status, map_run.stop = "ABORTED", self.deps.clock.now()
            raise
        map_run.status = "FAILED" if exceeded else "SUCCEEDED"
        map_run.stop = self.deps.clock.now()
        writer_output = None
        if state.writer is not None and state.writer.resource is not None:
            writer_output = await write_results(self._s3, state.writer, scope, map_run)
        if exceeded:
            cause = "The specified tolerated failure threshold was exceeded"
            parent.record(
                self.deps.clock.now(),
                "MapRunFailed",
                "mapRunFailedEventDetails",
                {"error": THRESHOLD_ERROR, "cause": cause},
            )
            raise StatesError(THRESHOLD_ERROR, cause)
        parent.record(self.deps.clock.now(), "MapRunSucceeded")
        if writer_output is not None:
            return writer_output
        # Without an export the result is COMPACT unless a WriterConfig says otherwise; an
        # unsuccessful child comes back as its execution result whatever the transformation.
        transformation = "COMPACT" if state.writer is None else state.writer.transformation
        return shape_results(map_run, transformation)["ALL"]

    # -- items ----------------------------------------------------------------------------

    async def _read_items(self, state: MapState, scope: Scope) -> list[tuple[str | None, Any]]:
        reader = state.reader
        if reader is None:
            return map_items(state, scope)
        params = {} if reader.parameters is None else reader.parameters.evaluate(scope)
        if not isinstance(params, dict):
            raise runtime_error("ItemReader parameters must be an object")
        config = reader.config
        limit = whole_number(config.max_items, "MaxItemsPath", scope)
        try:
            if reader.action == "listObjectsV2":
                items = await self.reader.list_objects(params)
            else:
                items = await self.reader.read_object(params, config)
        except ServiceError as exc:
            raise StatesError("States.ItemReaderFailed", f"{exc.error}: {exc.cause}") from exc
        if limit:  # 0 means no limit, as on AWS
            items = items[:limit]
        return [(None, item) for item in items]

    async def _s3(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        if self.deps.sdk is None:
            raise ServiceError("States.TaskFailed", "no SDK caller is configured")
        return await self.deps.sdk.call("s3", action, params)

    def _tolerance(self, state: MapState, scope: Scope) -> tuple[float | None, int | None]:
        node = state.tolerated_failure_percentage
        pct: Any = None if node is None else node.evaluate(scope)
        node = state.tolerated_failure_count
        count: Any = None if node is None else node.evaluate(scope)
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        if pct is not None and (
            not isinstance(pct, int | float) or isinstance(pct, bool) or not 0 <= pct <= 100
        ):
            raise runtime_error("ToleratedFailurePercentage must be a number in [0, 100]")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise runtime_error("ToleratedFailureCount must be a non-negative integer")
        return (None if pct is None else float(pct)), count

    # -- children -------------------------------------------------------------------------

    async def _run_children(
        self,
        processor: Machine,
        execution_type: str,
        label: str,
        map_run: MapRunRecord,
        parent: ExecutionRecord,
        inputs: list[tuple[Any, int]],
        tolerance: _Tolerance,
    ) -> bool:
        """Run every child not already SUCCEEDED; True when the tolerance was exceeded."""
        limit = map_run.max_concurrency
        gate = asyncio.Semaphore(limit) if limit > 0 else None
        exceeded = asyncio.Event()

        def failed_items() -> int:
            return sum(
                c.items
                for c in map_run.children.values()
                if c.execution.status in ("FAILED", "TIMED_OUT", "ABORTED")
            )

        async def one(index: int, child_input: Any, items: int) -> None:
            if gate is not None:
                await gate.acquire()
            try:
                if exceeded.is_set():
                    return
                earlier = failed.get(index)
                if earlier is not None and execution_type == "STANDARD":
                    # AWS redrives an unsuccessful STANDARD child in place: same ARN, its
                    # redrive count up, resumed in the state it failed in.
                    child = self.host.redrive_child(earlier)
                else:
                    child = self.host.create_child(
                        map_run, parent, label, execution_type, child_input
                    )
                map_run.children[index] = ChildResult(index, child, items)
                await self._run_child(processor, child, redrive=child.redrive_count > 0)
                if tolerance.exceeded(failed_items(), map_run.total_items):
                    exceeded.set()
            finally:
                if gate is not None:
                    gate.release()

        todo = [
            (i, child_input, items)
            for i, (child_input, items) in enumerate(inputs)
            if i not in map_run.children or map_run.children[i].execution.status != "SUCCEEDED"
        ]
        failed: dict[int, ExecutionRecord] = {}
        for index, _, _ in todo:
            # Redriven children start over against the tolerance.
            earlier = map_run.children.pop(index, None)
            if earlier is not None:
                failed[index] = earlier.execution
        tasks = [asyncio.ensure_future(one(*job)) for job in todo]
        waiter = asyncio.ensure_future(exceeded.wait())
        try:
            # Wait on the unfinished children only: a finished task in the wait set would make
            # every wait return at once and spin the loop until the last child ends.
            pending: set[asyncio.Future[Any]] = set(tasks)
            while pending and not exceeded.is_set():
                _, pending = await asyncio.wait(
                    [*pending, waiter], return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(waiter)
        finally:
            for task in [*tasks, waiter]:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, waiter, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return exceeded.is_set() or tolerance.exceeded(failed_items(), map_run.total_items)

    async def _run_child(
        self, processor: Machine, child: ExecutionRecord, *, redrive: bool = False
    ) -> None:
        # A child runs as its parent's role (the Map state's execution role).
        EXECUTION_ROLE.set(child.role_arn or None)
        clock = self.deps.clock
        if not redrive:
            child.record(
                clock.now(),
                "ExecutionStarted",
                "executionStartedEventDetails",
                {
                    "input": child.input_text,
                    "inputDetails": {"truncated": False},
                    "roleArn": child.role_arn,
                },
            )
        context = {
            "Execution": {
                "Id": child.arn,
                "Name": child.name,
                "Input": child.input,
                "StartTime": iso(child.start),
                "RoleArn": child.role_arn,
                "RedriveCount": child.redrive_count,
            },
            "StateMachine": {"Id": child.state_machine_arn, "Name": child.state_machine_name},
        }
        try:
            output = await self.interpreter.run_machine(
                processor, child.input, Run(child, context, top_level=False, redrive=redrive)
            )
        except StatesError as err:
            child.status, child.error, child.cause = "FAILED", err.error, err.cause
            child.record(
                clock.now(),
                "ExecutionFailed",
                "executionFailedEventDetails",
                {"error": err.error, "cause": err.cause},
            )
        except asyncio.CancelledError:
            child.status = "ABORTED"
            child.record(clock.now(), "ExecutionAborted", "executionAbortedEventDetails", {})
            raise
        else:
            child.status, child.output = "SUCCEEDED", output
            child.record(
                clock.now(),
                "ExecutionSucceeded",
                "executionSucceededEventDetails",
                {"output": dumps(output), "outputDetails": {"truncated": False}},
            )
        finally:
            child.stop = clock.now()
            self.interpreter.tasks.services.tokens.close_execution(child.arn)
            child.done.set()
