"""Amazon SQS: `arn:aws:states:::sqs:sendMessage[.waitForTaskToken]`.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/connect-sqs.html (the SendMessage API's
parameters; a JSON `MessageBody` is sent as its JSON text; the result is SendMessage's response
`{MD5OfMessageBody, MessageId, ...}` with SdkHttpMetadata and SdkResponseMetadata).
"""

from __future__ import annotations

from typing import Any

from sluice.local.workflow.integrations.base import (
    Pattern,
    TaskCall,
    TaskServices,
    as_text,
    http_metadata,
    params_object,
    require,
    sdk_call,
)


class SendMessage:
    """`sqs:sendMessage` through the embedded SQS, as the execution's role."""

    patterns = frozenset({Pattern.REQUEST_RESPONSE, Pattern.CALLBACK})

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Send `MessageBody` to `QueueUrl`."""
        params = dict(params_object(call))
        require(params, call, "QueueUrl", "MessageBody")
        params["MessageBody"] = as_text(params["MessageBody"])
        return http_metadata(await sdk_call(services, "sqs", "sendMessage", params))
