"""boto3 implementations of the engine's ports, used against the local endpoint.

boto3 is synchronous, so each call runs in a worker thread (`asyncio.to_thread`); clients are
created once per service (and per execution role) and shared (boto3 clients are thread-safe).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.model import ListShape, MapShape, Shape, StructureShape

from sluice.local.workflow.ports import EXECUTION_ROLE, InvokeResult, ServiceError

RoleCredentials = Callable[[str], Mapping[str, str]]
"""Role ARN → its credentials environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_SESSION_TOKEN`)."""

# Step Functions service names in `aws-sdk:<service>` that differ from boto3's.
_BOTO_NAMES = {"eventbridge": "events", "sfn": "stepfunctions"}
# How Step Functions prefixes SDK errors (e.g. `S3.NoSuchKeyException`).
_ERROR_PREFIX = {
    "s3": "S3",
    "dynamodb": "DynamoDb",
    "events": "EventBridge",
    "eventbridge": "EventBridge",
    "sqs": "Sqs",
    "lambda": "Lambda",
    "sfn": "Sfn",
    "ssm": "Ssm",
    "sns": "Sns",
}


def _snake(action: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", action).lower()


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def _to_api(shape: Shape | None, value: Any) -> Any:
    """Parameters as Step Functions takes them → the API's own member names.

    The AWS SDK integrations take PascalCase names even where the API is camelCase (`sfn`'s
    `StateMachineArn` for `stateMachineArn`), `EqualsValue` for a member named `Equals`, and
    treat a null member as not set
    (https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html).
    A name the API does not define is passed on unchanged, for botocore to refuse.
    """
    if shape is None:
        return value
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        members: dict[str, str] = {str(name).lower(): str(name) for name in shape.members}
        if "equals" in members:
            members.setdefault("equalsvalue", members["equals"])
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            name: str = members.get(str(key).lower(), str(key))
            out[name] = _to_api(shape.members.get(name), item)
        return out
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [_to_api(shape.member, item) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {key: _to_api(shape.value, item) for key, item in value.items()}
    return value


def _from_api(shape: Shape | None, value: Any) -> Any:
    """A response with every member name in PascalCase, as the AWS SDK integrations return it
    (`sfn:listExecutions` gives `Executions[].ExecutionArn`); map keys stay as they are."""
    if shape is None:
        return value
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        return {
            _pascal(key) if key in shape.members else key: _from_api(shape.members.get(key), item)
            for key, item in value.items()
        }
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [_from_api(shape.member, item) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {key: _from_api(shape.value, item) for key, item in value.items()}
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


class _Clients:
    def __init__(
        self, endpoint_url: str | None, region: str, credentials: RoleCredentials | None = None
    ):
        self._endpoint_url = endpoint_url
        self._region = region
        self._credentials = credentials
        self._clients: dict[tuple[str | None, str], Any] = {}
        self._sessions: dict[str, boto3.session.Session] = {}
        self._lock = threading.Lock()
        if endpoint_url is None:
            self._session = boto3.session.Session(region_name=region)
        else:
            # The local endpoint accepts any key; a machine with no AWS credentials at all (a
            # fresh laptop, CI) must still be able to call it.
            self._session = boto3.session.Session(
                region_name=region,
                aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
                aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
                aws_session_token=os.environ.get("AWS_SESSION_TOKEN"),
            )

    def _session_for(self, role_arn: str | None) -> boto3.session.Session:
        if role_arn is None or self._credentials is None:
            return self._session
        session = self._sessions.get(role_arn)
        if session is None:
            env = self._credentials(role_arn)
            session = boto3.session.Session(
                region_name=self._region,
                aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=env.get("AWS_SESSION_TOKEN"),
            )
            self._sessions[role_arn] = session
        return session

    def get(self, service: str) -> Any:
        """The client of `service` for the running execution's role (`EXECUTION_ROLE`), or of
        the default credentials outside an execution or without a credentials source."""
        role_arn = EXECUTION_ROLE.get() if self._credentials is not None else None
        with self._lock:
            client = self._clients.get((role_arn, service))
            if client is None:
                client = self._session_for(role_arn).client(
                    service,  # type: ignore[call-overload]
                    endpoint_url=self._endpoint_url,
                    config=Config(
                        retries={"max_attempts": 2, "mode": "standard"}, read_timeout=900
                    ),
                )
                self._clients[(role_arn, service)] = client
            return client


class Boto3SdkCaller:
    """`SdkCaller` over boto3: `call("s3", "putObject", {...})` -> `s3.put_object(**...)`.

    Args:
        endpoint_url: the endpoint (None: AWS).
        region: the region.
        credentials: a role's credentials; when given, each call is made with the credentials of
            the running execution's role, as Step Functions does.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        credentials: RoleCredentials | None = None,
    ):
        self._clients = _Clients(endpoint_url, region, credentials)

    async def call(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """Call the action in a thread; see `SdkCaller.call`."""
        return await asyncio.to_thread(self._call, service, action, params)

    def _call(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        boto_name = _BOTO_NAMES.get(service, service)
        prefix = _ERROR_PREFIX.get(service, service.capitalize())
        client = self._clients.get(boto_name)
        method = getattr(client, _snake(action), None)
        if method is None:
            raise ServiceError(f"{prefix}.InvalidActionException", f"unknown action {action}")
        operation = client.meta.service_model.operation_model(
            client.meta.method_to_api_mapping.get(_snake(action), action[:1].upper() + action[1:])
        )
        try:
            response = dict(method(**_to_api(operation.input_shape, params)))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            name = code if code.endswith("Exception") else f"{code}Exception"
            raise ServiceError(
                f"{prefix}.{name}", str(exc.response.get("Error", {}).get("Message", exc))
            ) from exc
        except BotoCoreError as exc:
            raise ServiceError(f"{prefix}.SdkClientException", str(exc)) from exc
        response.pop("ResponseMetadata", None)
        body = response.get("Body")
        if body is not None and hasattr(body, "read"):
            raw: bytes = body.read()
            # Step Functions returns S3 bodies as text; binary stays bytes for the readers.
            try:
                response["Body"] = raw.decode()
            except UnicodeDecodeError:
                response["Body"] = raw
            return {k: (v if k == "Body" else _jsonable(v)) for k, v in response.items()}
        return dict(_jsonable(_from_api(operation.output_shape, response)))


class Boto3FunctionInvoker:
    """`FunctionInvoker` over the Lambda `Invoke` API (the local function runner answers it)."""

    def __init__(self, endpoint_url: str | None = None, region: str = "us-east-1"):
        self._clients = _Clients(endpoint_url, region)

    async def invoke(self, function_name_or_arn: str, payload: Any) -> InvokeResult:
        """Invoke synchronously in a thread; see `FunctionInvoker.invoke`."""
        return await asyncio.to_thread(self._invoke, function_name_or_arn, payload)

    def _invoke(self, function: str, payload: Any) -> InvokeResult:
        client = self._clients.get("lambda")
        try:
            response = client.invoke(FunctionName=function, Payload=json.dumps(payload).encode())
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ServiceException"))
            raise ServiceError(f"Lambda.{code}", str(exc)) from exc
        except BotoCoreError as exc:
            raise ServiceError("Lambda.SdkClientException", str(exc)) from exc
        raw = response["Payload"].read()
        document = json.loads(raw) if raw else None
        version = str(response.get("ExecutedVersion", "$LATEST"))
        if response.get("FunctionError"):
            doc = document if isinstance(document, dict) else {}
            return InvokeResult(
                error_type=str(doc.get("errorType", "Lambda.Unknown")),
                error_message=str(doc.get("errorMessage", "")),
                stack_trace=tuple(str(s) for s in doc.get("stackTrace", [])),
                executed_version=version,
            )
        return InvokeResult(payload=document, executed_version=version)
