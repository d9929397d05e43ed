"""The Step Functions API (AWS JSON 1.0, `X-Amz-Target: AWSStepFunctions.<Action>`) over the
engine. Timestamps are epoch seconds, as the JSON protocol carries them."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from sluice.local.workflow import definition as definition_module
from sluice.local.workflow import limits
from sluice.local.workflow.errors import ApiError, DefinitionError
from sluice.local.workflow.integrations.express import express_refusal
from sluice.local.workflow.models import dumps
from sluice.local.workflow.references import variable_references

if TYPE_CHECKING:
    from datetime import datetime

    from sluice.local.workflow.engine import WorkflowEngine
    from sluice.local.workflow.models import ExecutionRecord, MapRunRecord, StateMachineRecord

_PREFIX = "AWSStepFunctions."


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


def _page(items: list[Any], body: dict[str, Any], key: str) -> dict[str, Any]:
    """Paginate with an opaque nextToken (the offset, base64) and maxResults (default 100)."""
    start = int(base64.b64decode(body["nextToken"]).decode()) if body.get("nextToken") else 0
    size = int(body.get("maxResults") or 100)
    page = items[start : start + size]
    doc: dict[str, Any] = {key: page}
    if start + size < len(items):
        doc["nextToken"] = base64.b64encode(str(start + size).encode()).decode()
    return doc


def _machine(record: StateMachineRecord) -> dict[str, Any]:
    return _clean(
        {
            "stateMachineArn": record.arn,
            "name": record.name,
            "status": "ACTIVE",
            "definition": record.definition,
            "roleArn": record.role_arn,
            "type": record.type,
            "creationDate": _ts(record.created),
            "loggingConfiguration": {"level": "OFF", "includeExecutionData": False},
            "tracingConfiguration": {"enabled": False},
            "revisionId": str(record.revision),
            "variableReferences": variable_references(record.parsed) or None,
        }
    )


def _machine_for_execution(engine: WorkflowEngine, record: ExecutionRecord) -> dict[str, Any]:
    """DescribeStateMachineForExecution: the definition the execution runs (the state machine's
    as it was when the execution started; a Map Run child's ItemProcessor, with `mapRunArn` and
    `label`)."""
    machine = engine.state_machines.get(record.state_machine_arn)
    if record.map_run_arn is not None:
        updated = record.start
    elif machine is not None:
        updated = machine.updated or machine.created
    else:
        updated = record.start
    return _clean(
        {
            "stateMachineArn": record.state_machine_arn,
            "name": record.state_machine_name,
            "definition": record.definition if record.definition is not None else "{}",
            "roleArn": record.role_arn,
            "updateDate": _ts(updated),
            "loggingConfiguration": {"level": "OFF", "includeExecutionData": False},
            "tracingConfiguration": {"enabled": False},
            "mapRunArn": record.map_run_arn,
            "label": record.label,
            "revisionId": None if record.revision is None else str(record.revision),
            "variableReferences": (
                variable_references(record.parsed) or None if record.parsed else None
            ),
        }
    )


def _execution(record: ExecutionRecord, *, full: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "executionArn": record.arn,
        "stateMachineArn": record.state_machine_arn,
        "name": record.name,
        "status": record.status,
        "startDate": _ts(record.start),
        "stopDate": _ts(record.stop),
        "mapRunArn": record.map_run_arn,
        "redriveCount": record.redrive_count,
        "redriveDate": _ts(record.redrive_date),
    }
    if full:
        doc.update(
            {
                "input": record.input_text,
                "inputDetails": {"included": True},
                "output": dumps(record.output) if record.status == "SUCCEEDED" else None,
                "outputDetails": {"included": True} if record.status == "SUCCEEDED" else None,
                "error": record.error,
                "cause": record.cause,
                "redriveStatus": (
                    "REDRIVABLE"
                    if record.status in ("FAILED", "ABORTED", "TIMED_OUT")
                    and record.failed_state is not None
                    and record.type != "EXPRESS"
                    else "NOT_REDRIVABLE"
                ),
            }
        )
    return _clean(doc)


def _map_run(record: MapRunRecord) -> dict[str, Any]:
    return _clean(
        {
            "mapRunArn": record.arn,
            "executionArn": record.execution_arn,
            "status": record.status,
            "startDate": _ts(record.start),
            "stopDate": _ts(record.stop),
            "maxConcurrency": record.max_concurrency,
            "toleratedFailurePercentage": max(0.0, record.tolerated_failure_percentage),
            "toleratedFailureCount": max(0, record.tolerated_failure_count),
            "itemCounts": record.counts(items=True),
            "executionCounts": record.counts(items=False),
            "redriveCount": record.redrive_count,
            "redriveDate": _ts(record.redrive_date),
        }
    )


def _event(event: dict[str, Any]) -> dict[str, Any]:
    # A copy: the caller may strip input/output from the details.
    return {k: dict(v) if isinstance(v, dict) else v for k, v in event.items()} | {
        "timestamp": _ts(event["timestamp"])
    }


async def handle(
    engine: WorkflowEngine, target: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Run one API call on the engine's loop; returns (HTTP status, JSON body).

    Errors come back AWS-shaped: `(400, {"__type": "<Code>", "message": ...})`.
    """
    action = target.removeprefix(_PREFIX)
    operation = _OPERATIONS.get(action)
    if operation is None:
        return 400, {"__type": "UnknownOperationException", "message": f"unknown {target}"}
    try:
        return 200, await operation(engine, body)
    except ApiError as exc:
        return exc.status, {"__type": exc.type_name, "message": exc.message}
    except KeyError as exc:
        return 400, {"__type": "ValidationException", "message": f"missing field {exc}"}


