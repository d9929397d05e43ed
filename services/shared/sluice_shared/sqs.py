"""SQS batch processing with partial batch responses (`ReportBatchItemFailures`).

Each SQS record's body is an EventBridge event as an EventBridge -> SQS target delivers it
(`{"version", "id", "detail-type", "source", "account", "time", "region", "resources",
"detail"}`), whose `detail` is a Sluice envelope. Per record:

- the handler returned: success.
- otherwise the outbound table of `sluice_shared.errors` decides. Retry (`TransientError`, any
  other `SluiceError`, any unexpected exception): listed in `batchItemFailures`; SQS redelivers
  it and moves it to the DLQ after `maxReceiveCount`. Park (`PoisonInputError`, contract errors
  included: bad JSON, unknown major, invalid data, a type this consumer does not accept): parked
  in the DLQ at once with the reason, reported as success, so it is never retried forever. Fail
  the batch (a `BaseException` such as a cancellation): it escapes, and the invocation fails.
- poison, but parking failed or no DLQ is configured: listed in `batchItemFailures` (the queue's
  redrive policy parks it later).

Concurrency. A handler spends most of a small file's time waiting for S3, DynamoDB and EventBridge,
and Lambda bills the invocation's duration, so the records of a standard-queue batch run
concurrently: at most `SLUICE_RECORD_CONCURRENCY` at once (default 10, the templates' and Lambda's
default `BatchSize`, so a batch of small files runs all at once; 1 runs them one after another).
Memory is what concurrency costs, so the running records' declared inputs together stay within a
budget: `SLUICE_CONCURRENT_INPUT_BYTES` (default 64 MiB) for facts that declare bytes
(`size_bytes` or `bytes_in`), `SLUICE_CONCURRENT_INPUT_ROWS` (default 800,000) for facts that
carry only row counts (`rows_file_in`/`rows_in`): ten 2 KB files run together, four 16 MiB files
at most, as many as ran together before the budget. Only **small** records share the handler: a
record declaring at most `SLUICE_CONCURRENT_RECORD_MAX_BYTES` bytes (default 16 MiB) or
`SLUICE_CONCURRENT_RECORD_MAX_ROWS` rows (default 200,000). Any other record (large, or of unknown
size) runs alone: it waits for the running records to finish and holds every slot, so a large file
never has company. Records are admitted in batch order. A record that does not parse is only
parked, and counts as small and weightless. Each record still gets its own result, reported in the
batch's order. The facts the running records publish share PutEvents requests
(`sluice_shared.publishing`, `SLUICE_PUBLISH_WAIT_MS`).

On a FIFO queue records run one after another, in order, and the first failure also fails every
later record of the batch, which keeps the order of message groups (Lambda requires it).

Time. A record that has not started when the invocation has less than `SLUICE_MIN_REMAINING_MS`
left (default 10,000 ms, read from the Lambda context's `get_remaining_time_in_millis()`) is not
started: it is reported in `batchItemFailures` (reason `out_of_time`) and SQS redelivers it,
instead of the timeout killing the invocation mid-record and the whole batch coming back. The
first record of an invocation always starts, so a function whose timeout is below the threshold
still makes progress, one record per invocation.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from aws_lambda_powertools import Logger

from sluice_shared.errors import (
    ContractViolation,
    MalformedBatchError,
    PoisonInputError,
    SqsOutcome,
    TransientError,
    route,
)
from sluice_shared.observability import correlation_scope
from sluice_shared.ports import QueueParker
from sluice_shared.publishing import DEFAULT_WAIT_MS, PublishRound, publish_round
from sluice_shared.settings import int_from_env

if TYPE_CHECKING:
    from contracts.envelope import Envelope

DepsT = TypeVar("DepsT")

EventParser = Callable[[Mapping[str, Any]], "Envelope[Any]"]
RecordHandler = Callable[["Envelope[Any]", DepsT], Awaitable[None]]

MAX_REASON_CHARS = 1024

RECORD_CONCURRENCY_ENV = "SLUICE_RECORD_CONCURRENCY"
CONCURRENT_MAX_BYTES_ENV = "SLUICE_CONCURRENT_RECORD_MAX_BYTES"
CONCURRENT_MAX_ROWS_ENV = "SLUICE_CONCURRENT_RECORD_MAX_ROWS"
CONCURRENT_BUDGET_BYTES_ENV = "SLUICE_CONCURRENT_INPUT_BYTES"
CONCURRENT_BUDGET_ROWS_ENV = "SLUICE_CONCURRENT_INPUT_ROWS"
DEFAULT_RECORD_CONCURRENCY = 10
DEFAULT_CONCURRENT_MAX_BYTES = 16 * 2**20
DEFAULT_CONCURRENT_MAX_ROWS = 200_000
DEFAULT_CONCURRENT_BUDGET_BYTES = 4 * DEFAULT_CONCURRENT_MAX_BYTES
DEFAULT_CONCURRENT_BUDGET_ROWS = 4 * DEFAULT_CONCURRENT_MAX_ROWS
WEIGHT_UNITS = 1_000_000
"""A record's share of the input budget is counted in millionths: the whole budget is this many."""
MIN_REMAINING_MS_ENV = "SLUICE_MIN_REMAINING_MS"
DEFAULT_MIN_REMAINING_MS = 10_000
OUT_OF_TIME = "out_of_time"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    PARKED = "parked"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What happened to one SQS record."""

    message_id: str
    outcome: Outcome
    reason_code: str | None = None


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    return int_from_env(env, name, default, minimum=1)


@dataclass(frozen=True, slots=True)
class Concurrency:
    """How many records of a standard-queue batch run at once, and which may share the handler.

    Args:
        limit: records at once (1: one after another).
        max_bytes: a record whose fact declares at most this many input bytes is small.
        max_rows: for facts that declare only row counts, at most this many rows is small.
        budget_bytes: the declared input bytes of the small records running at once stay within
            this.
        budget_rows: the same for facts that declare only row counts.
        metadata_only: the consumer never loads a record's data (ingest reads object metadata
            only), so every record is small and weightless whatever size it declares.
    """

    limit: int = 1
    max_bytes: int = DEFAULT_CONCURRENT_MAX_BYTES
    max_rows: int = DEFAULT_CONCURRENT_MAX_ROWS
    budget_bytes: int = DEFAULT_CONCURRENT_BUDGET_BYTES
    budget_rows: int = DEFAULT_CONCURRENT_BUDGET_ROWS
    metadata_only: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Concurrency:
        """Read `SLUICE_RECORD_CONCURRENCY` (default 10), `SLUICE_CONCURRENT_RECORD_MAX_BYTES`,
        `SLUICE_CONCURRENT_RECORD_MAX_ROWS`, `SLUICE_CONCURRENT_INPUT_BYTES` and
        `SLUICE_CONCURRENT_INPUT_ROWS` (see the module docstring).

        Raises ValueError for a value that is not a positive integer: a typo should fail the
        cold start, not silently change how much memory a handler may use.
        """
        source = os.environ if env is None else env
        return cls(
            limit=_positive_int(source, RECORD_CONCURRENCY_ENV, DEFAULT_RECORD_CONCURRENCY),
            max_bytes=_positive_int(source, CONCURRENT_MAX_BYTES_ENV, DEFAULT_CONCURRENT_MAX_BYTES),
            max_rows=_positive_int(source, CONCURRENT_MAX_ROWS_ENV, DEFAULT_CONCURRENT_MAX_ROWS),
            budget_bytes=_positive_int(
                source, CONCURRENT_BUDGET_BYTES_ENV, DEFAULT_CONCURRENT_BUDGET_BYTES
            ),
            budget_rows=_positive_int(
                source, CONCURRENT_BUDGET_ROWS_ENV, DEFAULT_CONCURRENT_BUDGET_ROWS
            ),
        )

    def is_small(self, envelope: Envelope[Any]) -> bool:
        """Whether the record's fact declares an input small enough to share the handler
        (`size_bytes`/`bytes_in` against `max_bytes`, else `rows_file_in`/`rows_in` against
        `max_rows`). A fact that declares neither is not small; with `metadata_only` every
        record is."""
        return self.weight(envelope) < WEIGHT_UNITS

    def weight(self, envelope: Envelope[Any]) -> int:
        """The record's share of the input budget, in millionths (`WEIGHT_UNITS`, the whole
        budget, for a record that must run alone: large, or of unknown size). With
        `metadata_only`, 0."""
        if self.metadata_only:
            return 0
        data = envelope.data
        for name in ("size_bytes", "bytes_in"):
            size = getattr(data, name, None)
            if isinstance(size, int):
                return _share(size, self.max_bytes, self.budget_bytes)
        for name in ("rows_file_in", "rows_in"):
            rows = getattr(data, name, None)
            if isinstance(rows, int):
                return _share(rows, self.max_rows, self.budget_rows)
        return WEIGHT_UNITS


def _share(amount: int, largest_small: int, budget: int) -> int:
    """`amount`'s share of `budget` in millionths, below the whole for a small amount (at most
    `largest_small`, and no more than the budget) and the whole otherwise."""
    if amount > largest_small or amount > budget:
        return WEIGHT_UNITS
    return min(WEIGHT_UNITS - 1, -(-amount * WEIGHT_UNITS // budget))


def min_remaining_ms_from_env(env: Mapping[str, str] | None = None) -> int:
    """`SLUICE_MIN_REMAINING_MS` (default 10,000): below this many milliseconds left, an
    invocation starts no further record. Raises ValueError for a value that is not a positive
    integer."""
    source = os.environ if env is None else env
    return _positive_int(source, MIN_REMAINING_MS_ENV, DEFAULT_MIN_REMAINING_MS)


@dataclass(slots=True)
class TimeGuard:
    """Whether an invocation may still start a record (see "Time" in the module docstring).

    Args:
        remaining_ms: the Lambda context's `get_remaining_time_in_millis` (None: no limit).
        min_remaining_ms: below this, no further record starts.
    """

    remaining_ms: Callable[[], int] | None = None
    min_remaining_ms: int = DEFAULT_MIN_REMAINING_MS
    started: int = 0

    def may_start(self) -> bool:
        """True for the invocation's first record, and while enough time is left; counts the
        records it lets start."""
        remaining = self.remaining_ms
        if self.started and remaining is not None and remaining() < self.min_remaining_ms:
            return False
        self.started += 1
        return True


@dataclass(slots=True)
class _Slots:
    """A limiter of records at once (`limit` seats) and of their summed weight (out of
    `WEIGHT_UNITS`) that admits holders strictly in arrival order. A holder of the whole weight
    (a large record) takes every seat too: it waits for the running ones and keeps later ones
    out meanwhile."""

    limit: int
    seats: int = 0
    free: int = WEIGHT_UNITS
    _queue: deque[object] = field(default_factory=deque)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def __post_init__(self) -> None:
        self.seats = self.limit

    @asynccontextmanager
    async def hold(self, weight: int) -> AsyncIterator[None]:
        seats = self.limit if weight >= WEIGHT_UNITS else 1
        weight = min(weight, WEIGHT_UNITS)
        ticket = object()
        async with self._changed:
            self._queue.append(ticket)
            try:
                await self._changed.wait_for(
                    lambda: self._queue[0] is ticket and self.seats >= seats and self.free >= weight
                )
            finally:
                # Admitted or cancelled while waiting: either way this ticket leaves the line.
                self._queue.remove(ticket)
                self._changed.notify_all()
            self.seats -= seats
            self.free -= weight
        try:
            yield
        finally:
            async with self._changed:
                self.seats += seats
                self.free += weight
                self._changed.notify_all()


@dataclass(frozen=True, slots=True)
class _Poison:
    """A record that did not decode or parse: the error that parks it, and the raw event when
    it decoded (it may still name the file)."""

    error: PoisonInputError
    raw: dict[str, Any] | None


def sqs_records(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Return the event's records, checked so every one has a usable `messageId`.

    Raises MalformedBatchError otherwise: reporting an empty or unknown `itemIdentifier` makes
    Lambda fail the whole batch anyway, so failing loudly here is the honest equivalent.
    """
    records = event.get("Records")
    if not isinstance(records, list):
        raise MalformedBatchError("the event has no Records list")
    seen: set[str] = set()
    for index, record in enumerate(records):
        message_id = record.get("messageId") if isinstance(record, Mapping) else None
        if not isinstance(message_id, str) or not message_id:
            raise MalformedBatchError(f"record {index} has no messageId")
        if message_id in seen:
            raise MalformedBatchError(f"messageId {message_id} appears twice")
        seen.add(message_id)
    return records


