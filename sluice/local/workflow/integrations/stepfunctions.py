"""Step Functions: `arn:aws:states:::states:startExecution` (request-response, `.sync`,
`.sync:2`, `.waitForTaskToken`), child executions on the local engine.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/connect-stepfunctions.html
- request-response: `{ExecutionArn, StartDate}` (with SdkHttpMetadata, SdkResponseMetadata);
- `.sync`: the child's DescribeExecution fields in PascalCase once it ends, `Output` as a JSON
  string; `.sync:2`: the same with `Input` and `Output` as JSON;
- a child that does not succeed fails the task with `States.TaskFailed`, Cause = that document;
- stopping the parent stops a `.sync` child.
The execution role needs `states:StartExecution` on the child state machine and, for `.sync`,
`states:DescribeExecution`/`states:StopExecution` on its executions and `events:PutTargets`,
`events:PutRule`, `events:DescribeRule` on the managed rule
(https://docs.aws.amazon.com/step-functions/latest/dg/stepfunctions-iam.html).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from sluice.local.workflow.errors import ApiError, StatesError
from sluice.local.workflow.integrations.base import (
    Pattern,
    TaskCall,
    TaskServices,
    as_text,
    http_metadata,
    params_object,
    require,
)
from sluice.local.workflow.models import dumps
from sluice.local.workflow.ports import EXECUTION_ROLE

if TYPE_CHECKING:
    from datetime import datetime

    from sluice.local.workflow.models import ExecutionRecord


def _millis(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def describe(child: ExecutionRecord, *, as_json: bool) -> dict[str, Any]:
    """The `.sync` (or, with `as_json`, `.sync:2`) result of a finished child execution."""
    doc: dict[str, Any] = {
        "ExecutionArn": child.arn,
        "Input": child.input if as_json else child.input_text,
        "InputDetails": {"Included": True},
        "Name": child.name,
        "StartDate": _millis(child.start),
        "StateMachineArn": child.state_machine_arn,
        "Status": child.status,
        "StopDate": _millis(child.stop),
    }
    if child.status == "SUCCEEDED":
        doc["Output"] = child.output if as_json else dumps(child.output)
        doc["OutputDetails"] = {"Included": True}
    for key, value in (("Error", child.error), ("Cause", child.cause)):
        if value is not None:
            doc[key] = value
    return doc


_MANAGED_RULE = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
_RULE_ACTIONS = ("events:PutTargets", "events:PutRule", "events:DescribeRule")
_WATCH_ACTIONS = ("states:DescribeExecution", "states:StopExecution")


def _region_account(arn: str) -> tuple[str, str]:
    parts = arn.split(":")
    return (parts[3], parts[4]) if len(parts) > 4 else ("", "")


def _authorize(call: TaskCall, services: TaskServices, needs: list[tuple[str, str]]) -> None:
    """Every (action, resource) must be allowed to the role the task acts as (the execution's,
    or the one its `Credentials` assumed)."""
    role = EXECUTION_ROLE.get() or call.execution.role_arn
    if services.authorize is None or not role:
        return
    for action, resource in needs:
        denial = services.authorize(role, action, resource)
        if denial is not None:
            raise StatesError("StepFunctions.AccessDeniedException", denial)


class StartExecution:
    """`states:startExecution` on the local engine."""

    patterns = frozenset(
        {Pattern.REQUEST_RESPONSE, Pattern.SYNC, Pattern.SYNC_JSON, Pattern.CALLBACK}
    )

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Start the child; for `.sync`/`.sync:2` wait for it and return its description."""
        params = params_object(call)
        require(params, call, "StateMachineArn")
        host = services.executions
        if host is None:
            raise StatesError("States.TaskFailed", "no execution host is configured")
        machine_arn = params["StateMachineArn"]
        sync = call.resource.pattern in (Pattern.SYNC, Pattern.SYNC_JSON)
        needs = [("states:StartExecution", machine_arn)]
        if sync:
            region, account = _region_account(machine_arn)
            rule = f"arn:aws:events:{region}:{account}:rule/{_MANAGED_RULE}"
            needs += [(action, rule) for action in _RULE_ACTIONS]
        _authorize(call, services, needs)
        text = as_text(params["Input"]) if "Input" in params else None
        try:
            child = host.start_execution(machine_arn, text, params.get("Name"))
        except ApiError as exc:
            name = exc.type_name.removesuffix("Exception")
            raise StatesError(f"StepFunctions.{name}Exception", exc.message) from exc
        started = {"ExecutionArn": child.arn, "StartDate": _millis(child.start)}
        if not sync:
            return http_metadata(started)
        try:
            _authorize(call, services, [(a, child.arn) for a in _WATCH_ACTIONS])
        except StatesError:
            host.stop_execution(child.arn, "States.Aborted", "the parent may not watch it")
            raise
        call.events.submitted(started)
        try:
            done = await host.wait(child.arn)
        except asyncio.CancelledError:
            # The parent stopped (or its task timed out): a `.sync` child is stopped with it.
            host.stop_execution(child.arn, "States.Aborted", "the parent execution stopped")
            raise
        result = describe(done, as_json=call.resource.pattern is Pattern.SYNC_JSON)
        if done.status != "SUCCEEDED":
            raise StatesError("States.TaskFailed", json.dumps(describe(done, as_json=False)))
        return result
