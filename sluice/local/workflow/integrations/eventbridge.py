"""EventBridge: `arn:aws:states:::events:putEvents[.waitForTaskToken]`.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/connect-eventbridge.html (an entry's
`Detail` may be a JSON object, sent as its JSON text; a response with FailedEntryCount > 0 fails
the task with `EventBridge.FailedEntry`).
"""

from __future__ import annotations

from typing import Any

from sluice.local.workflow.errors import StatesError
from sluice.local.workflow.integrations.base import (
    Pattern,
    TaskCall,
    TaskServices,
    as_text,
    params_object,
    sdk_call,
)
from sluice.local.workflow.models import dumps


class PutEvents:
    """`events:putEvents`."""

    patterns = frozenset({Pattern.REQUEST_RESPONSE, Pattern.CALLBACK})

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Put the entries; any failed entry fails the task."""
        params = dict(params_object(call))
        entries = params.get("Entries")
        if isinstance(entries, list):
            params["Entries"] = [
                {**entry, "Detail": as_text(entry["Detail"])}
                if isinstance(entry, dict) and "Detail" in entry
                else entry
                for entry in entries
            ]
        response = await sdk_call(services, "events", "putEvents", params)
        if response.get("FailedEntryCount", 0):
            raise StatesError("EventBridge.FailedEntry", dumps(response))
        return response
