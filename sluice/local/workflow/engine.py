"""The workflow engine: state machines, executions (as asyncio tasks), Map Runs, redrive.

Every method runs on the engine's event loop. From another thread use `ThreadedWorkflowService`
(see `service.py`), which submits calls to that loop.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from sluice.local.workflow import definition as definition_module
from sluice.local.workflow import limits
from sluice.local.workflow.distributed import DistributedMap
from sluice.local.workflow.errors import ApiError, DefinitionError, StatesError
from sluice.local.workflow.integrations import TaskServices, TaskTokens
from sluice.local.workflow.integrations.dispatch import TaskDispatcher
from sluice.local.workflow.integrations.express import express_refusal
from sluice.local.workflow.interpreter import Deps, Interpreter, Run, iso
from sluice.local.workflow.models import (
    TERMINAL,
    ExecutionRecord,
    MapRunRecord,
    StateMachineRecord,
    dumps,
)
from sluice.local.workflow.ports import (
    EXECUTION_ROLE,
    Clock,
    FunctionInvoker,
    SdkCaller,
    SystemClock,
)
from sluice.local.workflow.references import processor_of

if TYPE_CHECKING:
    from datetime import datetime

    from sluice.local.workflow.integrations.base import Authorizer
    from sluice.local.workflow.tree import Machine

_NAME = re.compile(r"^[A-Za-z0-9_.\-~$@+=,]{1,80}$")


class _ExecutionTimedOut(Exception):
    def __init__(self, limit: Any):
        super().__init__(limit)
        self.limit = limit


class WorkflowEngine:
    """Manages state machines and runs their executions on the current event loop."""

    def __init__(
        self,
        *,
        invoker: FunctionInvoker | None = None,
        sdk: SdkCaller | None = None,
        clock: Clock | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
        authorize: Authorizer | None = None,
    ):
        """`authorize(role, action, resource)` decides what an execution's role may do beyond
        the SDK caller and invoker (which carry the role themselves): None allows everything."""
        self.deps = Deps(
            clock=clock or SystemClock(), invoker=invoker, sdk=sdk, region=region, account=account
        )
        self.tokens = TaskTokens()
        services = TaskServices(self.deps.clock, self.tokens, invoker, sdk, self, authorize)
        self.interpreter = Interpreter(self.deps, tasks=TaskDispatcher(services, region))
        self.interpreter.distributed = DistributedMap(self.deps, self, self.interpreter)
        self.state_machines: dict[str, StateMachineRecord] = {}
        self.executions: dict[str, ExecutionRecord] = {}
        self.map_runs: dict[str, MapRunRecord] = {}

    def _arn(self, kind: str, rest: str) -> str:
        return f"arn:aws:states:{self.deps.region}:{self.deps.account}:{kind}:{rest}"

    def _now(self) -> datetime:
        return self.deps.clock.now()

    # -- state machines ------------------------------------------------------------------

    def create_state_machine(
        self, name: str, definition: str, role_arn: str, type_: str = "STANDARD"
    ) -> StateMachineRecord:
        """Create (or, with identical settings, return) a state machine.

        Raises:
            ApiError: InvalidName, InvalidDefinition, StateMachineAlreadyExists,
            StateMachineTypeNotSupported.
        """
        if not _NAME.match(name or ""):
            raise ApiError("InvalidName", f"Invalid Name: '{name}'")
        if type_ not in ("STANDARD", "EXPRESS"):
            raise ApiError("StateMachineTypeNotSupported", f"unknown type {type_}")
        parsed = self._parse(definition, type_)
        arn = self._arn("stateMachine", name)
        existing = self.state_machines.get(arn)
        if existing is not None:
            if (existing.definition, existing.role_arn, existing.type) == (
                definition,
                role_arn,
                type_,
            ):
                return existing
            raise ApiError("StateMachineAlreadyExists", f"State Machine Already Exists: '{arn}'")
        record = StateMachineRecord(arn, name, definition, parsed, role_arn, type_, self._now())
        self.state_machines[arn] = record
        return record

    @staticmethod
    def _parse(definition: str, type_: str) -> Machine:
        too_long = limits.length_error("definition", definition, limits.DEFINITION_CHARS)
        if too_long is not None:
            raise too_long
        try:
            parsed = definition_module.parse(definition)
            refusal = express_refusal(parsed, type_ == "EXPRESS")
            if refusal is not None:
                raise refusal
            return parsed
        except DefinitionError as exc:
            # AWS's shape: `Invalid State Machine Definition: '<CODE>: <what> at <pointer>'`.
            raise ApiError(
                "InvalidDefinition", f"Invalid State Machine Definition: '{exc}'"
            ) from exc

    def state_machine(self, arn: str) -> StateMachineRecord:
        """Look up a state machine.

        Raises:
            ApiError: InvalidArn, StateMachineDoesNotExist.
        """
        if not arn.startswith("arn:aws:states:"):
            raise ApiError("InvalidArn", f"Invalid Arn: '{arn}'")
        record = self.state_machines.get(arn)
        if record is None:
            raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        return record

    def update_state_machine(
        self, arn: str, definition: str | None = None, role_arn: str | None = None
    ) -> StateMachineRecord:
        """Replace definition and/or role; running executions keep the old definition."""
        record = self.state_machine(arn)
        if definition is not None:
            record.parsed = self._parse(definition, record.type)
            record.definition = definition
        if role_arn is not None:
            record.role_arn = role_arn
        record.updated = self._now()
        record.revision += 1
        return record

    def delete_state_machine(self, arn: str) -> None:
        """Delete a state machine (running executions are stopped, as AWS eventually does)."""
        record = self.state_machines.pop(arn, None)
        if record is None:
            return
        for execution in self.executions.values():
            if execution.state_machine_arn == arn and execution.status == "RUNNING":
                self.stop_execution(execution.arn, "States.Aborted", "state machine deleted")

    # -- executions ----------------------------------------------------------------------

    def start_execution(
        self, state_machine_arn: str, input_text: str | None = None, name: str | None = None
    ) -> ExecutionRecord:
        """Start an execution as a task on the running loop; returns its record at once.

        A STANDARD execution with the name and input of a running one returns that one
        (AWS's idempotency); any other reuse of a name is rejected.

        Raises:
            ApiError: InvalidName, InvalidExecutionInput, ExecutionAlreadyExists,
            StateMachineDoesNotExist.
        """
        machine = self.state_machine(state_machine_arn)
        text = "{}" if input_text is None else input_text
        too_long = limits.length_error("input", text, limits.PAYLOAD_BYTES)
        if too_long is not None:
            raise too_long
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ApiError("InvalidExecutionInput", f"Invalid execution input: {exc}") from exc
        if name is None:
            name = str(uuid.uuid4())
        elif not _NAME.match(name):
            raise ApiError("InvalidName", f"Invalid Name: '{name}'")
        if machine.type == "EXPRESS":
            # An Express execution's ARN ends with an id after its name, as AWS's do
            # (`...:express:<machine>:<name>:<uuid>`), so its name need not be unique.
            arn = self._arn("express", f"{machine.name}:{name}:{uuid.uuid4()}")
        else:
            arn = self._arn("execution", f"{machine.name}:{name}")
        existing = self.executions.get(arn)
        if existing is not None and machine.type == "STANDARD":
            if existing.status == "RUNNING" and existing.input_text == text:
                return existing
            raise ApiError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
        execution = ExecutionRecord(
            arn=arn,
            name=name,
            state_machine_arn=machine.arn,
            state_machine_name=machine.name,
            type=machine.type,
            input=data,
            input_text=text,
            role_arn=machine.role_arn,
            start=self._now(),
            definition=machine.definition,
            parsed=machine.parsed,
            revision=machine.revision,
        )
        self.executions[arn] = execution
        execution.record(
            execution.start,
            "ExecutionStarted",
            "executionStartedEventDetails",
            {"input": text, "inputDetails": {"truncated": False}, "roleArn": machine.role_arn},
        )
        execution.task = asyncio.get_running_loop().create_task(
            self._run(execution, machine.parsed, data, None, redrive=False)
        )
        return execution

    async def start_sync_execution(
        self, state_machine_arn: str, input_text: str | None = None, name: str | None = None
    ) -> ExecutionRecord:
        """Run an EXPRESS execution to its end and return it.

        Raises:
            ApiError: StateMachineTypeNotSupported for a STANDARD state machine.
        """
        if self.state_machine(state_machine_arn).type != "EXPRESS":
            raise ApiError(
                "StateMachineTypeNotSupported",
                "This operation is not supported by this type of state machine",
            )
        execution = self.start_execution(state_machine_arn, input_text, name)
        await execution.done.wait()
        return execution

    async def _run(
        self,
        execution: ExecutionRecord,
        machine: Machine,
        data: Any,
        start_at: str | None,
        *,
        redrive: bool,
    ) -> None:
        context = {
            "Execution": {
                "Id": execution.arn,
                "Name": execution.name,
                "Input": execution.input,
                "StartTime": iso(execution.start),
                "RoleArn": execution.role_arn,
                "RedriveCount": execution.redrive_count,
            },
            "StateMachine": {
                "Id": execution.state_machine_arn,
                "Name": execution.state_machine_name,
            },
        }
        EXECUTION_ROLE.set(execution.role_arn or None)
        run = Run(execution, context, redrive=redrive)
        limit = machine.timeout_seconds
        try:
            output = await self.interpreter.with_timeout(
                self.interpreter.run_machine(machine, data, run, start_at),
                None if limit is None else float(limit),
                on_timeout=lambda: _ExecutionTimedOut(limit),
            )
        except _ExecutionTimedOut as timeout:
            cause = f"The execution did not finish within TimeoutSeconds ({timeout.limit})"
            execution.status, execution.error, execution.cause = (
                "TIMED_OUT",
                "States.Timeout",
                cause,
            )
            execution.record(
                self._now(),
                "ExecutionTimedOut",
                "executionTimedOutEventDetails",
                {"error": "States.Timeout", "cause": cause},
            )
        except StatesError as err:
            execution.status, execution.error, execution.cause = "FAILED", err.error, err.cause
            execution.record(
                self._now(),
                "ExecutionFailed",
                "executionFailedEventDetails",
                {"error": err.error, "cause": err.cause},
            )
        except Exception as exc:
            # An engine defect fails this execution instead of leaving it RUNNING forever.
            execution.status, execution.error = "FAILED", "States.Runtime"
            execution.cause = f"internal error: {exc!r}"
            execution.record(
                self._now(),
                "ExecutionFailed",
                "executionFailedEventDetails",
                {"error": execution.error, "cause": execution.cause},
            )
        except asyncio.CancelledError:
            # Only StopExecution cancels an execution's task; it already set the status.
            if execution.status == "RUNNING":
                execution.status = "ABORTED"
        else:
            execution.status, execution.output = "SUCCEEDED", output
            execution.record(
                self._now(),
                "ExecutionSucceeded",
                "executionSucceededEventDetails",
                {"output": dumps(output), "outputDetails": {"truncated": False}},
            )
        finally:
            execution.stop = execution.stop if execution.status == "ABORTED" else self._now()
            self.tokens.close_execution(execution.arn)
            execution.done.set()

    def execution(self, arn: str) -> ExecutionRecord:
        """Look up an execution (top-level or Map child).

        Raises:
            ApiError: InvalidArn, ExecutionDoesNotExist.
        """
        if not arn.startswith("arn:aws:states:"):
            raise ApiError("InvalidArn", f"Invalid Arn: '{arn}'")
        record = self.executions.get(arn)
        if record is None:
            raise ApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        return record

    def list_executions(
        self,
        state_machine_arn: str | None = None,
        map_run_arn: str | None = None,
        status: str | None = None,
    ) -> list[ExecutionRecord]:
        """Executions of a state machine (top-level only) or of a Map Run, newest first."""
        if state_machine_arn is not None:
            self.state_machine(state_machine_arn)
        if map_run_arn is not None:
            self.map_run(map_run_arn)
        found = [
            e
            for e in self.executions.values()
            if (map_run_arn is not None and e.map_run_arn == map_run_arn)
            or (
                map_run_arn is None
                and e.map_run_arn is None
                and e.state_machine_arn == state_machine_arn
            )
        ]
        if status is not None:
            found = [e for e in found if e.status == status]
        return sorted(found, key=lambda e: e.start, reverse=True)

    def stop_execution(
        self, arn: str, error: str | None = None, cause: str | None = None
    ) -> ExecutionRecord:
        """Abort a running execution (no-op on a finished one)."""
        execution = self.execution(arn)
        if execution.status != "RUNNING":
            return execution
        execution.status, execution.error, execution.cause = "ABORTED", error, cause
        execution.stop = self._now()
        details = {k: v for k, v in (("error", error), ("cause", cause)) if v is not None}
        execution.record(
            execution.stop, "ExecutionAborted", "executionAbortedEventDetails", details
        )
        if execution.task is not None:
            execution.task.cancel()
        return execution

    async def wait(self, arn: str) -> ExecutionRecord:
        """Wait for an execution to reach a terminal status."""
        execution = self.execution(arn)
        await execution.done.wait()
        return execution

    async def redrive_execution(self, arn: str) -> ExecutionRecord:
        """Restart a failed/aborted execution from the state where it stopped.

        A Distributed Map state re-runs only its children that did not succeed.

        Raises:
            ApiError: ExecutionNotRedrivable when not FAILED/TIMED_OUT/ABORTED or nothing to
            restart.
        """
        execution = self.execution(arn)
        if (
            execution.status not in ("FAILED", "TIMED_OUT", "ABORTED")
            or (execution.failed_state is None)
            or execution.map_run_arn is not None
            or execution.type == "EXPRESS"
        ):
            raise ApiError(
                "ExecutionNotRedrivable",
                f"Execution '{arn}' is {execution.status} and cannot be redriven",
            )
        if execution.task is not None and not execution.task.done():
            await asyncio.gather(execution.task, return_exceptions=True)
        machine = self.state_machine(execution.state_machine_arn)
        execution.status, execution.error, execution.cause = "RUNNING", None, None
        execution.stop = None
        execution.redrive_count += 1
        execution.redrive_date = self._now()
        execution.done = asyncio.Event()
        execution.record(
            execution.redrive_date,
            "ExecutionRedriven",
            "executionRedrivenEventDetails",
            {"redriveCount": execution.redrive_count},
        )
        execution.task = asyncio.get_running_loop().create_task(
            self._run(
                execution,
                machine.parsed,
                execution.failed_input,
                execution.failed_state,
                redrive=True,
            )
        )
        return execution

    # -- Map Runs (the MapRunHost protocol) ------------------------------------------------

    def create_map_run(
        self,
        parent: ExecutionRecord,
        state_name: str,
        label: str,
        max_concurrency: int,
        tolerated_percentage: float,
        tolerated_count: int,
    ) -> MapRunRecord:
        """Register a Map Run of `parent`."""
        run_id = str(uuid.uuid4())
        arn = self._arn("mapRun", f"{parent.state_machine_name}/{label}:{run_id}")
        record = MapRunRecord(
            arn=arn,
            id=run_id,
            execution_arn=parent.arn,
            state_machine_arn=parent.state_machine_arn,
            state_name=state_name,
            start=self._now(),
            max_concurrency=max_concurrency,
            tolerated_failure_percentage=tolerated_percentage,
            tolerated_failure_count=tolerated_count,
        )
        self.map_runs[arn] = record
        return record

    def create_child(
        self,
        map_run: MapRunRecord,
        parent: ExecutionRecord,
        label: str,
        execution_type: str,
        child_input: Any,
    ) -> ExecutionRecord:
        """Register a child execution of `map_run`, named by a fresh UUID like on AWS."""
        name = str(uuid.uuid4())
        kind = "express" if execution_type == "EXPRESS" else "execution"
        child = ExecutionRecord(
            arn=self._arn(kind, f"{parent.state_machine_name}/{label}:{name}"),
            name=name,
            state_machine_arn=f"{parent.state_machine_arn}/{label}",
            state_machine_name=f"{parent.state_machine_name}/{label}",
            type=execution_type,
            input=child_input,
            input_text=dumps(child_input),
            role_arn=parent.role_arn,
            start=self._now(),
            map_run_arn=map_run.arn,
            label=label,
        )
        if parent.definition is not None and parent.parsed is not None:
            child.definition, child.parsed = processor_of(parent.definition, parent.parsed, label)
        self.executions[child.arn] = child
        return child

    def redrive_child(self, child: ExecutionRecord) -> ExecutionRecord:
        """Reopen an unsuccessful Map Run child for its Map Run's redrive (AWS keeps the ARN and
        counts the redrive on the child)."""
        child.status, child.error, child.cause, child.output = "RUNNING", None, None, None
        child.stop = None
        child.redrive_count += 1
        child.redrive_date = self._now()
        child.done = asyncio.Event()
        child.record(
            child.redrive_date,
            "ExecutionRedriven",
            "executionRedrivenEventDetails",
            {"redriveCount": child.redrive_count},
        )
        return child

    def map_run(self, arn: str) -> MapRunRecord:
        """Look up a Map Run.

        Raises:
            ApiError: ResourceNotFound.
        """
        record = self.map_runs.get(arn)
        if record is None:
            raise ApiError("ResourceNotFound", f"Map Run Does Not Exist: '{arn}'")
        return record

    def list_map_runs(self, execution_arn: str) -> list[MapRunRecord]:
        """Map Runs started by an execution, newest first."""
        self.execution(execution_arn)
        runs = [r for r in self.map_runs.values() if r.execution_arn == execution_arn]
        return sorted(runs, key=lambda r: r.start, reverse=True)

    async def close(self) -> None:
        """Cancel every running execution and wait for them to unwind."""
        tasks = [e.task for e in self.executions.values() if e.task and not e.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def is_terminal(status: str) -> bool:
    """True for SUCCEEDED, FAILED, TIMED_OUT and ABORTED."""
    return status in TERMINAL
