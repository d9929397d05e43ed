"""EventBridgePublisher on a moto server: what only the EventBridge adapter has (partial failures
and their resends, permanent entry errors, no request for an oversized batch). Delivery itself is
proved for this adapter and the fake alike in `test_port_contract_publisher.py`."""

from __future__ import annotations

import pytest
from types_aiobotocore_events.client import EventBridgeClient

from contracts.errors import EventTooLarge
from sluice_shared.aws.events import EventBridgePublisher
from sluice_shared.errors import TransientError
from sluice_shared.ports import PublishRejected
from sluice_shared.retry import aws_retry
from tests.integration.shared.helpers import PutEventsSpy, ingested

BUS = "sluice-bus"


async def test_publish_partial_failure_resends_only_failed_entries(
    events: EventBridgeClient, retry_waits: list[float]
) -> None:
    # GIVEN a bus whose first response fails entries 1, 4 and 7
    await events.create_event_bus(Name=BUS)
    envelopes = [ingested(n) for n in range(10)]
    spy = PutEventsSpy(events, fail_ids={envelopes[i].id for i in (1, 4, 7)}, fail_rounds=1)

    # WHEN ten envelopes are published
    await EventBridgePublisher(events, BUS).publish(envelopes)

    # THEN the second request carries exactly the three failed envelopes, once, after a backoff
    ids = [e.id for e in envelopes]
    assert spy.requests == [ids, [ids[1], ids[4], ids[7]]]
    assert len(retry_waits) == 1


async def test_publish_entries_failing_every_time_raise_transient_naming_them(
    events: EventBridgeClient,
) -> None:
    await events.create_event_bus(Name=BUS)
    envelopes = [ingested(n) for n in range(3)]
    spy = PutEventsSpy(
        events,
        fail_ids={envelopes[0].id, envelopes[2].id},
        fail_rounds=100,
        code="ThrottlingException",
    )
    publisher = EventBridgePublisher(events, BUS, retry=lambda: aws_retry(attempts=3))

    with pytest.raises(TransientError) as caught:
        await publisher.publish(envelopes)

    # Bounded: 3 attempts, every retry with only the two failing entries.
    assert len(spy.requests) == 3
    assert spy.requests[1:] == [[envelopes[0].id, envelopes[2].id]] * 2
    assert envelopes[0].id in str(caught.value)
    assert envelopes[2].id in str(caught.value)
    assert envelopes[1].id not in str(caught.value)


async def test_publish_permanent_entry_error_is_not_retried(events: EventBridgeClient) -> None:
    await events.create_event_bus(Name=BUS)
    envelope = ingested(1)
    spy = PutEventsSpy(events, fail_ids={envelope.id}, fail_rounds=100, code="MalformedDetail")

    with pytest.raises(PublishRejected, match="MalformedDetail"):
        await EventBridgePublisher(events, BUS).publish([envelope])

    assert len(spy.requests) == 1


async def test_publish_oversized_envelope_sends_nothing(events: EventBridgeClient) -> None:
    await events.create_event_bus(Name=BUS)
    spy = PutEventsSpy(events, fail_ids=set(), fail_rounds=0)
    huge = ingested(2).model_copy(update={"subject": "s" * 300_000})

    with pytest.raises(EventTooLarge):
        await EventBridgePublisher(events, BUS).publish([ingested(1), huge])

    assert spy.requests == []
