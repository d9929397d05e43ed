"""What every Task integration shares: the parsed resource ARN, the call it gets, the services it
may use, and the request helpers (Lambda invoke, SDK call, AWS's HTTP metadata).

Integration patterns, as AWS names them
(https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html): request-response
(no suffix), run a job (`.sync`, `.sync:2`) and wait for a callback (`.waitForTaskToken`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from sluice.local.workflow.errors import StatesError, runtime_error
from sluice.local.workflow.integrations.events import TaskEvents
from sluice.local.workflow.integrations.tokens import TaskTokens
from sluice.local.workflow.models import ExecutionRecord
from sluice.local.workflow.ports import Clock, FunctionInvoker, SdkCaller, ServiceError


class Pattern(StrEnum):
    """The integration pattern a resource ARN's suffix selects."""

    REQUEST_RESPONSE = ""
    SYNC = ".sync"
    SYNC_JSON = ".sync:2"
    CALLBACK = ".waitForTaskToken"


_SERVICE_ARN = re.compile(r"^arn:aws[a-z-]*:states:[a-z0-9-]*:[0-9]*:(?P<rest>[A-Za-z0-9-]+:.+)$")
_FUNCTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]+:function:[A-Za-z0-9_-]+(:[A-Za-z0-9$_-]+)?$"
)
_SUFFIXES = (Pattern.CALLBACK, Pattern.SYNC_JSON, Pattern.SYNC)


@dataclass(frozen=True)
class Resource:
    """A Task's `Resource`, parsed.

    `family` is `lambda`, `sns`, `sqs`, `states`, `events`, `dynamodb`, `s3`, `aws-sdk` or
    `function` (a plain Lambda ARN); `action` is the API action (`publish`, `s3:getObject` for
    `aws-sdk`), `pattern` the suffix.
    """

    arn: str
    family: str
    action: str
    pattern: Pattern

    @property
    def name(self) -> str:
        """`family:action` as the registry keys it (`sns:publish`)."""
        return f"{self.family}:{self.action}"


def parse_resource(arn: str) -> Resource | None:
    """Parse a Task resource ARN; None when it is neither a service integration nor a
    Lambda function ARN (an activity, another service's ARN, a typo)."""
    if _FUNCTION_ARN.match(arn):
        return Resource(arn, "function", "invoke", Pattern.REQUEST_RESPONSE)
    match = _SERVICE_ARN.match(arn)
    if match is None:
        return None
    rest = match.group("rest")
    pattern = Pattern.REQUEST_RESPONSE
    for suffix in _SUFFIXES:
        if rest.endswith(suffix):
            pattern, rest = suffix, rest[: -len(suffix)]
            break
    family, _, action = rest.partition(":")
    if not action:
        return None
    return Resource(arn, family, action, pattern)


Authorizer = Callable[[str, str, str], "str | None"]
"""(role ARN, IAM action, resource ARN) → None when allowed, else the denial message."""


class ExecutionHost(Protocol):
    """The engine side of `states:startExecution`: starts, waits for and stops executions."""

    def start_execution(
        self, state_machine_arn: str, input_text: str | None = None, name: str | None = None
    ) -> ExecutionRecord:
        """Start an execution (raises `ApiError` as the API would)."""
        ...

    async def wait(self, arn: str) -> ExecutionRecord:
        """Wait until the execution is terminal."""
        ...

    def stop_execution(
        self, arn: str, error: str | None = None, cause: str | None = None
    ) -> ExecutionRecord:
        """Abort a running execution."""
        ...


@dataclass(frozen=True)
class TaskServices:
    """What integrations call out to. Anything missing fails the Task with a clear cause."""

    clock: Clock
    tokens: TaskTokens
    invoker: FunctionInvoker | None = None
    sdk: SdkCaller | None = None
    executions: ExecutionHost | None = None
    authorize: Authorizer | None = None


