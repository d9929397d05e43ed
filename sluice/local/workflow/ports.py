"""What the workflow engine needs from the outside: a function invoker, an SDK caller, a clock.

All three are structural `Protocol`s, so the local runtime's implementations and the tests' fakes
need no inheritance.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

EXECUTION_ROLE: ContextVar[str | None] = ContextVar("execution_role", default=None)
"""The role ARN of the execution whose states are running (set by the engine for each execution
and Distributed Map child; tasks and `asyncio.to_thread` inherit it): SDK callers and invokers
act as that role."""


@dataclass(frozen=True)
class InvokeResult:
    """The outcome of one function invocation.

    `payload` is the function's return value when `error_type` is None. Otherwise the function
    raised: `error_type` is the exception class name (what Step Functions matches in
    `ErrorEquals`), `error_message` its message and `stack_trace` the formatted frames.
    """

    payload: Any = None
    error_type: str | None = None
    error_message: str = ""
    stack_trace: tuple[str, ...] = ()
    executed_version: str = "$LATEST"


class FunctionInvoker(Protocol):
    """Runs a Lambda function by name or ARN."""

    async def invoke(self, function_name_or_arn: str, payload: Any) -> InvokeResult:
        """Invoke synchronously; a function error is an `InvokeResult` with `error_type`.

        Raises:
            ServiceError: the service itself failed (unknown function, throttling, ...).
        """
        ...


class SdkCaller(Protocol):
    """Calls one AWS API action (`aws-sdk:` and optimised integrations)."""

    async def call(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """Call `service` (e.g. `s3`, `dynamodb`) `action` (camelCase, e.g. `putObject`).

        Returns the JSON-ready response (datetimes as ISO strings, S3 `Body` as str or bytes).
        Raises:
            ServiceError: the call failed; its `error` is the Step Functions error name.
        """
        ...


class ServiceError(Exception):
    """A failed service call, named the way Step Functions names it (`S3.NoSuchKeyException`)."""

    def __init__(self, error: str, cause: str = ""):
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class Clock(Protocol):
    """Time as the engine sees it; tests inject a fake so Wait and Retry are instant."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (may be 0)."""
        ...


class SystemClock:
    """The real clock: `datetime.now(UTC)` and `asyncio.sleep`."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running loop."""
        await asyncio.sleep(max(0.0, seconds))
