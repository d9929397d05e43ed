"""A hand-built real-time stack on a moto server, and a pump that feeds each service's queue to
its handler as Lambda would (SQS batch in, partial batch response out).

This is the data-path tier's end-to-end harness: real bus, real rules, real queues, real
handlers — only the Lambda event source mapping is this small loop. The full local runtime
(`sluice local up`) provisions the same shape from the SAM templates.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3

from contracts.events import FileIngestedV1, FileTransformedV1, FileValidatedV1, routed_type
from sluice_shared.aws.dynamodb import LEDGER_TABLE_SPEC

SERVICES = ("ingest", "validate", "transform", "output")
# What each stage's rule routes: the newest live major of the fact it consumes.
CONSUMES = {
    "validate": routed_type(FileIngestedV1),
    "transform": routed_type(FileValidatedV1),
    "output": routed_type(FileTransformedV1),
}
TERMINAL = {"COMPLETED", "FAILED", "QUARANTINED"}


@dataclass
class Stack:
    endpoint: str
    prefix: str = "sluice-e2e"
    queues: dict[str, str] = field(default_factory=dict)
    dlqs: dict[str, str] = field(default_factory=dict)

    @property
    def raw(self) -> str:
        return f"{self.prefix}-raw"

    @property
    def work(self) -> str:
        return f"{self.prefix}-work"

    @property
    def processed(self) -> str:
        return f"{self.prefix}-processed"

    @property
    def errors(self) -> str:
        return f"{self.prefix}-error"

    @property
    def bus(self) -> str:
        return self.prefix

    @property
    def table(self) -> str:
        return f"{self.prefix}-ledger"

    def client(self, service: str) -> Any:
        factory: Any = boto3.client  # untyped on purpose: one helper for every service
        return factory(service, endpoint_url=self.endpoint, region_name="us-east-1")

    def env(self, service: str) -> dict[str, str]:
        return {
            "SLUICE_RAW_BUCKET": self.raw,
            "SLUICE_WORK_BUCKET": self.work,
            "SLUICE_PROCESSED_BUCKET": self.processed,
            "SLUICE_ERROR_BUCKET": self.errors,
            "SLUICE_EVENT_BUS": self.bus,
            "SLUICE_LEDGER_TABLE": self.table,
            "SLUICE_DLQ_URL": self.dlqs[service],
            "POWERTOOLS_SERVICE_NAME": service,
            "AWS_ENDPOINT_URL": self.endpoint,
        }


def build_stack(endpoint: str) -> Stack:
    """Create buckets, bus, rules, queues (with DLQs) and the ledger table on the server."""
    stack = Stack(endpoint)
    s3, sqs, events = stack.client("s3"), stack.client("sqs"), stack.client("events")
    for bucket in (stack.raw, stack.work, stack.processed, stack.errors):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=stack.raw,
        NotificationConfiguration={"EventBridgeConfiguration": {}},
    )
    stack.client("dynamodb").create_table(TableName=stack.table, **LEDGER_TABLE_SPEC)
    events.create_event_bus(Name=stack.bus)
    for service in SERVICES:
        dlq = sqs.create_queue(QueueName=f"{stack.prefix}-{service}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue = sqs.create_queue(
            QueueName=f"{stack.prefix}-{service}-queue",
            Attributes={
                "VisibilityTimeout": "3",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
            },
        )["QueueUrl"]
        stack.queues[service], stack.dlqs[service] = queue, dlq
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        if service == "ingest":
            bus, pattern = (
                "default",
                {
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": {"bucket": {"name": [stack.raw]}},
                },
            )
        else:
            bus, pattern = stack.bus, {"detail-type": [CONSUMES[service]]}
        rule = f"{stack.prefix}-{service}"
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    return stack


def load_handlers(stack: Stack, monkeypatch: Any) -> dict[str, Callable[..., Any]]:
    """Import each service's handler with its own environment, as its Lambda would.

    Call `close_handlers()` afterwards: each handler module owns an event loop and open clients
    for the life of its (here: the test's) execution environment.
    """
    handlers: dict[str, Callable[..., Any]] = {}
    for service in SERVICES:
        for name, value in stack.env(service).items():
            monkeypatch.setenv(name, value)
        module_name = f"sluice_{service}.handler"
        sys.modules.pop(module_name, None)
        module = importlib.import_module(module_name)
        handlers[service] = module.lambda_handler
    return handlers


def close_handlers() -> None:
    """Close the runtimes of the handler modules imported by `load_handlers`."""
    for service in SERVICES:
        module = sys.modules.pop(f"sluice_{service}.handler", None)
        if module is None:
            continue
        runtime = getattr(module, "runtime", None) or module.service.runtime
        runtime.close()


class FakeContext:
    """The attributes of a Lambda context the handlers (Powertools) read."""

    def __init__(self, service: str) -> None:
        self.function_name = f"sluice-e2e-{service}"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{service}"
        self.aws_request_id = "e2e"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def pump(
    stack: Stack,
    handlers: dict[str, Callable[..., Any]],
    *,
    until: Callable[[], bool],
    timeout: float = 60.0,
    batch_size: int = 10,
) -> int:
    """Deliver queued messages to handlers until `until()` holds; returns deliveries made.

    Messages a handler reports as failed stay in the queue (redelivered after the visibility
    timeout), exactly like the Lambda SQS event source with ReportBatchItemFailures.
    """
    sqs = stack.client("sqs")
    deliveries = 0
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError("pipeline did not settle in time")
        moved = False
        for service in SERVICES:
            url = stack.queues[service]
            got = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=batch_size, AttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                continue
            moved = True
            deliveries += len(got)
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            response = handlers[service](sqs_event(got, arn), FakeContext(service))
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            for message in got:
                if message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if not moved:
            time.sleep(0.05)
    return deliveries


def ledger_items(stack: Stack) -> Iterator[dict[str, Any]]:
    ddb = stack.client("dynamodb")
    for page in ddb.get_paginator("scan").paginate(TableName=stack.table):
        for item in page["Items"]:
            if item["SK"]["S"] == "META":
                yield {k: next(iter(v.values())) for k, v in item.items()}
