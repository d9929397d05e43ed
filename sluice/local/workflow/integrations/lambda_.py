"""Lambda: the optimised `arn:aws:states:::lambda:invoke` and plain function ARNs.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html (the optimised
result is `{ExecutedVersion, Payload, SdkHttpMetadata, SdkResponseMetadata, StatusCode}`; a plain
function ARN's result is the function's return value; both support `.waitForTaskToken` only on
the optimised resource).
"""

from __future__ import annotations

from typing import Any

from sluice.local.workflow.integrations.base import (
    Pattern,
    TaskCall,
    TaskServices,
    http_metadata,
    invoke_function,
    params_object,
    require,
)


class LambdaInvoke:
    """`arn:aws:states:::lambda:invoke[.waitForTaskToken]`."""

    patterns = frozenset({Pattern.REQUEST_RESPONSE, Pattern.CALLBACK})

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Invoke `FunctionName` with `Payload`; the result as the optimised integration
        returns it."""
        params = params_object(call)
        require(params, call, "FunctionName")
        payload, version = await invoke_function(
            services, params["FunctionName"], params.get("Payload")
        )
        result = http_metadata(
            {"ExecutedVersion": version, "Payload": payload},
            {"X-Amz-Executed-Version": version},
        )
        return {**result, "StatusCode": 200}


class LambdaFunction:
    """A plain function ARN (`arn:aws:lambda:<region>:<account>:function:<name>`)."""

    patterns = frozenset({Pattern.REQUEST_RESPONSE})

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Invoke the function with the effective input; the result is its return value."""
        payload, _version = await invoke_function(services, call.resource.arn, call.params)
        return payload
