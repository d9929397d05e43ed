"""AWS SDK integrations: `arn:aws:states:::aws-sdk:<service>:<action>`.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html
(request-response and `.waitForTaskToken`; `.sync` is not available for SDK integrations).
"""

from __future__ import annotations

from typing import Any

from sluice.local.workflow.integrations.base import (
    Pattern,
    TaskCall,
    TaskServices,
    params_object,
    sdk_call,
)


class AwsSdk:
    """Any `aws-sdk:<service>:<action>`, called through the SDK caller as the execution role."""

    patterns = frozenset({Pattern.REQUEST_RESPONSE, Pattern.CALLBACK})

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Call the action with the parameters; the result is the service's response."""
        service, _, action = call.resource.action.partition(":")
        return await sdk_call(services, service, action, params_object(call))
