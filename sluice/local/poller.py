"""SQS event source mappings: what Lambda's pollers do, for the local runner.

One `SqsPoller` per `AWS::Lambda::EventSourceMapping` on a queue. It runs
`ScalingConfig.MaximumConcurrency` polling loops; each receives a batch (`BatchSize`, gathering
for up to `MaximumBatchingWindowInSeconds`), invokes the function with a Lambda-shaped SQS event
and deletes what succeeded. It never changes visibility: a failed or lost batch reappears after the
queue's visibility timeout, and SQS's redrive policy moves a message to the DLQ after
`maxReceiveCount` receives — exactly Lambda's contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("sluice.local.poller")

SQS_RECEIVE_MAX = 10
"""SQS returns at most 10 messages per ReceiveMessage."""
DEFAULT_CONCURRENCY = 2
"""Concurrent batches when the mapping sets no `ScalingConfig` (Lambda's minimum is 2; AWS would
scale further, which one laptop with two cores cannot)."""


class QueueClient(Protocol):
    """The two SQS calls a poller needs."""

    async def receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        """ReceiveMessage with all attributes; returns SQS API message dicts."""
        ...

    async def delete(self, entries: list[tuple[str, str]]) -> None:
        """DeleteMessageBatch of (message id, receipt handle) pairs."""
        ...


class InvokeOutcome(Protocol):
    """What the poller reads from an invocation result."""

    @property
    def payload(self) -> bytes: ...

    @property
    def function_error(self) -> str | None: ...


class Invoker(Protocol):
    """Synchronous invoke of a function (the runner)."""

    async def invoke(self, name_or_arn: str, payload: bytes) -> InvokeOutcome:
        """Invoke and wait for the result."""
        ...


@dataclass(frozen=True)
class MappingConfig:
    """An event source mapping as the template defines it."""

    function_name: str
    queue_arn: str
    batch_size: int = 10
    batching_window_s: float = 0.0
    report_batch_item_failures: bool = False
    max_concurrency: int = DEFAULT_CONCURRENCY
    enabled: bool = True
    poll_wait_s: int = 1
    """Long-poll wait per receive; short so that `down` is prompt (AWS uses 20 s)."""

    @property
    def region(self) -> str:
        """Region from the queue ARN."""
        return self.queue_arn.split(":")[3]


@dataclass
class BatchOutcome:
    """What happened to one batch."""

    received: int = 0
    deleted: int = 0
    failed_ids: list[str] = field(default_factory=list)
    whole_batch_failed: bool = False


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda passes for a batch of SQS messages."""
    records = []
    for msg in messages:
        attributes = {
            k: v
            for k, v in (msg.get("Attributes") or {}).items()
            if k
            in (
                "ApproximateReceiveCount",
                "SentTimestamp",
                "SenderId",
                "ApproximateFirstReceiveTimestamp",
                "SequenceNumber",
                "MessageGroupId",
                "MessageDeduplicationId",
                "AWSTraceHeader",
                "DeadLetterQueueSourceArn",
            )
        }
        message_attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": value.get("BinaryListValues", []),
                "dataType": value.get("DataType"),
            }
            for name, value in (msg.get("MessageAttributes") or {}).items()
        }
        records.append(
            {
                "messageId": msg["MessageId"],
                "receiptHandle": msg["ReceiptHandle"],
                "body": msg["Body"],
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": msg.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def failed_item_ids(payload: bytes, batch_ids: set[str]) -> list[str] | None:
    """Message ids the function reported as failed; None means "treat the whole batch as failed".

    Follows Lambda's rules: an empty or null response, or an empty/null `batchItemFailures`, is
    full success; invalid JSON, a null or empty `itemIdentifier`, a wrong key or an id that is not
    in the batch fails the whole batch.
    """
    if not payload.strip():
        return []
    try:
        response = json.loads(payload)
    except ValueError:
        return None
    if response is None:
        return []
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        return None
    ids: list[str] = []
    for item in failures:
        if not isinstance(item, dict):
            return None
        ident = item.get("itemIdentifier")
        if not isinstance(ident, str) or not ident or ident not in batch_ids:
            return None
        ids.append(ident)
    return ids


class SqsPoller:
    """Polls one queue for one function.

    Args:
        config: the mapping.
        queue: the queue's client.
        invoker: the function runner.
    """

    def __init__(self, config: MappingConfig, queue: QueueClient, invoker: Invoker) -> None:
        self.config = config
        self.queue = queue
        self.invoker = invoker
        self.batches = 0
        self.messages_deleted = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def collect_batch(self) -> list[dict[str, Any]]:
        """Receive up to `BatchSize` messages, gathering for up to the batching window.

        The window starts when the first message arrives; with no window, one receive's worth is
        a batch (as Lambda does).
        """
        cfg = self.config
        batch: list[dict[str, Any]] = []
        seen: set[str] = set()
        window_ends: float | None = None
        while len(batch) < cfg.batch_size:
            want = min(SQS_RECEIVE_MAX, cfg.batch_size - len(batch))
            if window_ends is None:
                wait = cfg.poll_wait_s
            else:
                remaining = window_ends - time.monotonic()
                if remaining <= 0:
                    break
                wait = min(int(remaining), 20)
            received = await self.queue.receive(want, wait)
            for msg in received:
                if msg["MessageId"] not in seen:
                    seen.add(msg["MessageId"])
                    batch.append(msg)
            if not batch:
                return batch
            if window_ends is None:
                if cfg.batching_window_s <= 0:
                    break
                window_ends = time.monotonic() + cfg.batching_window_s
            if not received and window_ends is not None:
                await asyncio.sleep(min(0.1, max(0.0, window_ends - time.monotonic())))
        return batch

    async def poll_once(self) -> BatchOutcome:
        """Receive one batch, invoke the function, delete what succeeded."""
        batch = await self.collect_batch()
        outcome = BatchOutcome(received=len(batch))
        if not batch:
            return outcome
        event = sqs_event(batch, self.config.queue_arn, self.config.region)
        result = await self.invoker.invoke(self.config.function_name, json.dumps(event).encode())
        self.batches += 1
        if result.function_error is not None:
            outcome.whole_batch_failed = True
            return outcome
        ids = {m["MessageId"] for m in batch}
        failed: list[str] | None = []
        if self.config.report_batch_item_failures:
            failed = failed_item_ids(result.payload, ids)
        if failed is None:
            outcome.whole_batch_failed = True
            return outcome
        outcome.failed_ids = failed
        done = [(m["MessageId"], m["ReceiptHandle"]) for m in batch if m["MessageId"] not in failed]
        if done:
            await self.queue.delete(done)
        outcome.deleted = len(done)
        self.messages_deleted += len(done)
        return outcome

    async def _loop(self) -> None:
        while True:
            try:
                outcome = await self.poll_once()
                if outcome.received == 0 and self.config.poll_wait_s == 0:
                    await asyncio.sleep(0.05)  # no long poll: do not spin on an empty queue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "poller error function=%s queue=%s error=%s",
                    self.config.function_name,
                    self.config.queue_arn,
                    exc,
                )
                await asyncio.sleep(1.0)

    def start(self) -> None:
        """Start `max_concurrency` polling loops on the running event loop."""
        if self._tasks or not self.config.enabled:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._loop(), name=f"poll:{self.config.function_name}:{i}")
            for i in range(max(1, self.config.max_concurrency))
        ]

    async def stop(self) -> None:
        """Cancel the loops; a batch in flight is abandoned (it reappears after the timeout)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


class AioSqsQueue:
    """`QueueClient` over an aiobotocore SQS client."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    async def receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        """ReceiveMessage with every system and message attribute."""
        response = await self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    async def delete(self, entries: list[tuple[str, str]]) -> None:
        """DeleteMessageBatch in chunks of ten."""
        for start in range(0, len(entries), 10):
            chunk = entries[start : start + 10]
            await self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle} for i, (_, handle) in enumerate(chunk)
                ],
            )
