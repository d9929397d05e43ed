"""History events of one Task attempt, named as AWS names them: `LambdaFunction*` for a plain
function ARN, `Task*` for service integrations (with `TaskSubmitted` once a callback or job
request is accepted)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sluice.local.workflow.models import dumps

if TYPE_CHECKING:
    from sluice.local.workflow.errors import StatesError
    from sluice.local.workflow.models import ExecutionRecord
    from sluice.local.workflow.ports import Clock


class TaskEvents:
    """Records one Task attempt's history events on its execution."""

    def __init__(self, execution: ExecutionRecord, clock: Clock, resource: str, region: str):
        self.execution = execution
        self.clock = clock
        self.lambda_arn = resource.startswith("arn:aws:lambda:")
        service, _, action = resource.removeprefix("arn:aws:states:::").partition(":")
        self.ids = {"resourceType": service, "resource": action or resource}
        self.resource = resource
        self.region = region

    def _record(self, kind: str, details: dict[str, Any]) -> None:
        prefix = "LambdaFunction" if self.lambda_arn else "Task"
        key = ("lambdaFunction" if self.lambda_arn else "task") + kind + "EventDetails"
        self.execution.record(self.clock.now(), prefix + kind, key, details)

    def scheduled(self, effective: Any, limit: float | None, heartbeat: float | None) -> None:
        """TaskScheduled + TaskStarted (or the LambdaFunction pair)."""
        timeout = {"timeoutInSeconds": int(limit)} if limit is not None else {}
        if self.lambda_arn:
            self._record(
                "Scheduled", {"resource": self.resource, "input": dumps(effective), **timeout}
            )
            self.execution.record(self.clock.now(), "LambdaFunctionStarted")
            return
        beat = {"heartbeatInSeconds": int(heartbeat)} if heartbeat is not None else {}
        self._record(
            "Scheduled",
            {**self.ids, "region": self.region, "parameters": dumps(effective), **timeout, **beat},
        )
        self._record("Started", dict(self.ids))

    def submitted(self, response: Any) -> None:
        """TaskSubmitted: the request of a callback or `.sync` task was accepted."""
        self._record("Submitted", {**self.ids, "output": dumps(response)})

    def failed(self, err: StatesError) -> None:
        """TaskFailed, or TaskTimedOut for `States.Timeout` and `States.HeartbeatTimeout`."""
        kind = (
            "TimedOut" if err.error in ("States.Timeout", "States.HeartbeatTimeout") else "Failed"
        )
        ids = {} if self.lambda_arn else self.ids
        self._record(kind, {**ids, "error": err.error, "cause": err.cause})

    def succeeded(self, result: Any) -> None:
        """TaskSucceeded (LambdaFunctionSucceeded) with the result."""
        ids = {} if self.lambda_arn else self.ids
        self._record("Succeeded", {**ids, "output": dumps(result)})
