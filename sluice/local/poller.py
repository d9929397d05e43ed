"""SQS event source mappings: what Lambda's pollers do, for the local runner.

One `SqsPoller` per `AWS::Lambda::EventSourceMapping` on a queue. It runs
`ScalingConfig.MaximumConcurrency` polling loops; each receives a batch (`BatchSize`, gathering
for up to `MaximumBatchingWindowInSeconds`), invokes the function with a Lambda-shaped SQS event
and deletes what succeeded. It never changes visibility: a failed or lost batch reappears after the
queue's visibility timeout, and SQS's redrive policy moves a message to the DLQ after
`maxReceiveCount` receives — exactly Lambda's contract.

The pollers are part of the emulated Lambda service, not clients of it: in the runtime they call
the embedded moto's SQS backend directly (`MotoSqsQueue`) — the same `receive_message` and
`delete_message_batch` that serve the HTTP API, so visibility, receive counts, redrive, FIFO
groups and long polls behave identically — without a signed HTTP round trip per call.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Executor

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
                "binaryValue": _base64(value.get("BinaryValue")),
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": [_base64(v) for v in value.get("BinaryListValues", [])],
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


def _base64(value: Any) -> Any:
    # Lambda's event carries binary attribute values base64-encoded (clients hand over bytes).
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return value


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
        self.messages_failed = 0
        """Messages a batch failed (left to reappear after the visibility timeout)."""
        self.messages_redelivered = 0
        """Messages received again (receive count above 1): the retries of failed ones."""
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
        self.messages_redelivered += sum(_receive_count(m) > 1 for m in batch)
        event = sqs_event(batch, self.config.queue_arn, self.config.region)
        result = await self.invoker.invoke(self.config.function_name, json.dumps(event).encode())
        self.batches += 1
        if result.function_error is not None:
            outcome.whole_batch_failed = True
            self.messages_failed += len(batch)
            return outcome
        ids = {m["MessageId"] for m in batch}
        failed: list[str] | None = []
        if self.config.report_batch_item_failures:
            failed = failed_item_ids(result.payload, ids)
        if failed is None:
            outcome.whole_batch_failed = True
            self.messages_failed += len(batch)
            return outcome
        outcome.failed_ids = failed
        self.messages_failed += len(failed)
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


MAPPING_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
"""What a function's execution role needs on the queue of its SQS event source mapping."""


class AuthorizedQueue:
    """A `QueueClient` that acts as the function's execution role: each receive is checked for
    `sqs:ReceiveMessage` and `sqs:GetQueueAttributes`, each delete for `sqs:DeleteMessage`.

    Lambda checks the role when the mapping is created (the runtime does too: `up` fails) and
    again as it polls: a grant removed later makes the poller fail its receive (logged, retried
    after a pause, counted as a denial) until it is restored, and messages stay in the queue.

    Args:
        inner: the queue.
        check: raises when the role may not perform the action (`service:Action`).
    """

    def __init__(self, inner: QueueClient, check: Callable[[str], None]) -> None:
        self.inner = inner
        self.check = check

    async def receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        """Check, then receive."""
        self.check("sqs:ReceiveMessage")
        self.check("sqs:GetQueueAttributes")
        return await self.inner.receive(max_messages, wait_seconds)

    async def delete(self, entries: list[tuple[str, str]]) -> None:
        """Check, then delete."""
        self.check("sqs:DeleteMessage")
        await self.inner.delete(entries)


class MotoSqsQueue:
    """`QueueClient` on the embedded moto's SQS backend, in process.

    Receives run moto's own `SQSBackend.receive_message` (long polls block, so on `executor`),
    with the queue's visibility timeout as a ReceiveMessage without `VisibilityTimeout` gets;
    messages come back shaped as the ReceiveMessage API returns them. Deletes run moto's
    `delete_message_batch`; unknown receipt handles are skipped, as the batch API reports them
    failed without raising.

    Args:
        queue_arn: the mapping's queue (its account and region select moto's backend).
        executor: threads for the blocking receives (one per concurrent polling loop).
    """

    def __init__(self, queue_arn: str, executor: Executor) -> None:
        parts = queue_arn.split(":")
        self.region, self.account, self.queue_name = parts[3], parts[4], parts[5]
        self.executor = executor

    def _backend(self) -> Any:
        from moto.sqs.models import sqs_backends

        return sqs_backends[self.account][self.region]

    async def receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        """ReceiveMessage with every system and message attribute."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._receive, max_messages, wait_seconds)

    def _receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        backend = self._backend()
        queue = backend.get_queue(self.queue_name)
        received = backend.receive_message(
            self.queue_name, max_messages, wait_seconds, queue.visibility_timeout, ["All"]
        )
        return [api_message(m) for m in received]

    async def delete(self, entries: list[tuple[str, str]]) -> None:
        """DeleteMessageBatch in chunks of ten."""
        backend = self._backend()
        for start in range(0, len(entries), 10):
            chunk = entries[start : start + 10]
            backend.delete_message_batch(
                self.queue_name,
                [{"Id": str(i), "ReceiptHandle": handle} for i, (_, handle) in enumerate(chunk)],
            )


def api_message(message: Any) -> dict[str, Any]:
    """A moto `Message` as the ReceiveMessage API returns it (every system attribute)."""
    out: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.body_md5,
        "Body": message.body,
    }
    if message.message_attributes:
        out["MessageAttributes"] = message.message_attributes
        out["MD5OfMessageAttributes"] = message.attribute_md5
    attributes: dict[str, str] = {
        "SenderId": message.sender_id,
        "SentTimestamp": str(message.sent_timestamp),
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
    }
    if message.deduplication_id is not None:
        attributes["MessageDeduplicationId"] = message.deduplication_id
    if message.group_id is not None:
        attributes["MessageGroupId"] = message.group_id
    trace = (message.system_attributes or {}).get("AWSTraceHeader")
    if trace:
        attributes["AWSTraceHeader"] = trace.get("StringValue")
    if message.sequence_number is not None:
        attributes["SequenceNumber"] = message.sequence_number
    out["Attributes"] = attributes
    return out


def _receive_count(message: dict[str, Any]) -> int:
    try:
        return int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    except ValueError:
        return 1
