"""EventBridgePublisher on a moto server: what only the EventBridge adapter has (partial failures
and their resends, permanent entry errors, no request for an oversized batch). Delivery itself is
proved for this adapter and the fake alike in `test_port_contract_publisher.py`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from types_aiobotocore_events.client import EventBridgeClient

from contracts.errors import EventTooLarge
from sluice_shared.aws.events import EventBridgePublisher
from sluice_shared.errors import TransientError
from sluice_shared.ports import PublishRejected
from sluice_shared.retry import aws_retry
from tests.integration.shared.helpers import ingested

BUS = "sluice-bus"


class PutEventsSpy:
    """Hooks on the client: records the envelope ids of every PutEvents request and, for the
    first `fail_rounds` responses, marks the entries of the envelopes in `fail_ids` as failed
    (the bus accepted them, but the response says otherwise: a retry must resend exactly them)."""

    def __init__(
        self,
        events: EventBridgeClient,
        *,
        fail_ids: set[str],
        fail_rounds: int,
        code: str = "InternalFailure",
    ) -> None:
        self.requests: list[list[str]] = []
        self.fail_ids = fail_ids
        self.fail_rounds = fail_rounds
        self.code = code
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
                parsed["Entries"][position] = {"ErrorCode": self.code, "ErrorMessage": "injected"}
                failed += 1
            else:
                assert "EventId" in result
        parsed["FailedEntryCount"] = failed


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
