"""SQS batch processing with partial batch responses (`ReportBatchItemFailures`).

Each SQS record's body is an EventBridge event as an EventBridge -> SQS target delivers it
(`{"version", "id", "detail-type", "source", "account", "time", "region", "resources",
"detail"}`), whose `detail` is a Sluice envelope. Per record:

- the handler returned: success.
- `TransientError`, or any unexpected exception: listed in `batchItemFailures`; SQS redelivers
  it and moves it to the DLQ after `maxReceiveCount`.
- `PoisonInputError` or `ContractError` (bad JSON, unknown major, invalid data, a type this
  consumer does not accept): parked in the DLQ at once with the reason, reported as success, so
  it is never retried forever.
- poison, but parking failed or no DLQ is configured: listed in `batchItemFailures` (the queue's
  redrive policy parks it later).

Records run one after another, in order: the data path is CPU-bound, so concurrency would only
add memory. On a FIFO queue the first failure also fails every later record of the batch, which
keeps the order of message groups (Lambda requires it).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from aws_lambda_powertools import Logger

from contracts.errors import ContractError
from sluice_shared.errors import ContractViolation, PoisonInputError, TransientError
from sluice_shared.observability import correlation_scope
from sluice_shared.ports import QueueParker

if TYPE_CHECKING:
    from contracts.envelope import Envelope

DepsT = TypeVar("DepsT")

EventParser = Callable[[Mapping[str, Any]], "Envelope[Any]"]
RecordHandler = Callable[["Envelope[Any]", DepsT], Awaitable[None]]

MAX_REASON_CHARS = 1024


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


class MalformedBatchError(ValueError):
    """The Lambda event is not an SQS batch: no record can be reported, so the whole batch fails."""


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
    """The stable reason code of a poison error (`code` of Sluice and contract errors)."""
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
        parse: turns the EventBridge event into an envelope (raises ContractError).
        parker: where poison records go.
        dlq_url: the DLQ to park in; None means poison records are reported as failures.
        logger: a Powertools logger; each record's lines carry its correlation id.
        on_result: called with each record's result (the runtime counts parked and failed
            records as metrics there, whatever stage of the record they happened in).
    """

    parse: EventParser
    parker: QueueParker
    dlq_url: str | None
    logger: Logger
    on_result: Callable[[RecordResult], None] | None = None

    async def process(
        self,
        event: Mapping[str, Any],
        handle_one: RecordHandler[DepsT],
        deps: DepsT,
        *,
        accepted: Collection[str],
    ) -> dict[str, list[dict[str, str]]]:
        """Run `handle_one` on every record and return the partial batch response.

        Raises MalformedBatchError when the event is not an SQS batch.
        """
        records = sqs_records(event)
        results: list[RecordResult] = []
        blocked = False
        for record in records:
            message_id = str(record["messageId"])
            if blocked:
                results.append(RecordResult(message_id, Outcome.FAILED, "fifo_blocked"))
                continue
            result = await self._one(record, message_id, handle_one, deps, accepted)
            results.append(result)
            if self.on_result is not None:
                self.on_result(result)
            if result.outcome is Outcome.FAILED and _is_fifo(record):
                blocked = True
        return batch_response(results)

    async def _one(
        self,
        record: Mapping[str, Any],
        message_id: str,
        handle_one: RecordHandler[DepsT],
        deps: DepsT,
        accepted: Collection[str],
    ) -> RecordResult:
        started = time.perf_counter()
        body = record.get("body")
        raw: dict[str, Any] | None = None
        try:
            raw = _decode(body)
            envelope = self.parse(raw)
            if envelope.type not in accepted:
                raise ContractViolation(
                    f"{envelope.type} is not accepted here "
                    f"(accepted: {', '.join(sorted(accepted))})",
                    code="type_not_accepted",
                )
        except (PoisonInputError, ContractError) as exc:
            with correlation_scope(self.logger, _correlation_hint(raw)):
                return await self._park(message_id, body, exc)
        with correlation_scope(self.logger, envelope.correlationid):
            try:
                await handle_one(envelope, deps)
            except (PoisonInputError, ContractError) as exc:
                return await self._park(message_id, body, exc)
            except TransientError as exc:
                self.logger.warning(
                    "record failed, will be redelivered",
                    extra={"message_id": message_id, "type": envelope.type, "error": repr(exc)},
                )
                return RecordResult(message_id, Outcome.FAILED, exc.code)
            except Exception as exc:
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


def batch_response(results: Sequence[RecordResult]) -> dict[str, list[dict[str, str]]]:
    """The Lambda partial batch response for `results`: the failed message ids, in order."""
    return {
        "batchItemFailures": [
            {"itemIdentifier": r.message_id} for r in results if r.outcome is Outcome.FAILED
        ]
    }