def _is_fifo(record: Mapping[str, Any]) -> bool:
    source_arn = str(record.get("eventSourceARN", ""))
    attributes = record.get("attributes")
    has_group = isinstance(attributes, Mapping) and "MessageGroupId" in attributes
    return has_group or source_arn.endswith(".fifo")


def reason_code_of(exc: BaseException) -> str:
    """The stable reason code of a poison error (its `code`; the class name if it has none)."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else type(exc).__name__


def _decode(body: object) -> dict[str, Any]:
    if not isinstance(body, str):
        raise ContractViolation("the SQS record has no text body", code="invalid_json")
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ContractViolation(f"the body is not JSON: {exc}", code="invalid_json") from exc
    if not isinstance(decoded, dict):
        raise ContractViolation("the body is not a JSON object", code="invalid_json")
    return decoded


def _correlation_hint(event: Mapping[str, Any] | None) -> str | None:
    # Before the envelope parses, the raw detail may still say which file this was about.
    detail = event.get("detail") if event else None
    hint = detail.get("correlationid") if isinstance(detail, Mapping) else None
    return hint if isinstance(hint, str) else None


@dataclass(frozen=True, slots=True)
class BatchProcessor:
    """Processes the records of one SQS batch; `Runtime.process_sqs_batch` builds one per call.

    Args:
        parse: turns the EventBridge event into an envelope (raises `ContractError`s).
        parker: where poison records go.
        dlq_url: the DLQ to park in; None means poison records are reported as failures.
        logger: a Powertools logger; each record's lines carry its correlation id.
        on_result: called with each record's result as it is known (the runtime counts parked
            and failed records as metrics there, whatever stage of the record they happened in).
        concurrency: how many standard-queue records run at once (default: one at a time).
        time_guard: stops starting records near the invocation's timeout (default: no limit).
        publish_wait_ms: how long a record's facts may wait to share PutEvents requests with
            the records running beside it (`sluice_shared.publishing`; 0: never).
    """

    parse: EventParser
    parker: QueueParker
    dlq_url: str | None
    logger: Logger
    on_result: Callable[[RecordResult], None] | None = None
    concurrency: Concurrency = field(default_factory=Concurrency)
    time_guard: TimeGuard = field(default_factory=TimeGuard)
    publish_wait_ms: int = DEFAULT_WAIT_MS

    async def process(
        self,
        event: Mapping[str, Any],
        handle_one: RecordHandler[DepsT],
        deps: DepsT,
        *,
        accepted: Collection[str],
    ) -> dict[str, list[dict[str, str]]]:
        """Run `handle_one` on every record and return the partial batch response.

        Standard-queue records run concurrently within `concurrency` (see the module
        docstring); FIFO records one after another. Raises MalformedBatchError when the event
        is not an SQS batch.
        """
        records = sqs_records(event)
        if self.concurrency.limit <= 1 or any(_is_fifo(r) for r in records):
            return batch_response(await self._in_order(records, handle_one, deps, accepted))
        slots = _Slots(limit=self.concurrency.limit)

        async def run(record: Mapping[str, Any], round_: PublishRound | None) -> RecordResult:
            parsed = self._parse(record, accepted)
            weight = 0 if isinstance(parsed, _Poison) else self.concurrency.weight(parsed)
            async with slots.hold(weight):
                if round_ is not None:
                    round_.started()
                try:
                    if self.time_guard.may_start():
                        result = await self._finish(record, parsed, handle_one, deps)
                    else:
                        result = self._left(record)
                finally:
                    if round_ is not None:
                        round_.finished()
            if self.on_result is not None:
                self.on_result(result)
            return result

        # A TaskGroup, not gather: should anything escape a record (the worker dying, a
        # timeout), the other records are cancelled and the whole batch fails with that very
        # exception, unwrapped, as it would have run in order. The records' tasks inherit the
        # publish round (their facts share PutEvents requests).
        try:
            with publish_round(self.publish_wait_ms) as round_:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(run(record, round_)) for record in records]
        except BaseExceptionGroup as escaped:
            raise _first_cause(escaped) from None
        return batch_response([task.result() for task in tasks])

    async def _in_order(
        self,
        records: Sequence[Mapping[str, Any]],
        handle_one: RecordHandler[DepsT],
        deps: DepsT,
        accepted: Collection[str],
    ) -> list[RecordResult]:
        results: list[RecordResult] = []
        blocked = False
        for record in records:
            message_id = str(record["messageId"])
            if blocked:
                results.append(RecordResult(message_id, Outcome.FAILED, "fifo_blocked"))
                continue
            if self.time_guard.may_start():
                result = await self._finish(record, self._parse(record, accepted), handle_one, deps)
            else:
                result = self._left(record)
            results.append(result)
            if self.on_result is not None:
                self.on_result(result)
            if result.outcome is Outcome.FAILED and _is_fifo(record):
                blocked = True
        return results

    def _left(self, record: Mapping[str, Any]) -> RecordResult:
        """A record not started for lack of time: failed, so SQS redelivers it."""
        remaining = self.time_guard.remaining_ms() if self.time_guard.remaining_ms else None
        self.logger.warning(
            "record not started, too little time left; will be redelivered",
            extra={
                "message_id": str(record["messageId"]),
                "remaining_ms": remaining,
                "min_remaining_ms": self.time_guard.min_remaining_ms,
            },
        )
        return RecordResult(str(record["messageId"]), Outcome.FAILED, OUT_OF_TIME)

    def _parse(
        self, record: Mapping[str, Any], accepted: Collection[str]
    ) -> Envelope[Any] | _Poison:
        raw: dict[str, Any] | None = None
        try:
            raw = _decode(record.get("body"))
            envelope = self.parse(raw)
            if envelope.type not in accepted:
                raise ContractViolation(
                    f"{envelope.type} is not accepted here "
                    f"(accepted: {', '.join(sorted(accepted))})",
                    code="type_not_accepted",
                )
        except PoisonInputError as exc:
            return _Poison(exc, raw)
        return envelope

    async def _finish(
        self,
        record: Mapping[str, Any],
        parsed: Envelope[Any] | _Poison,
        handle_one: RecordHandler[DepsT],
        deps: DepsT,
    ) -> RecordResult:
        started = time.perf_counter()
        message_id, body = str(record["messageId"]), record.get("body")
        if isinstance(parsed, _Poison):
            with correlation_scope(self.logger, _correlation_hint(parsed.raw)):
                return await self._park(message_id, body, parsed.error)
        envelope = parsed
        with correlation_scope(self.logger, envelope.correlationid):
            try:
                await handle_one(envelope, deps)
            except Exception as exc:
                # BaseExceptions are not caught: the table fails the batch for them.
                if route(exc).sqs is SqsOutcome.PARK:
                    return await self._park(message_id, body, exc)
                if isinstance(exc, TransientError):
                    self.logger.warning(
                        "record failed, will be redelivered",
                        extra={"message_id": message_id, "type": envelope.type, "error": repr(exc)},
                    )
                    return RecordResult(message_id, Outcome.FAILED, exc.code)
                self.logger.exception(
                    "record crashed, will be redelivered",
                    extra={"message_id": message_id, "type": envelope.type, "error": repr(exc)},
                )
                return RecordResult(message_id, Outcome.FAILED, "unexpected")
            self.logger.info(
                "record processed",
                extra={
                    "message_id": message_id,
                    "type": envelope.type,
                    "event_id": envelope.id,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            return RecordResult(message_id, Outcome.SUCCEEDED)

    async def _park(self, message_id: str, body: object, exc: BaseException) -> RecordResult:
        code = reason_code_of(exc)
        reason = str(exc)[:MAX_REASON_CHARS]
        context = {"message_id": message_id, "reason_code": code, "reason": reason}
        if self.dlq_url is None or not isinstance(body, str) or not body:
            self.logger.error("poison record, no DLQ to park it in; failing it", extra=context)
            return RecordResult(message_id, Outcome.FAILED, code)
        try:
            await self.parker.park(self.dlq_url, body, code, reason)
        except Exception as park_error:
            self.logger.exception(
                "poison record could not be parked; failing it",
                extra={**context, "error": repr(park_error)},
            )
            return RecordResult(message_id, Outcome.FAILED, code)
        self.logger.warning("poison record parked", extra=context)
        return RecordResult(message_id, Outcome.PARKED, code)


def _first_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    # The record's own exception, not the cancellations the TaskGroup caused in its siblings.
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        current = pending.pop(0)
        if isinstance(current, BaseExceptionGroup):
            pending[:0] = list(current.exceptions)
        else:
            leaves.append(current)
    real = [e for e in leaves if not isinstance(e, asyncio.CancelledError)]
    return (real or leaves)[0]


def batch_response(results: Sequence[RecordResult]) -> dict[str, list[dict[str, str]]]:
    """The Lambda partial batch response for `results`: the failed message ids, in order."""
    return {
        "batchItemFailures": [
            {"itemIdentifier": r.message_id} for r in results if r.outcome is Outcome.FAILED
        ]
    }
