"""Lambda: the optimised `arn:aws:states:::lambda:invoke` and plain function ARNs.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html (the optimised
result is `{ExecutedVersion, Payload, SdkHttpMetadata, SdkResponseMetadata, StatusCode}`; a plain
function ARN's result is the function's return value; both support `.waitForTaskToken` only on
the optimised resource).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sluice.local.workflow.errors import StatesError, runtime_error
from sluice.local.workflow.integrations.base import (
    Pattern,
    TaskCall,
    TaskServices,
    http_metadata,
    invoke_function,
    params_object,
    require,
)

log = logging.getLogger(__name__)


class LambdaInvoke:
    """`arn:aws:states:::lambda:invoke[.waitForTaskToken]`."""

    patterns = frozenset({Pattern.REQUEST_RESPONSE, Pattern.CALLBACK})

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Invoke `FunctionName` with `Payload`; the result as the optimised integration
        returns it. `InvocationType: Event` hands the payload over without waiting (202, empty
        Payload); `DryRun` invokes nothing (204)."""
        params = params_object(call)
        require(params, call, "FunctionName")
        invocation = params.get("InvocationType", "RequestResponse")
        if invocation not in ("RequestResponse", "Event", "DryRun"):
            raise runtime_error(f"lambda:invoke InvocationType {invocation!r} is not valid")
        if invocation != "RequestResponse":
            if invocation == "Event":
                _in_background(services, params["FunctionName"], params.get("Payload"))
            status = 202 if invocation == "Event" else 204
            return {**http_metadata({"Payload": ""}, status=status), "StatusCode": status}
        payload, version = await invoke_function(
            services, params["FunctionName"], params.get("Payload")
        )
        result = http_metadata(
            {"ExecutedVersion": version, "Payload": payload},
            {"X-Amz-Executed-Version": version},
        )
        return {**result, "StatusCode": 200}


_BACKGROUND: set[asyncio.Task[Any]] = set()


def _in_background(services: TaskServices, function: str, payload: Any) -> None:
    """An asynchronous invocation: the task goes on; the function's outcome is not its concern
    (Lambda's own retries of failed asynchronous invocations are not emulated here)."""

    async def invoke() -> None:
        try:
            await invoke_function(services, function, payload)
        except StatesError as exc:
            log.warning("asynchronous invocation of %s failed: %s", function, exc)

    task = asyncio.get_running_loop().create_task(invoke())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


class LambdaFunction:
    """A plain function ARN (`arn:aws:lambda:<region>:<account>:function:<name>`)."""

    patterns = frozenset({Pattern.REQUEST_RESPONSE})

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Invoke the function with the effective input; the result is its return value."""
        payload, _version = await invoke_function(services, call.resource.arn, call.params)
        return payload