@dataclass(frozen=True)
class TaskCall:
    """One attempt of one Task state: its resource, its effective parameters (after InputPath
    and Parameters), the execution it belongs to, and its task token for `.waitForTaskToken`."""

    state_name: str
    resource: Resource
    params: Any
    execution: ExecutionRecord
    events: TaskEvents
    token: str | None = None
    heartbeat: float | None = None


class Integration(Protocol):
    """One resource family's Task integration (`sns:publish`, `lambda:invoke`, ...)."""

    patterns: frozenset[Pattern]
    """The patterns AWS supports for this resource (others are refused at create)."""

    async def run(self, call: TaskCall, services: TaskServices) -> Any:
        """Run the call for its pattern (`.waitForTaskToken` is handled by the dispatcher:
        `run` is then the request that hands the token out) and return the Task's result.

        Raises:
            StatesError: the Task failed (the error name Step Functions reports).
        """
        ...


def params_object(call: TaskCall) -> dict[str, Any]:
    """The parameters as an object, as every service API takes them."""
    if not isinstance(call.params, dict):
        raise runtime_error(f"{call.resource.name} parameters must be an object")
    return call.params


def require(params: dict[str, Any], call: TaskCall, *names: str) -> None:
    """Fail with `States.Runtime` naming the missing parameter, before calling the service."""
    for name in names:
        if name not in params:
            raise runtime_error(f"{call.resource.name} needs Parameters.{name}")


def as_text(value: Any) -> str:
    """A message body: strings pass through, JSON values are serialised (as Step Functions
    does with an object given to `Message` or `MessageBody`)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def http_metadata(
    response: dict[str, Any], headers: dict[str, str] | None = None, status: int = 200
) -> dict[str, Any]:
    """Add `SdkHttpMetadata` and `SdkResponseMetadata`, which optimised integrations return
    beside the service's response (e.g. the Lambda, SNS and SQS pages of
    https://docs.aws.amazon.com/step-functions/latest/dg/integrate-optimized.html)."""
    request_id = str(uuid.uuid4())
    all_headers = {**(headers or {}), "x-amzn-RequestId": request_id}
    return {
        **response,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {k: [v] for k, v in all_headers.items()},
            "HttpHeaders": all_headers,
            "HttpStatusCode": status,
        },
        "SdkResponseMetadata": {"RequestId": request_id},
    }


async def sdk_call(
    services: TaskServices, service: str, action: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Call `service` `action` through the SDK caller (as the execution's role).

    Raises:
        StatesError: the service's error (`Sns.NotFoundException`, ...), or `States.TaskFailed`
        when no SDK caller is configured or the caller itself broke.
    """
    if services.sdk is None:
        raise StatesError("States.TaskFailed", "no SDK caller is configured")
    try:
        return await services.sdk.call(service, action, params)
    except ServiceError as exc:
        raise StatesError(exc.error, exc.cause) from exc
    except Exception as exc:
        raise StatesError("States.TaskFailed", f"{service}:{action}: {exc!r}") from exc


async def invoke_function(services: TaskServices, function: str, payload: Any) -> tuple[Any, str]:
    """Invoke a Lambda function; returns (payload, executed version).

    Raises:
        StatesError: the function's error (named by its `errorType`, Cause = Lambda's error
        document) or the service's (`Lambda.ResourceNotFoundException`, ...).
    """
    if services.invoker is None:
        raise StatesError("Lambda.ServiceException", "no function invoker is configured")
    try:
        result = await services.invoker.invoke(function, payload)
    except ServiceError as exc:
        raise StatesError(exc.error, exc.cause) from exc
    except Exception as exc:
        # A broken invoker must fail the task, not the engine.
        raise StatesError("Lambda.ServiceException", repr(exc)) from exc
    if result.error_type is not None:
        # Lambda's own error document; Step Functions puts it in Cause verbatim.
        cause = json.dumps(
            {
                "errorMessage": result.error_message,
                "errorType": result.error_type,
                "stackTrace": list(result.stack_trace),
            }
        )
        raise StatesError(result.error_type, cause)
    return result.payload, result.executed_version
