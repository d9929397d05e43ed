"""Optimised integrations whose request and response are the service API's own: DynamoDB
(`putItem`, `updateItem`, `getItem`, `deleteItem`) and S3 (`putObject`, `getObject`).

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/connect-ddb.html (request-response
only). DynamoDB's response comes with `SdkHttpMetadata` and `SdkResponseMetadata` beside it, as
with the other optimized integrations (AWS's sample workflows read
`$.SdkHttpMetadata.HttpStatusCode` after `putItem`). Its errors are named `DynamoDB.<error>`
for the errors DynamoDB's API models (`DynamoDB.ConditionalCheckFailedException`), and
`DynamoDB.AmazonDynamoDBException` for any other (`ValidationException`, e.g. an update of an
item that does not exist yet), as AWS's DynamoDB semaphore sample relies on; the
`aws-sdk:dynamodb` integration names them `DynamoDb.<error>`.
"""

from __future__ import annotations

from functools import cache
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
                name = exc.error[len(_SDK_PREFIX) :]
                error = _PREFIX + (name if name in _modeled_errors() else _UNMODELED)
                raise StatesError(error, exc.cause) from exc
            raise
        return http_metadata(response)


_SDK_PREFIX = "DynamoDb."
_PREFIX = "DynamoDB."
_UNMODELED = "AmazonDynamoDBException"


@cache
def _modeled_errors() -> frozenset[str]:
    """DynamoDB's modeled error names, each with the `Exception` suffix Step Functions adds."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("dynamodb")
    names = (str(shape.name) for shape in model.error_shapes)
    return frozenset(n if n.endswith("Exception") else f"{n}Exception" for n in names)
