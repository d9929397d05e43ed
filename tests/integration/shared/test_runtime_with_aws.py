"""The Runtime with the real adapters: events delivered EventBridge -> SQS are processed in one
warm execution environment; poison is parked in the DLQ with its reason."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from contracts.envelope import Envelope
from contracts.events import FileIngestedV1
from sluice_shared.aws import LEDGER_TABLE_SPEC, open_aws_deps
from sluice_shared.ports import (
    REASON_CODE_ATTRIBUTE,
    AwsDeps,
    FileRecord,
    FileStatus,
    StaleStateError,
)
from sluice_shared.runtime import Runtime
from sluice_shared.settings import SluiceSettings
from tests.integration.shared.helpers import ingested

BUS = "sluice-bus"
TABLE = "sluice-ledger"


def lambda_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """What the SQS event source mapping hands to Lambda for received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:validate-queue",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


@pytest.fixture
def stack(moto_endpoint: str) -> dict[str, str]:
    """A bus routing file.ingested.v1 to a queue, a DLQ, and the ledger table."""
    events = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    events.create_event_bus(Name=BUS)
    queue = sqs.create_queue(QueueName="validate-queue")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="validate-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="validate",
        EventBusName=BUS,
        EventPattern=json.dumps({"detail-type": [FileIngestedV1.TYPE]}),
    )
    events.put_targets(Rule="validate", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName=TABLE, **LEDGER_TABLE_SPEC
    )
    return {"queue": queue, "dlq": dlq}


def receive_all(url: str, expected: int) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    messages: list[dict[str, Any]] = []
    for _ in range(10):
        response = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        messages.extend(dict(m) for m in response.get("Messages", []))
        if len(messages) >= expected:
            break
    return messages


def test_runtime_processes_eventbridge_sqs_batches_across_warm_invocations(
    stack: dict[str, str],
) -> None:
    # GIVEN a runtime over the real adapters, and the ledger table
    settings = SluiceSettings(
        raw_bucket="sluice-raw",
        work_bucket="sluice-work",
        processed_bucket="sluice-processed",
        error_bucket="sluice-error",
        event_bus=BUS,
        ledger_table=TABLE,
        dlq_url=stack["dlq"],
    )
    runtime: Runtime[AwsDeps] = Runtime(lambda: open_aws_deps(settings), dlq_url=settings.dlq_url)
    seen_deps: list[AwsDeps] = []

    async def handle(envelope: Envelope[Any], deps: AwsDeps) -> None:
        # Claim the file; a duplicate delivery finds it claimed and is done.
        seen_deps.append(deps)
        data = envelope.data
        await deps.ledger.register_file(
            FileRecord(file_id=data.file_id, dataset="orders", bucket=data.bucket, key=data.key)
        )
        try:
            await deps.ledger.transition(
                data.file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING}
            )
        except StaleStateError:
            return

    async def setup(deps: AwsDeps) -> None:
        await deps.publisher.publish([ingested(n) for n in range(3)])

    try:
        runtime.run_with_deps(setup)
        messages = receive_all(stack["queue"], expected=3)
        poison = {**messages[0], "MessageId": "poison-1", "Body": '{"detail": 1}'}

        # WHEN the delivered batch plus a poison record are processed, then the batch again
        first = runtime.process_sqs_batch(
            lambda_event([*messages, poison]), handle, accepted={FileIngestedV1.TYPE}
        )
        second = runtime.process_sqs_batch(
            lambda_event(messages), handle, accepted={FileIngestedV1.TYPE}
        )

        async def statuses(deps: AwsDeps) -> list[FileStatus | None]:
            records = [await deps.ledger.get(ingested(n).data.file_id) for n in range(3)]
            return [r.status if r else None for r in records]

        final = runtime.run_with_deps(statuses)
    finally:
        runtime.close()

    # THEN nothing failed, every file was claimed once, the same clients served both batches,
    # and the poison record sits in the DLQ with its reason
    assert first == second == {"batchItemFailures": []}
    assert final == [FileStatus.VALIDATING] * 3
    assert len({id(d) for d in seen_deps}) == 1
    [parked] = receive_all(stack["dlq"], expected=1)
    assert parked["Body"] == poison["Body"]
    assert parked["MessageAttributes"][REASON_CODE_ATTRIBUTE]["StringValue"] == "invalid_contract"
