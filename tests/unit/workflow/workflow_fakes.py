"""In-memory fakes of the workflow engine's ports (structural: no inheritance needed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.local.workflow import InvokeResult, ServiceError, WorkflowEngine

ROLE = "arn:aws:iam::123456789012:role/sfn"


class FakeClock:
    """Virtual time: `sleep` records the delay, advances `now` and yields once."""

    def __init__(self, start: datetime | None = None):
        self.current = start or datetime(2024, 1, 1, tzinfo=UTC)
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.current += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class FunctionRaised(Exception):
    """Raised by a fake function to simulate a handler exception of class `error_type`."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


Handler = Callable[[Any], Awaitable[Any]]


def held_until_concurrent(count: int, result: Callable[[Any], Any] = lambda p: p) -> Handler:
    """A function whose calls wait until `count` of them run at once (then every call passes):
    a bound on concurrency is then observed at exactly `count` whatever the machine's speed,
    and a bound below `count` deadlocks instead of passing."""
    together = asyncio.Event()
    running = 0

    async def handler(payload: Any) -> Any:
        nonlocal running
        running += 1
        if running >= count:
            together.set()
        await together.wait()
        await asyncio.sleep(0)
        running -= 1
        return result(payload)

    return handler


@dataclass
class FakeInvoker:
    """Runs registered async Python functions by name (or by the ARN's last segment)."""

    functions: dict[str, Handler] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    running: int = 0
    peak: int = 0

    async def invoke(self, function_name_or_arn: str, payload: Any) -> InvokeResult:
        name = (
            function_name_or_arn.split(":")[-1]
            if function_name_or_arn.startswith("arn:")
            else function_name_or_arn
        )
        self.calls.append((name, payload))
        handler = self.functions.get(name)
        if handler is None:
            raise ServiceError("Lambda.ResourceNotFoundException", f"Function not found: {name}")
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            return InvokeResult(payload=await handler(payload))
        except FunctionRaised as exc:
            return InvokeResult(
                error_type=exc.error_type,
                error_message=exc.message,
                stack_trace=('  File "/var/task/handler.py", line 1, in handler',),
            )
        finally:
            self.running -= 1


@dataclass
class InMemoryS3:
    """An `SdkCaller` for s3 (put/get/list with pagination), dynamodb and events calls."""

    objects: dict[tuple[str, str], str | bytes] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    page_size: int = 1000
    fail_entries: bool = False

    async def call(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((service, action, params))
        if service == "s3" and action == "putObject":
            self.objects[(params["Bucket"], params["Key"])] = params["Body"]
            return {"ETag": '"etag"'}
        if service == "s3" and action == "getObject":
            key = (params["Bucket"], params["Key"])
            if key not in self.objects:
                raise ServiceError("S3.NoSuchKeyException", "The specified key does not exist.")
            return {"Body": self.objects[key], "ContentLength": len(self.objects[key])}
        if service == "s3" and action == "listObjectsV2":
            keys = sorted(
                k
                for b, k in self.objects
                if b == params["Bucket"] and k.startswith(params.get("Prefix", ""))
            )
            start = int(params.get("ContinuationToken", 0))
            page = keys[start : start + self.page_size]
            contents = [
                {
                    "Key": k,
                    "Size": len(self.objects[(params["Bucket"], k)]),
                    "ETag": '"abc"',
                    "LastModified": "2024-01-01T00:00:00+00:00",
                    "StorageClass": "STANDARD",
                }
                for k in page
            ]
            more = start + self.page_size < len(keys)
            doc: dict[str, Any] = {"Contents": contents, "IsTruncated": more}
            if more:
                doc["NextContinuationToken"] = str(start + self.page_size)
            return doc
        if service == "events" and action == "putEvents":
            count = len(params["Entries"])
            if self.fail_entries:
                return {"FailedEntryCount": count, "Entries": [{"ErrorCode": "X"}] * count}
            return {"FailedEntryCount": 0, "Entries": [{"EventId": "e1"}] * count}
        if service == "dynamodb":
            return {"Item": {"pk": {"S": "x"}}} if action == "getItem" else {}
        raise ServiceError(f"{service}.InvalidActionException", action)

    def json(self, bucket: str, key: str) -> Any:
        body = self.objects[(bucket, key)]
        return json.loads(body)


def make_engine(
    functions: dict[str, Handler] | None = None, s3: InMemoryS3 | None = None
) -> tuple[WorkflowEngine, FakeClock, FakeInvoker, InMemoryS3]:
    clock = FakeClock()
    invoker = FakeInvoker(functions or {})
    sdk = s3 or InMemoryS3()
    return WorkflowEngine(invoker=invoker, sdk=sdk, clock=clock), clock, invoker, sdk


async def run_definition(
    engine: WorkflowEngine, definition: dict[str, Any], data: Any, name: str = "sm"
) -> Any:
    """Create (or reuse) a state machine, run one execution, return its finished record."""
    arn = f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"
    if arn not in engine.state_machines:
        engine.create_state_machine(name, json.dumps(definition), ROLE)
    execution = engine.start_execution(arn, json.dumps(data))
    return await engine.wait(execution.arn)
