"""Event source mapping semantics with an in-memory queue and a scripted function."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from sluice.local.poller import MappingConfig, SqsPoller, failed_item_ids, sqs_event

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:q"


class InMemoryQueue:
    """Hands out messages in order; records receives and deletes."""

    def __init__(self, bodies: list[str], per_receive: int = 10) -> None:
        self.waiting = [
            {
                "MessageId": f"m{i}",
                "ReceiptHandle": f"h{i}",
                "Body": body,
                "MD5OfBody": "md5",
                "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "Junk": "x"},
                "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
            }
            for i, body in enumerate(bodies)
        ]
        self.per_receive = per_receive
        self.receives: list[tuple[int, int]] = []
        self.deleted: list[str] = []

    def push(self, count: int) -> None:
        start = len(self.waiting) + len(self.deleted) + 1000
        self.waiting += [
            {"MessageId": f"n{start + i}", "ReceiptHandle": f"hn{start + i}", "Body": "{}"}
            for i in range(count)
        ]

    async def receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        self.receives.append((max_messages, wait_seconds))
        take = min(max_messages, self.per_receive)
        out, self.waiting = self.waiting[:take], self.waiting[take:]
        return out

    async def delete(self, entries: list[tuple[str, str]]) -> None:
        self.deleted += [message_id for message_id, _ in entries]


@dataclass
class Result:
    payload: bytes = b"null"
    function_error: str | None = None


@dataclass
class ScriptedFunction:
    results: list[Result] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    async def invoke(self, name_or_arn: str, payload: bytes) -> Result:
        self.events.append(json.loads(payload))
        return self.results.pop(0) if self.results else Result()


def _poller(queue: InMemoryQueue, fn: ScriptedFunction, **cfg: Any) -> SqsPoller:
    return SqsPoller(MappingConfig("fn", QUEUE_ARN, poll_wait_s=0, **cfg), queue, fn)


async def test_poll_success_deletes_whole_batch() -> None:
    queue, fn = InMemoryQueue(["{}"] * 3), ScriptedFunction()
    outcome = await _poller(queue, fn, batch_size=10).poll_once()
    assert outcome.received == 3
    assert queue.deleted == ["m0", "m1", "m2"]


async def test_poll_batch_size_caps_records_per_invoke() -> None:
    queue, fn = InMemoryQueue(["{}"] * 7), ScriptedFunction()
    await _poller(queue, fn, batch_size=5).poll_once()
    assert len(fn.events[0]["Records"]) == 5
    assert queue.receives[0][0] == 5


async def test_poll_batch_size_above_ten_gathers_within_window() -> None:
    # GIVEN 25 messages, 10 per receive, BatchSize 25 and a window (generous: a full batch ends
    # it early, so only a stalled machine would ever wait it out)
    queue, fn = InMemoryQueue(["{}"] * 25), ScriptedFunction()
    await _poller(queue, fn, batch_size=25, batching_window_s=30.0).poll_once()
    # THEN one invocation carries all 25
    assert len(fn.events) == 1
    assert len(fn.events[0]["Records"]) == 25


async def test_poll_without_window_invokes_after_first_receive() -> None:
    queue, fn = InMemoryQueue(["{}"] * 25), ScriptedFunction()
    await _poller(queue, fn, batch_size=25).poll_once()
    assert len(fn.events[0]["Records"]) == 10


async def test_poll_function_error_deletes_nothing() -> None:
    queue = InMemoryQueue(["{}"] * 2)
    fn = ScriptedFunction([Result(b'{"errorType": "X"}', "Unhandled")])
    outcome = await _poller(queue, fn).poll_once()
    assert outcome.whole_batch_failed
    assert queue.deleted == []


async def test_poll_partial_failure_deletes_only_succeeded() -> None:
    queue = InMemoryQueue(["{}"] * 3)
    fn = ScriptedFunction([Result(b'{"batchItemFailures": [{"itemIdentifier": "m1"}]}')])
    outcome = await _poller(queue, fn, report_batch_item_failures=True).poll_once()
    assert outcome.failed_ids == ["m1"]
    assert queue.deleted == ["m0", "m2"]


async def test_poll_invalid_item_identifier_fails_whole_batch() -> None:
    queue = InMemoryQueue(["{}"] * 3)
    fn = ScriptedFunction([Result(b'{"batchItemFailures": [{"itemIdentifier": "zz"}]}')])
    outcome = await _poller(queue, fn, report_batch_item_failures=True).poll_once()
    assert outcome.whole_batch_failed
    assert queue.deleted == []


async def test_poll_failures_ignored_without_report_batch_item_failures() -> None:
    queue = InMemoryQueue(["{}"] * 2)
    fn = ScriptedFunction([Result(b'{"batchItemFailures": [{"itemIdentifier": "m1"}]}')])
    await _poller(queue, fn).poll_once()
    assert queue.deleted == ["m0", "m1"]


async def test_poll_empty_queue_invokes_nothing() -> None:
    queue, fn = InMemoryQueue([]), ScriptedFunction()
    outcome = await _poller(queue, fn).poll_once()
    assert outcome.received == 0
    assert fn.events == []


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", []),
        (b"null", []),
        (b"{}", []),
        (b'{"batchItemFailures": []}', []),
        (b'{"batchItemFailures": null}', []),
        (b'{"batchItemFailures": [{"itemIdentifier": "a"}]}', ["a"]),
        (b'{"batchItemFailures": [{"itemIdentifier": ""}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": null}]}', None),
        (b'{"batchItemFailures": [{"itemId": "a"}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": "nope"}]}', None),
        (b"not json", None),
        (b'"a string"', None),
    ],
)
def test_failed_item_ids_follows_lambda_rules(payload: bytes, expected: list[str] | None) -> None:
    assert failed_item_ids(payload, {"a", "b"}) == expected


def test_sqs_event_has_lambda_record_shape() -> None:
    queue = InMemoryQueue(['{"x": 1}'])
    record = sqs_event(queue.waiting, QUEUE_ARN, "us-east-1")["Records"][0]
    assert record["messageId"] == "m0"
    assert record["receiptHandle"] == "h0"
    assert record["body"] == '{"x": 1}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == QUEUE_ARN
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == "md5"
    assert record["attributes"] == {"ApproximateReceiveCount": "1", "SentTimestamp": "1"}
    assert record["messageAttributes"]["k"]["stringValue"] == "v"
    assert record["messageAttributes"]["k"]["dataType"] == "String"


async def test_start_runs_max_concurrency_loops() -> None:
    queue, fn = InMemoryQueue([]), ScriptedFunction()
    poller = _poller(queue, fn, max_concurrency=3)
    poller.start()
    assert len(poller._tasks) == 3
    await poller.stop()
    assert poller._tasks == []


async def test_max_concurrency_bounds_concurrent_invocations() -> None:
    import asyncio

    # GIVEN 12 messages, one per batch, MaximumConcurrency 3, and a function whose first
    # invocations hold until three are in flight together (so the peak does not depend on timing)
    class DrainedQueue(InMemoryQueue):
        drained = asyncio.Event()

        async def delete(self, entries: list[tuple[str, str]]) -> None:
            await super().delete(entries)
            if not self.waiting and len(self.deleted) == 12:
                self.drained.set()

    queue = DrainedQueue(["{}"] * 12)
    in_flight = 0
    peak = 0
    three_together = asyncio.Event()

    class GatedFunction:
        async def invoke(self, name_or_arn: str, payload: bytes) -> Result:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            if in_flight == 3:
                three_together.set()
            await three_together.wait()
            await asyncio.sleep(0)
            in_flight -= 1
            return Result()

    config = MappingConfig("fn", QUEUE_ARN, batch_size=1, max_concurrency=3, poll_wait_s=0)
    poller = SqsPoller(config, queue, GatedFunction())
    # WHEN the poller runs until the queue is drained (a deadline, not a budget)
    poller.start()

    try:
        await asyncio.wait_for(queue.drained.wait(), 60)
    finally:
        await poller.stop()
    # THEN three batches ran at once, never more
    assert len(queue.deleted) == 12
    assert peak == 3
