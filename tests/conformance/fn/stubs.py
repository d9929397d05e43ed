"""Lambda stand-ins for the conformance cases: each behaves as its payload says, nothing else."""

from __future__ import annotations

import time
from typing import Any


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
