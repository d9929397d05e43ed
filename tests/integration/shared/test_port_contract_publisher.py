"""The `EventPublisher` port's contract, run against both implementations: the in-memory fake
(`tests.fakes.RecordingPublisher`) and `EventBridgePublisher` on a moto server, observed through a
rule that sends the bus's events to a queue. What only EventBridge has (partial failures and
their resends, permanent entry errors) is in `test_eventbridge_publisher.py`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from types_aiobotocore_events.client import EventBridgeClient
from types_aiobotocore_sqs.client import SQSClient

from contracts.envelope import Envelope
from contracts.errors import EventTooLarge
from contracts.events import FileIngestedV1
from contracts.registry import parse_eventbridge_event
from sluice_shared.aws.events import EventBridgePublisher
from sluice_shared.ports import EventPublisher
from tests.fakes import RecordingPublisher
from tests.integration.shared.helpers import bus_to_queue, drain, ingested

BUS = "sluice-bus"


@dataclass(frozen=True)
class Bus:
    """A publisher, and what its bus received: `delivered(expected)` returns the envelopes that
    reached the bus (waiting for up to `expected` of them), each parsed back from the event."""

    publisher: EventPublisher
    delivered: Callable[[int], Awaitable[list[Envelope[Any]]]]


@pytest.fixture(params=["in_memory", "eventbridge"])
def aws_or_none(request: pytest.FixtureRequest) -> tuple[EventBridgeClient, SQSClient] | None:
    """None for the fake; clients of the per-test moto server for the adapter."""
    if request.param == "in_memory":
        return None
    events: EventBridgeClient = request.getfixturevalue("events")
    sqs: SQSClient = request.getfixturevalue("sqs")
    return events, sqs


@pytest.fixture
async def bus(aws_or_none: tuple[EventBridgeClient, SQSClient] | None) -> Bus:
    if aws_or_none is None:
        fake = RecordingPublisher(BUS)

        async def recorded(expected: int) -> list[Envelope[Any]]:
            return list(fake.published)

        return Bus(fake, recorded)
    events, sqs = aws_or_none
    url = await bus_to_queue(events, sqs, BUS, "observer", FileIngestedV1.TYPE)

    async def received(expected: int) -> list[Envelope[Any]]:
        messages = await drain(sqs, url, expected=max(expected, 1))
        return [parse_eventbridge_event(json.loads(str(m["Body"]))) for m in messages]

    return Bus(EventBridgePublisher(events, BUS), received)


async def test_publisher_delivers_each_envelope_once_across_requests(bus: Bus) -> None:
    # GIVEN more envelopes than one PutEvents request may carry
    envelopes = [ingested(n) for n in range(23)]

    # WHEN they are published
    await bus.publisher.publish(envelopes)

    # THEN each reaches the bus once, and parses back into the very envelope
    delivered = await bus.delivered(len(envelopes))
    assert sorted(e.id for e in delivered) == sorted(e.id for e in envelopes)
    by_id = {e.id: e for e in delivered}
    assert all(by_id[e.id] == e for e in envelopes)


async def test_publisher_publishing_nothing_sends_nothing(bus: Bus) -> None:
    await bus.publisher.publish([])

    assert await bus.delivered(0) == []


async def test_publisher_oversized_envelope_sends_nothing(bus: Bus) -> None:
    huge = ingested(2).model_copy(update={"subject": "s" * 300_000})

    with pytest.raises(EventTooLarge) as caught:
        await bus.publisher.publish([ingested(1), huge])

    # The whole call is refused before anything is sent, and it is poison, not transient.
    assert caught.value.code == "event_too_large"
    assert await bus.delivered(1) == []
