"""Lambda stand-ins for the conformance cases: each behaves as its payload says, nothing else."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3


def echo(event: Any, context: Any) -> Any:
    """Return the payload unchanged."""
    return event


def fail(event: dict[str, Any], context: Any) -> Any:
    """Raise an exception whose class is named `event["error"]` (Lambda's `errorType`).

    With `event["succeed_at"]` set, fail only while `event["attempt"]` is below it (a case passes
    `$$.State.RetryCount` as the attempt) and then return `{"succeeded_at": attempt}`.
    """
    attempt = int(event.get("attempt", 0))
    if "succeed_at" in event and attempt >= int(event["succeed_at"]):
        return {"succeeded_at": attempt}
    error = type(str(event["error"]), (Exception,), {})
    raise error(str(event.get("message", "stub failure")))


def sleep(event: dict[str, Any], context: Any) -> Any:
    """Sleep `event["seconds"]`, then return the payload."""
    time.sleep(float(event["seconds"]))
    return event


def callback(event: dict[str, Any], context: Any) -> Any:
    """Answer the task token in `event["token"]` over the Step Functions API: SendTaskFailure
    with `event["error"]`/`event["cause"]` when given, else SendTaskSuccess with `event["output"]`;
    first, `event["heartbeats"]` SendTaskHeartbeat calls `event["every"]` seconds apart.
    """
    sfn = boto3.client("stepfunctions")
    for _ in range(int(event.get("heartbeats", 0))):
        sfn.send_task_heartbeat(taskToken=event["token"])
        time.sleep(float(event["every"]))
    if "error" in event:
        sfn.send_task_failure(
            taskToken=event["token"], error=event["error"], cause=event.get("cause", "")
        )
    else:
        sfn.send_task_success(taskToken=event["token"], output=json.dumps(event["output"]))
    return {"answered": True}
