"""Amazon SNS: `arn:aws:states:::sns:publish[.waitForTaskToken]`.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/connect-sns.html (the Publish API's
parameters; the result is Publish's response `{MessageId, ...}` with SdkHttpMetadata and
SdkResponseMetadata).
"""

from __future__ import annotations

from typing import Any

from sluice.local.workflow.errors import runtime_error
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


class Publish:
    """`sns:publish` through the embedded SNS, as the execution's role."""

    patterns = frozenset({Pattern.REQUEST_RESPONSE, Pattern.CALLBACK})

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Publish `Message` (a JSON value is sent as its JSON text) to the topic or target."""
        params = dict(params_object(call))
        require(params, call, "Message")
        if not {"TopicArn", "TargetArn", "PhoneNumber"} & params.keys():
            raise runtime_error("sns:publish needs Parameters.TopicArn, TargetArn or PhoneNumber")
        params["Message"] = as_text(params["Message"])
        return http_metadata(await sdk_call(services, "sns", "publish", params))
