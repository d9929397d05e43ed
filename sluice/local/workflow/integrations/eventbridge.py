"""EventBridge: `arn:aws:states:::events:putEvents[.waitForTaskToken]`.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/connect-eventbridge.html (an entry's
`Detail` may be a JSON object, sent as its JSON text; the state machine and execution ARNs are
appended to each entry's `Resources`; a response with FailedEntryCount > 0 fails the task with
`EventBridge.FailedEntry`).
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


def _entry(entry: Any, call: TaskCall) -> Any:
    """One `PutEventsRequestEntry` as Step Functions sends it: a JSON object `Detail` as text,
    the state machine and execution ARNs after the entry's own `Resources`."""
    if not isinstance(entry, dict):
        return entry  # PutEvents refuses it, with the service's own message
    sent = dict(entry)
    if isinstance(sent.get("Detail"), dict):
        sent["Detail"] = as_text(sent["Detail"])
    own = sent.get("Resources")
    execution = call.execution
    sent["Resources"] = [
        *(own if isinstance(own, list) else []),
        execution.state_machine_arn,
        execution.arn,
    ]
    return sent


class PutEvents:
    """`events:putEvents`."""

    patterns = frozenset({Pattern.REQUEST_RESPONSE, Pattern.CALLBACK})

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Put the entries; any failed entry fails the task."""
        params = dict(params_object(call))
        entries = params.get("Entries")
        if isinstance(entries, list):
            params["Entries"] = [_entry(item, call) for item in entries]
        response = await sdk_call(services, "events", "putEvents", params)
        if response.get("FailedEntryCount", 0):
            raise StatesError("EventBridge.FailedEntry", dumps(response))
        return response