async def _create(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    record = engine.create_state_machine(
        body["name"], body["definition"], body["roleArn"], body.get("type", "STANDARD")
    )
    return {"stateMachineArn": record.arn, "creationDate": _ts(record.created)}


async def _describe_machine(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    return _machine(engine.state_machine(body["stateMachineArn"]))


async def _describe_for_execution(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    return _machine_for_execution(engine, engine.execution(body["executionArn"]))


async def _list_machines(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    items = [
        {"stateMachineArn": r.arn, "name": r.name, "type": r.type, "creationDate": _ts(r.created)}
        for r in engine.state_machines.values()
    ]
    return _page(items, body, "stateMachines")


async def _update(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    record = engine.update_state_machine(
        body["stateMachineArn"], body.get("definition"), body.get("roleArn")
    )
    return {"updateDate": _ts(record.updated), "revisionId": str(record.revision)}


async def _delete(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    engine.delete_state_machine(body["stateMachineArn"])
    return {}


async def _start(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    record = engine.start_execution(body["stateMachineArn"], body.get("input"), body.get("name"))
    return {"executionArn": record.arn, "startDate": _ts(record.start)}


async def _start_sync(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    record = await engine.start_sync_execution(
        body["stateMachineArn"], body.get("input"), body.get("name")
    )
    doc = _execution(record, full=True)
    for key in ("mapRunArn", "redriveCount", "redriveDate", "redriveStatus"):
        doc.pop(key, None)
    doc["billingDetails"] = {"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": 100}
    return doc


async def _describe_execution(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    return _execution(engine.execution(body["executionArn"]), full=True)


async def _list_executions(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("stateMachineArn") is None and body.get("mapRunArn") is None:
        raise ApiError("ValidationException", "stateMachineArn or mapRunArn is required")
    records = engine.list_executions(
        body.get("stateMachineArn"), body.get("mapRunArn"), body.get("statusFilter")
    )
    return _page([_execution(r, full=False) for r in records], body, "executions")


async def _history(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    events = [_event(e) for e in engine.execution(body["executionArn"]).history]
    if body.get("reverseOrder"):
        events.reverse()
    if body.get("includeExecutionData") is False:
        for event in events:
            for value in event.values():
                if isinstance(value, dict):
                    for key in ("input", "output"):
                        value.pop(key, None)
    return _page(events, body, "events")


async def _stop(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    record = engine.stop_execution(body["executionArn"], body.get("error"), body.get("cause"))
    return {"stopDate": _ts(record.stop)}


async def _describe_map_run(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    return _map_run(engine.map_run(body["mapRunArn"]))


async def _list_map_runs(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    runs = engine.list_map_runs(body["executionArn"])
    items = [
        {
            "executionArn": r.execution_arn,
            "mapRunArn": r.arn,
            "stateMachineArn": r.state_machine_arn,
            "startDate": _ts(r.start),
            **({"stopDate": _ts(r.stop)} if r.stop else {}),
        }
        for r in runs
    ]
    return _page(items, body, "mapRuns")


async def _redrive(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    record = await engine.redrive_execution(body["executionArn"])
    return {"redriveDate": _ts(record.redrive_date)}


async def _send_success(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    engine.tokens.succeed(body.get("taskToken"), body.get("output"))
    return {}


async def _send_failure(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    engine.tokens.fail(body.get("taskToken"), body.get("error"), body.get("cause"))
    return {}


async def _send_heartbeat(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    engine.tokens.heartbeat(body.get("taskToken"))
    return {}


async def _validate(engine: WorkflowEngine, body: dict[str, Any]) -> dict[str, Any]:
    """ValidateStateMachineDefinition: the same parse CreateStateMachine runs, every problem it
    finds as an ERROR diagnostic (`maxResults`, default and maximum 100; `truncated` when more
    were found), as the API reference documents it."""
    too_long = limits.length_error("definition", body["definition"], limits.DEFINITION_CHARS)
    if too_long is not None:
        raise too_long
    size = int(body.get("maxResults") or 100)
    if not 0 < size <= 100:
        raise ApiError("ValidationException", "maxResults must be between 1 and 100")
    try:
        machine = definition_module.parse(body["definition"])
        if body.get("type") in ("STANDARD", "EXPRESS"):
            refusal = express_refusal(machine, body["type"] == "EXPRESS")
            if refusal is not None:
                raise refusal
    except DefinitionError as exc:
        # A problem of the whole workflow (no terminal state) carries no location on AWS.
        diagnostics = [
            _clean(
                {
                    "severity": "ERROR",
                    "code": problem.code,
                    "message": problem.message,
                    "location": None if problem.pointer == "null" else problem.pointer,
                }
            )
            for problem in exc.problems
        ]
        return {
            "result": "FAIL",
            "diagnostics": diagnostics[:size],
            "truncated": len(diagnostics) > size,
        }
    return {"result": "OK", "diagnostics": [], "truncated": False}


_OPERATIONS = {
    "ValidateStateMachineDefinition": _validate,
    "CreateStateMachine": _create,
    "DescribeStateMachine": _describe_machine,
    "DescribeStateMachineForExecution": _describe_for_execution,
    "ListStateMachines": _list_machines,
    "UpdateStateMachine": _update,
    "DeleteStateMachine": _delete,
    "StartExecution": _start,
    "StartSyncExecution": _start_sync,
    "DescribeExecution": _describe_execution,
    "ListExecutions": _list_executions,
    "GetExecutionHistory": _history,
    "StopExecution": _stop,
    "DescribeMapRun": _describe_map_run,
    "ListMapRuns": _list_map_runs,
    "RedriveExecution": _redrive,
    "SendTaskSuccess": _send_success,
    "SendTaskFailure": _send_failure,
    "SendTaskHeartbeat": _send_heartbeat,
}
