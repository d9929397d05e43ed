"""EventBridge: `arn:aws:states:::events:putEvents[.waitForTaskToken]`.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/connect-eventbridge.html (a response
with FailedEntryCount > 0 fails the task with `EventBridge.FailedEntry`).
"""

from __future__ import annotations

from typing import Any

from sluice.local.workflow.errors import StatesError
from sluice.local.workflow.integrations.base import (
    Pattern,
    TaskCall,
    TaskServices,
    params_object,
    sdk_call,
)
from sluice.local.workflow.models import dumps


class PutEvents:
    """`events:putEvents`."""

    patterns = frozenset({Pattern.REQUEST_RESPONSE, Pattern.CALLBACK})

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Put the entries; any failed entry fails the task."""
        response = await sdk_call(services, "events", "putEvents", params_object(call))
        if response.get("FailedEntryCount", 0):
            raise StatesError("EventBridge.FailedEntry", dumps(response))
        return response
