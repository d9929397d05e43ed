"""Builders shared by the integration tests of the shared runtime."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

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


class PutEventsSpy:
    """Hooks on the client: records the envelope ids of every PutEvents request and, for the
    first `fail_rounds` responses, marks the entries of the envelopes in `fail_ids` as failed
    (the bus accepted them, but the response says otherwise: a retry must resend exactly them),
    with `code`, or the id's own code in `codes`."""

    def __init__(
        self,
        events: EventBridgeClient,
        *,
        fail_ids: set[str],
        fail_rounds: int,
        code: str = "InternalFailure",
        codes: dict[str, str] | None = None,
    ) -> None:
        self.requests: list[list[str]] = []
        self.fail_ids = fail_ids
        self.fail_rounds = fail_rounds
        self.code = code
        self.codes = codes or {}
        events.meta.events.register("before-parameter-build.events.PutEvents", self.before)
        events.meta.events.register("after-call.events.PutEvents", self.after)

    def before(self, params: dict[str, Any], **_: Any) -> None:
        self.requests.append([json.loads(e["Detail"])["id"] for e in params["Entries"]])

    def after(self, parsed: dict[str, Any], **_: Any) -> None:
        if self.fail_rounds <= 0:
            return
        self.fail_rounds -= 1
        failed = 0
        sent = self.requests[-1]
        for position, result in enumerate(parsed["Entries"]):
            if sent[position] in self.fail_ids:
                code = self.codes.get(sent[position], self.code)
                parsed["Entries"][position] = {"ErrorCode": code, "ErrorMessage": "injected"}
                failed += 1
            else:
                assert "EventId" in result
        parsed["FailedEntryCount"] = failed
