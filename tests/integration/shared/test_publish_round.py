"""A batch's facts share PutEvents requests (`sluice_shared.publishing`), on a moto server: the
records of one SQS batch run concurrently and publish through the real `EventBridgePublisher`; the
requests are counted on the client and the facts received from a queue the bus routes them to."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from types_aiobotocore_events.client import EventBridgeClient
from types_aiobotocore_sqs.client import SQSClient

from contracts.envelope import Envelope
from contracts.events import FileIngestedV1
from sluice_shared.aws.events import EventBridgePublisher
from sluice_shared.publishing import DEFAULT_WAIT_MS, wait_ms_from_env
from sluice_shared.retry import aws_retry
from sluice_shared.runtime import parse_with_registry
from sluice_shared.sqs import BatchProcessor, Concurrency
from tests.fakes import RecordingParker
from tests.integration.shared.helpers import PutEventsSpy, bus_to_queue, drain, ingested

BUS = "sluice-bus"
Handler = Callable[[Envelope[Any], EventBridgePublisher], Awaitable[None]]


def sqs_record(n: int, envelope: Envelope[Any]) -> dict[str, Any]:
    """An SQS record as the event source mapping hands it over, the fact in its body."""
    body = {
        "version": "0",
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "detail-type": envelope.type,
        "source": envelope.source,
        "account": "123456789012",
        "time": "2024-01-15T10:30:05Z",
        "region": "us-east-1",
        "resources": [],
        "detail": envelope.model_dump(mode="json"),
    }
    return {"messageId": f"m{n}", "receiptHandle": f"rh{n}", "body": json.dumps(body)}


def next_facts(envelope: Envelope[Any], copies: int = 1) -> list[Envelope[Any]]:
    """What a record publishes: facts derived from its own (distinct ids per record)."""
    n = int(envelope.data.file_id, 16)
    facts = [ingested(1000 + 10 * n + copy) for copy in range(copies)]
    return [
        fact.model_copy(update={"id": str(uuid.UUID(int=k + 1))})
        for k, fact in enumerate(facts, 10 * n)
    ]


async def run_batch(
    publisher: EventBridgePublisher, handle: Handler, records: int, *, wait_ms: int
) -> list[str]:
    """Process `records` records concurrently; return the message ids of the failed ones."""
    processor = BatchProcessor(
        parse=parse_with_registry,
        parker=RecordingParker(),
        dlq_url=None,
        logger=Logger(service="test-publish-round"),
        concurrency=Concurrency(limit=10),
        publish_wait_ms=wait_ms,
    )
    event = {"Records": [sqs_record(n, ingested(n)) for n in range(records)]}

    async def handle_one(envelope: Envelope[Any], deps: EventBridgePublisher) -> None:
        await handle(envelope, deps)

    response = await asyncio.wait_for(
        processor.process(event, handle_one, publisher, accepted={FileIngestedV1.TYPE}),
        timeout=20,
    )
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


async def publish_next(envelope: Envelope[Any], publisher: EventBridgePublisher) -> None:
    await publisher.publish(next_facts(envelope))


@pytest.fixture
async def queue(events: EventBridgeClient, sqs: SQSClient) -> str:
    """The bus, and a queue receiving every `file.ingested.v1` published on it."""
    return await bus_to_queue(events, sqs, BUS, "facts", FileIngestedV1.TYPE)


async def test_a_batch_of_records_publishes_its_facts_in_one_request(
    events: EventBridgeClient, sqs: SQSClient, queue: str
) -> None:
    # GIVEN ten records, each publishing one fact
    spy = PutEventsSpy(events, fail_ids=set(), fail_rounds=0)

    # WHEN the batch runs
    failed = await run_batch(
        EventBridgePublisher(events, BUS), publish_next, 10, wait_ms=DEFAULT_WAIT_MS
    )

    # THEN one request carried all ten facts, and the bus delivered each of them once
    expected = {fact.id for n in range(10) for fact in next_facts(ingested(n))}
    assert failed == []
    assert len(spy.requests) == 1
    assert set(spy.requests[0]) == expected
    received = await drain(sqs, queue, expected=10)
    assert sorted(json.loads(str(m["Body"]))["detail"]["id"] for m in received) == sorted(expected)


async def test_without_a_round_each_record_sends_its_own_request(
    events: EventBridgeClient, queue: str
) -> None:
    # The control of the test above: SLUICE_PUBLISH_WAIT_MS=0 opens no round.
    spy = PutEventsSpy(events, fail_ids=set(), fail_rounds=0)

    failed = await run_batch(EventBridgePublisher(events, BUS), publish_next, 4, wait_ms=0)

    assert failed == []
    assert sorted(len(request) for request in spy.requests) == [1, 1, 1, 1]


async def test_records_publishing_several_facts_share_requests_of_at_most_ten(
    events: EventBridgeClient, queue: str
) -> None:
    # GIVEN seven records publishing two facts each (one fact in two majors, as ingest does)
    spy = PutEventsSpy(events, fail_ids=set(), fail_rounds=0)

    async def two(envelope: Envelope[Any], publisher: EventBridgePublisher) -> None:
        await publisher.publish(next_facts(envelope, copies=2))

    failed = await run_batch(EventBridgePublisher(events, BUS), two, 7, wait_ms=DEFAULT_WAIT_MS)

    # THEN the 14 entries went out in two requests (ten wait: one is sent at once), and a
    # record's two entries were never split across requests of different rounds
    assert failed == []
    assert sum(len(request) for request in spy.requests) == 14
    assert len(spy.requests) == 2
    assert all(len(request) <= 10 for request in spy.requests)


async def test_a_fact_the_bus_refuses_fails_only_its_own_record(
    events: EventBridgeClient, sqs: SQSClient, queue: str
) -> None:
    # GIVEN a bus refusing record 1's fact for good, and record 2's every time it is retried
    refused = next_facts(ingested(1))[0].id
    throttled = next_facts(ingested(2))[0].id
    spy = PutEventsSpy(
        events,
        fail_ids={refused, throttled},
        fail_rounds=100,
        codes={refused: "MalformedDetail", throttled: "ThrottlingException"},
    )
    publisher = EventBridgePublisher(events, BUS, retry=lambda: aws_retry(attempts=3))

    # WHEN a batch of four records runs
    failed = await run_batch(publisher, publish_next, 4, wait_ms=DEFAULT_WAIT_MS)

    # THEN only those two records fail (SQS redelivers exactly them); the refused fact is not
    # retried, the throttled one alone is, and the other two facts went out once (the spy only
    # rewrites responses: the bus took every entry sent, so the queue holds the resends too)
    assert sorted(failed) == ["m1", "m2"]
    assert len(spy.requests[0]) == 4
    assert spy.requests[1:] == [[throttled], [throttled]]
    received = await drain(sqs, queue, expected=7)
    delivered = [json.loads(str(m["Body"]))["detail"]["id"] for m in received]
    for n in (0, 3):
        assert delivered.count(next_facts(ingested(n))[0].id) == 1


async def test_a_record_waits_for_slower_siblings_at_most_the_wait(
    events: EventBridgeClient, queue: str
) -> None:
    # GIVEN record 0 publishing at once and record 1 publishing only once record 0's fact is
    # out: record 1 is running, not waiting, so record 0's fact goes out when its wait ends
    spy = PutEventsSpy(events, fail_ids=set(), fail_rounds=0)
    first_out = asyncio.Event()

    async def ordered(envelope: Envelope[Any], publisher: EventBridgePublisher) -> None:
        if envelope.data.file_id == ingested(1).data.file_id:
            await asyncio.wait_for(first_out.wait(), timeout=10)
        await publisher.publish(next_facts(envelope))
        first_out.set()

    failed = await run_batch(EventBridgePublisher(events, BUS), ordered, 2, wait_ms=50)

    assert failed == []
    assert spy.requests == [[next_facts(ingested(n))[0].id] for n in (0, 1)]


async def test_a_record_ending_without_a_fact_releases_the_waiting_ones(
    events: EventBridgeClient, queue: str
) -> None:
    # GIVEN a wait far longer than the batch's time limit, and one record publishing nothing
    # (a duplicate delivery) after the others began to wait
    spy = PutEventsSpy(events, fail_ids=set(), fail_rounds=0)

    async def some(envelope: Envelope[Any], publisher: EventBridgePublisher) -> None:
        if envelope.data.file_id == ingested(2).data.file_id:
            await asyncio.sleep(0.05)
            return
        await publisher.publish(next_facts(envelope))

    # WHEN the batch runs, THEN it ends in time: the others' facts went out when it ended
    failed = await run_batch(EventBridgePublisher(events, BUS), some, 3, wait_ms=600_000)

    assert failed == []
    assert [sorted(request) for request in spy.requests] == [
        sorted(next_facts(ingested(n))[0].id for n in (0, 1))
    ]


@pytest.mark.parametrize(
    ("raw", "expected"), [("", DEFAULT_WAIT_MS), ("0", 0), (" 40 ", 40)], ids=["unset", "0", "40"]
)
def test_publish_wait_is_read_from_the_environment(raw: str, expected: int) -> None:
    assert wait_ms_from_env({"SLUICE_PUBLISH_WAIT_MS": raw}) == expected


@pytest.mark.parametrize("raw", ["-1", "fast", "2.5"])
def test_a_bad_publish_wait_fails_the_cold_start(raw: str) -> None:
    with pytest.raises(ValueError, match="SLUICE_PUBLISH_WAIT_MS"):
        wait_ms_from_env({"SLUICE_PUBLISH_WAIT_MS": raw})
