"""The Distributed Map: ItemReader, ItemSelector, ItemBatcher, child executions bounded by
MaxConcurrency, tolerated failures, ResultWriter, Map Run records and redrive.

AWS references (shapes reproduced here):
- ItemReader: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html
  (an S3 listing item is {"Etag","Key","LastModified" (epoch seconds),"Size","StorageClass"}).
- ItemBatcher: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html
  (child input {"BatchInput": ..., "Items": [...]}).
- ResultWriter: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html
  (`<Prefix>/<map run id>/manifest.json` with DestinationBucket, MapRunArn and
  ResultFiles {FAILED, PENDING, SUCCEEDED: [{Key, Size}]}, result files SUCCEEDED_0.json /
  FAILED_0.json holding child execution records; the state's output becomes
  {"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}).
"""

from __future__ import annotations

import asyncio
import json
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
from sluice.local.workflow.itemreader import ItemReaderRunner
from sluice.local.workflow.models import ChildResult, dumps
from sluice.local.workflow.ports import EXECUTION_ROLE, ServiceError
from sluice.local.workflow.values import Scope

if TYPE_CHECKING:
    from sluice.local.workflow.interpreter import Deps
    from sluice.local.workflow.models import ExecutionRecord, MapRunRecord
    from sluice.local.workflow.tree import Machine, MapState, ResultWriter

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

    async def __call__(self, state: MapState, effective: Any, run: Run, ctx: dict[str, Any]) -> Any:
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
            items = await self._read_items(state, effective, ctx)
            selected = [
                select_item(state, effective, ctx, item_context(i, key, value))
                for i, (key, value) in enumerate(items)
            ]
            inputs = self._batch(state, effective, ctx, selected)
            pct, count = self._tolerance(state, effective, ctx)
            map_run = self.host.create_map_run(
                parent,
                name,
                label,
                max_concurrency(state, effective, ctx),
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
            writer_output = await self._write_results(state.writer, effective, ctx, map_run)
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
        return self._shape(map_run, transformation)["ALL"]

    # -- items ----------------------------------------------------------------------------

    async def _read_items(
        self, state: MapState, effective: Any, ctx: dict[str, Any]
    ) -> list[tuple[str | None, Any]]:
        reader = state.reader
        if reader is None:
            return map_items(state, effective, ctx)
        scope = Scope(effective, ctx)
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

    def _batch(
        self, state: MapState, effective: Any, ctx: dict[str, Any], items: list[Any]
    ) -> list[tuple[Any, int]]:
        """Child inputs with their item counts; one per item without an ItemBatcher."""
        batcher = state.batcher
        if batcher is None:
            return [(item, 1) for item in items]
        scope = Scope(effective, ctx)
        max_items = whole_number(batcher.max_items_per_batch, "MaxItemsPerBatch", scope)
        max_bytes = whole_number(batcher.max_input_bytes_per_batch, "MaxInputBytesPerBatch", scope)
        # AWS caps a child's input at 256 KiB whatever the batcher says.
        max_bytes = min(max_bytes or 262_144, 262_144)
        envelope: dict[str, Any] = {}
        if batcher.batch_input is not None:
            envelope["BatchInput"] = batcher.batch_input.evaluate(scope)
        base = len(dumps({**envelope, "Items": []}).encode())
        batches: list[tuple[Any, int]] = []
        current: list[Any] = []
        size = base
        for item in items:
            item_size = len(dumps(item).encode()) + (1 if current else 0)
            full = (max_items and len(current) >= max_items) or size + item_size > max_bytes
            if current and full:
                batches.append(({**envelope, "Items": current}, len(current)))
                current, size = [], base
                item_size -= 1
            current.append(item)
            size += item_size
        if current:
            batches.append(({**envelope, "Items": current}, len(current)))
        return batches

    def _tolerance(
        self, state: MapState, effective: Any, ctx: dict[str, Any]
    ) -> tuple[float | None, int | None]:
        scope = Scope(effective, ctx)
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
                {"input": child.input_text, "roleArn": child.role_arn},
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
                {"output": dumps(output)},
            )
        finally:
            child.stop = clock.now()
            child.done.set()

    # -- results --------------------------------------------------------------------------

    @staticmethod
    def child_document(child: ExecutionRecord) -> dict[str, Any]:
        """One entry of SUCCEEDED_n.json / FAILED_n.json, shaped like AWS's."""
        doc: dict[str, Any] = {
            "ExecutionArn": child.arn,
            "Input": child.input_text,
            "InputDetails": {"Included": True},
            "Name": child.name,
        }
        if child.status == "SUCCEEDED":
            doc["Output"] = dumps(child.output)
            doc["OutputDetails"] = {"Included": True}
        else:
            doc["Error"] = child.error or "States.Aborted"
            doc["Cause"] = child.cause or ""
        doc.update(
            {
                "RedriveCount": child.redrive_count,
                "RedriveStatus": "NOT_REDRIVABLE",
                "RedriveStatusReason": f"Execution is {child.status} and cannot be redriven",
                "StartDate": iso(child.start),
                "StateMachineArn": child.state_machine_arn,
                "Status": child.status,
                "StopDate": iso(child.stop or child.start),
            }
        )
        return doc

    def _shape(self, map_run: MapRunRecord, transformation: str) -> dict[str, list[Any]]:
        """Children's results by result file (SUCCEEDED, FAILED, PENDING) and, under "ALL", in
        item order: a succeeded child's output per `transformation` (NONE: its execution
        document; COMPACT: its output; FLATTEN: an array output's elements), anything else its
        execution document."""
        groups: dict[str, list[Any]] = {"SUCCEEDED": [], "FAILED": [], "PENDING": [], "ALL": []}
        for index in sorted(map_run.children):
            execution = map_run.children[index].execution
            status = execution.status
            group = (
                "SUCCEEDED"
                if status == "SUCCEEDED"
                else ("PENDING" if status == "RUNNING" else "FAILED")
            )
            entries: list[Any]
            if group == "SUCCEEDED" and transformation in ("COMPACT", "FLATTEN"):
                output = execution.output
                flat = transformation == "FLATTEN" and isinstance(output, list)
                entries = list(output) if flat else [output]
            else:
                entries = [self.child_document(execution)]
            groups[group].extend(entries)
            groups["ALL"].extend(entries)
        return groups

    async def _write_results(
        self, writer: ResultWriter, effective: Any, ctx: dict[str, Any], map_run: MapRunRecord
    ) -> dict[str, Any]:
        assert writer.parameters is not None
        params = writer.parameters.evaluate(Scope(effective, ctx))
        if not isinstance(params, dict) or not isinstance(params.get("Bucket"), str):
            raise runtime_error("ResultWriter parameters need a Bucket string")
        bucket: str = params["Bucket"]
        prefix: str = params.get("Prefix", "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        transformation = writer.transformation
        jsonl = writer.output_type == "JSONL"
        base = f"{prefix}{map_run.id}/"
        children = [map_run.children[i] for i in sorted(map_run.children)]
        groups = self._shape(map_run, transformation)
        del groups["ALL"]
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        try:
            for group, entries in groups.items():
                if not entries:
                    continue
                key = f"{base}{group}_0.{'jsonl' if jsonl else 'json'}"
                body = "\n".join(dumps(e) for e in entries) + "\n" if jsonl else dumps(entries)
                await self._s3("putObject", {"Bucket": bucket, "Key": key, "Body": body})
                files[group].append({"Key": key, "Size": len(body.encode())})
            manifest = {"DestinationBucket": bucket, "MapRunArn": map_run.arn, "ResultFiles": files}
            await self._s3(
                "putObject",
                {
                    "Bucket": bucket,
                    "Key": f"{base}manifest.json",
                    "Body": json.dumps(manifest, indent=2),
                },
            )
        except ServiceError as exc:
            raise StatesError("States.ResultWriterFailed", f"{exc.error}: {exc.cause}") from exc
        map_run.results_written = len(children)
        map_run.results_written_items = sum(c.items for c in children)
        return {
            "MapRunArn": map_run.arn,
            "ResultWriterDetails": {"Bucket": bucket, "Key": f"{base}manifest.json"},
        }
