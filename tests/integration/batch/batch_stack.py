"""The batch path on a moto server: the real-time stack's buckets, bus and ledger, the batch
handlers called in-process as Lambda would call them, and the local workflow engine running
orchestration/statemachines/batch.asl.json with those handlers behind its FunctionInvoker.

Used by the integration tests (handlers alone) and the e2e tests (the state machine).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sluice.local.workflow import ThreadedWorkflowService
from sluice.local.workflow.adapters import Boto3SdkCaller
from sluice.local.workflow.ports import InvokeResult
from tests.e2e.harness import Stack, build_stack, ledger_items

REPO = Path(__file__).resolve().parents[3]
ASL = REPO / "orchestration" / "statemachines" / "batch.asl.json"
ACCOUNT = "123456789012"
FUNCTIONS = {
    "PlanFunctionArn": "plan",
    "RunPartitionFunctionArn": "run_partition",
    "RunBucketFunctionArn": "run_bucket",
    "ReconcileFunctionArn": "reconcile",
}
STATE_MACHINE = "sluice-e2e-batch"

Fault = Callable[[str, dict[str, Any]], Exception | None]


def function_arn(handler: str) -> str:
    return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:sluice-e2e-batch-{handler}"


def batch_env(stack: Stack, **extra: str) -> dict[str, str]:
    env = {
        "SLUICE_RAW_BUCKET": stack.raw,
        "SLUICE_WORK_BUCKET": stack.work,
        "SLUICE_PROCESSED_BUCKET": stack.processed,
        "SLUICE_ERROR_BUCKET": stack.errors,
        "SLUICE_EVENT_BUS": stack.bus,
        "SLUICE_LEDGER_TABLE": stack.table,
        "POWERTOOLS_SERVICE_NAME": "batch",
        "AWS_ENDPOINT_URL": stack.endpoint,
    }
    env.update(extra)
    return env


class InProcessInvoker:
    """`FunctionInvoker` calling `sluice_batch.handlers` in worker threads, JSON in and out.

    `fault(handler, payload)` may return an exception to raise instead of running the handler
    (fault injection); `calls` counts invocations per handler and item, `finished` lists those
    whose handler returned (appended from worker threads, so a fault may wait on it).
    """

    def __init__(self, fault: Fault | None = None) -> None:
        from sluice_batch import handlers

        self._handlers = {name: getattr(handlers, name) for name in FUNCTIONS.values()}
        self.fault = fault
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.finished: list[tuple[str, dict[str, Any]]] = []

    async def invoke(self, function_name_or_arn: str, payload: Any) -> InvokeResult:
        name = function_name_or_arn.rsplit(":", 1)[-1].removeprefix("sluice-e2e-batch-")
        handler = self._handlers[name]
        event = json.loads(json.dumps(payload))
        self.calls.append((name, event))

        def call() -> Any:
            injected = self.fault(name, event) if self.fault else None
            if injected is not None:
                raise injected
            result = json.loads(json.dumps(handler(event, None)))
            self.finished.append((name, event))
            return result

        try:
            return InvokeResult(payload=await asyncio.to_thread(call))
        except Exception as error:  # what Lambda reports for a function error
            return InvokeResult(error_type=type(error).__name__, error_message=str(error))

    def items_called(self, handler: str) -> list[tuple[str, int]]:
        kind = "partition" if handler == "run_partition" else "bucket"
        index = "partition" if kind == "partition" else "hash_bucket"
        return [
            (event[kind]["file_id"], event[kind][index])
            for name, event in self.calls
            if name == handler
        ]


class InstantClock:
    """Retry backoff and Wait states take no time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


@dataclass
class BatchStack:
    stack: Stack
    service: ThreadedWorkflowService
    invoker: InProcessInvoker
    state_machine_arn: str = ""
    executions: list[str] = field(default_factory=list)

    def call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        status, response = self.service.handle(f"AWSStepFunctions.{action}", body)
        assert status == 200, response
        return response

    def start(self, name: str, request: dict[str, Any]) -> str:
        arn = self.call(
            "StartExecution",
            {"stateMachineArn": self.state_machine_arn, "name": name, "input": json.dumps(request)},
        )["executionArn"]
        self.executions.append(arn)
        return str(arn)

    def wait(self, arn: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            described = self.call("DescribeExecution", {"executionArn": arn})
            if described["status"] != "RUNNING":
                return described
            if time.monotonic() > deadline:
                raise TimeoutError(f"{arn} still running")
            time.sleep(0.05)

    def run(self, name: str, request: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        return self.wait(self.start(name, request), timeout)

    def redrive(self, arn: str, timeout: float = 120.0) -> dict[str, Any]:
        self.call("RedriveExecution", {"executionArn": arn})
        return self.wait(arn, timeout)

    def put_raw(self, key: str, data: bytes) -> None:
        self.stack.client("s3").put_object(Bucket=self.stack.raw, Key=key, Body=data)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        s3 = self.stack.client("s3")
        out: dict[str, bytes] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        return out

    def files(self) -> dict[str, dict[str, Any]]:
        return {i["key"]: i for i in ledger_items(self.stack) if str(i["PK"]).startswith("FILE#")}

    def run_record(self, run_id: str) -> dict[str, Any]:
        item = self.stack.client("dynamodb").get_item(
            TableName=self.stack.table, Key={"PK": {"S": f"RUN#{run_id}"}, "SK": {"S": "META"}}
        )["Item"]
        record = {k: next(iter(v.values())) for k, v in item.items()}
        record["details"] = json.loads(record["details"])
        return record


def rendered_definition(stack: Stack) -> str:
    text = ASL.read_text()
    for placeholder, handler in FUNCTIONS.items():
        text = text.replace("${" + placeholder + "}", function_arn(handler))
    return text.replace("${WorkBucketName}", stack.work)


@pytest.fixture
def batch_stack(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[BatchStack]:
    """The stack, the batch handlers' environment, and the engine with the batch state machine.

    Partitions are small (64 KiB) so a test file of a few hundred KiB splits into several, and
    the record limit is 2 KiB so plan's cut windows (twice the limit) are a few KiB.
    """
    from sluice_batch import handlers

    stack = build_stack(moto_endpoint)
    for name, value in batch_env(
        stack,
        SLUICE_BATCH_PARTITION_BYTES=str(64 * 1024),
        SLUICE_BATCH_CUT_WINDOW_BYTES="4096",
        SLUICE_MAX_RECORD_BYTES="2048",
    ).items():
        monkeypatch.setenv(name, value)
    invoker = InProcessInvoker()
    service = ThreadedWorkflowService(
        invoker=invoker, sdk=Boto3SdkCaller(moto_endpoint), clock=InstantClock()
    ).start()
    batch = BatchStack(stack, service, invoker)
    try:
        status, created = service.handle(
            "AWSStepFunctions.CreateStateMachine",
            {
                "name": STATE_MACHINE,
                "definition": rendered_definition(stack),
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/batch",
                "type": "STANDARD",
            },
        )
        assert status == 200, created
        batch.state_machine_arn = created["stateMachineArn"]
        yield batch
    finally:
        service.close()
        handlers.close_runtimes()
