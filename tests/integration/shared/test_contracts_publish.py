"""`contracts.publish` (the producer helper of the `sluice-contracts` package) against a moto
server: validated before anything is sent, batches of ten, the bus from the environment."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from contracts.envelope import Envelope
from contracts.errors import InvalidContract
from contracts.events import FileProcessedV1
from contracts.publish import PUT_EVENTS_MAX_ENTRIES, PublishFailed, publish
from contracts.tools import ContractFolder

BUS = "producer-bus"


def _golden() -> dict[str, Any]:
    example = ContractFolder.of(FileProcessedV1).example_files()[0]
    document: dict[str, Any] = json.loads(example.read_text())
    return document


def _events(count: int) -> list[Envelope[Any]]:
    data = FileProcessedV1.model_validate(_golden()["data"])
    return [Envelope.wrap(data, correlationid=f"c-{i}") for i in range(count)]


@pytest.fixture
def consumer(moto_endpoint: str) -> tuple[Any, str]:
    """GIVEN a bus whose rule delivers file.processed events to a queue; yields (sqs, url)."""
    client: Any = boto3.client
    events, sqs = client("events"), client("sqs")
    events.create_event_bus(Name=BUS)
    url = sqs.create_queue(QueueName="producer-consumer")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = json.dumps({"detail-type": [FileProcessedV1.TYPE]})
    events.put_rule(Name="processed", EventBusName=BUS, EventPattern=pattern)
    events.put_targets(Rule="processed", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
    return sqs, str(url)


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = batch.get("Messages", [])
        if not messages:
            return found
        found.extend(json.loads(m["Body"]) for m in messages)
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_publish_sends_every_event_in_batches_of_ten(
    consumer: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the bus named by the environment, as a producer's deployment would set it
    monkeypatch.setenv("SLUICE_EVENT_BUS", BUS)
    sqs, url = consumer
    events = _events(PUT_EVENTS_MAX_ENTRIES + 2)

    ids = publish(events)

    assert len(ids) == len(events)
    received = _drain(sqs, url)
    assert sorted(m["detail"]["id"] for m in received) == sorted(e.id for e in events)


def test_publish_sends_nothing_when_one_event_is_invalid(consumer: tuple[Any, str]) -> None:
    sqs, url = consumer
    bad = _golden()
    bad["data"]["rows_in"] = -1

    with pytest.raises(InvalidContract, match=r"data\.rows_in"):
        publish([*_events(3), bad], bus=BUS)

    assert _drain(sqs, url) == []


class RefusingBus:
    """An EventBridge client whose bus refuses every second entry (as throttling would)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(len(Entries))
        results: list[dict[str, Any]] = [
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
            if i % 2
            else {"EventId": f"e-{i}"}
            for i in range(len(Entries))
        ]
        return {"FailedEntryCount": len(Entries) // 2, "Entries": results}


def test_publish_reports_each_refused_entry() -> None:
    bus = RefusingBus()
    events = _events(4)

    with pytest.raises(PublishFailed) as info:
        publish(events, bus=BUS, client=bus)

    assert bus.calls == [4]
    assert [f[0] for f in info.value.failures] == [events[1].id, events[3].id]
    assert {f[1] for f in info.value.failures} == {"ThrottlingException"}
    assert info.value.code == "publish_failed"


def test_publish_without_a_bus_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_EVENT_BUS", raising=False)
    with pytest.raises(ValueError, match="SLUICE_EVENT_BUS"):
        publish(_events(1))


def test_envelope_time_is_sent_as_the_entry_time(consumer: tuple[Any, str]) -> None:
    sqs, url = consumer
    data = FileProcessedV1.model_validate(_golden()["data"])
    sent_at = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)

    publish([Envelope.wrap(data, correlationid="t", time=sent_at)], bus=BUS)

    [message] = _drain(sqs, url)
    assert message["time"] == "2024-03-01T09:30:00Z"
