"""Builders shared by the integration tests of the shared runtime."""

from __future__ import annotations

from datetime import UTC, datetime

from types_aiobotocore_events.client import EventBridgeClient
from types_aiobotocore_sqs.client import SQSClient

from contracts.envelope import Envelope
from contracts.events import FileIngestedV1
from contracts.types import DatasetRef


def ingested(n: int) -> Envelope[FileIngestedV1]:
    """A valid `file.ingested.v1` envelope; `n` makes the file id unique."""
    file_id = f"{n:032x}"
    return Envelope.wrap(
        FileIngestedV1(
            file_id=file_id,
            dataset=DatasetRef(name="orders", version=1),
            bucket="sluice-raw",
            key=f"orders/2024/01/15/f{n}.csv",
            etag="abc",
            size_bytes=100 + n,
            object_created_at=datetime(2024, 1, 15, tzinfo=UTC),
        ),
        correlationid=file_id,
    )


async def queue_arn(sqs: SQSClient, url: str) -> str:
    attrs = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attrs["Attributes"]["QueueArn"]


async def bus_to_queue(
    events: EventBridgeClient, sqs: SQSClient, bus: str, queue: str, detail_type: str
) -> str:
    """Create `bus`, a queue and a rule routing `detail_type` to it; return the queue URL."""
    await events.create_event_bus(Name=bus)
    url = (await sqs.create_queue(QueueName=queue))["QueueUrl"]
    await events.put_rule(
        Name=f"{queue}-rule",
        EventBusName=bus,
        EventPattern=f'{{"detail-type": ["{detail_type}"]}}',
    )
    await events.put_targets(
        Rule=f"{queue}-rule",
        EventBusName=bus,
        Targets=[{"Id": "queue", "Arn": await queue_arn(sqs, url)}],
    )
    return url


async def drain(sqs: SQSClient, url: str, expected: int) -> list[dict[str, object]]:
    """Receive until `expected` messages arrived or the queue stays empty."""
    messages: list[dict[str, object]] = []
    empty_polls = 0
    while len(messages) < expected and empty_polls < 3:
        response = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        )
        batch = response.get("Messages", [])
        empty_polls = 0 if batch else empty_polls + 1
        messages.extend(dict(m) for m in batch)
    return messages
