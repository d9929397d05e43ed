"""Optimised integrations whose request and response are the service API's own: DynamoDB
(`putItem`, `updateItem`, `getItem`, `deleteItem`) and S3 (`putObject`, `getObject`).

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/connect-ddb.html (request-response
only). DynamoDB's response comes with `SdkHttpMetadata` and `SdkResponseMetadata` beside it, as
with the other optimized integrations (AWS's sample workflows read
`$.SdkHttpMetadata.HttpStatusCode` after `putItem`). Its errors are named `DynamoDB.<error>`
(`DynamoDB.ConditionalCheckFailedException`, which AWS's DynamoDB semaphore sample catches),
where the `aws-sdk:dynamodb` integration names them `DynamoDb.<error>`.
"""

from __future__ import annotations

from typing import Any

from sluice.local.workflow.errors import StatesError
from sluice.local.workflow.integrations.base import (
    Pattern,
    TaskCall,
    TaskServices,
    http_metadata,
    params_object,
    sdk_call,
)


class ServiceAction:
    """Call `family:action` through the SDK caller; the result is the service's response."""

    patterns = frozenset({Pattern.REQUEST_RESPONSE})

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Call the action with the parameters."""
        resource = call.resource
        if resource.family != "dynamodb":
            return await sdk_call(services, resource.family, resource.action, params_object(call))
        try:
            response = await sdk_call(services, "dynamodb", resource.action, params_object(call))
        except StatesError as exc:
            if exc.error.startswith(_SDK_PREFIX):
                raise StatesError(_PREFIX + exc.error[len(_SDK_PREFIX) :], exc.cause) from exc
            raise
        return http_metadata(response)


_SDK_PREFIX = "DynamoDb."
_PREFIX = "DynamoDB."
