"""`EventPublisher` over EventBridge PutEvents: chunked, and re-sending only the failed entries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from contracts.envelope import entry_size, to_eventbridge_entry
from sluice_shared.aws.errors import translating
from sluice_shared.errors import TransientError
from sluice_shared.ports import PublishRejected
from sluice_shared.publishing import current_round
from sluice_shared.retry import aws_retry

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from tenacity import AsyncRetrying
    from types_aiobotocore_events.client import EventBridgeClient
    from types_aiobotocore_events.type_defs import PutEventsRequestEntryTypeDef

    from contracts.envelope import Envelope

MAX_ENTRIES_PER_REQUEST = 10  # PutEvents limit
_T = TypeVar("_T", bound=tuple[Any, ...])
MAX_REQUEST_BYTES = 256 * 1024  # PutEvents limit for the sum of the entries

# Per-entry codes that no retry fixes; anything else (InternalFailure, ThrottlingException, ...)
# is retried.
PERMANENT_ENTRY_CODES = frozenset(
    {
        "MalformedDetail",
        "InvalidArgument",
        "ValidationException",
        "AccessDeniedException",
        "NotAuthorizedForSourceException",
        "NotAuthorizedForDetailTypeException",
    }
)


def _size(entry: dict[str, Any]) -> int:
    return entry_size(entry["Source"], entry["DetailType"], entry["Detail"])


def chunk_entries(entries: Sequence[_T]) -> Iterator[list[_T]]:
    """Split `(…, envelope id, entry)` tuples into requests of <= 10 entries and <= 256 KB, in
    order (the entry is each tuple's last item).

    Every entry is assumed to fit alone (`to_eventbridge_entry` refuses larger ones).
    """
    chunk: list[_T] = []
    chunk_bytes = 0
    for item in entries:
        size = _size(item[-1])
        if chunk and (
            len(chunk) == MAX_ENTRIES_PER_REQUEST or chunk_bytes + size > MAX_REQUEST_BYTES
        ):
            yield chunk
            chunk, chunk_bytes = [], 0
        chunk.append(item)
        chunk_bytes += size
    if chunk:
        yield chunk


# One entry of a send: the group (record) it belongs to, its envelope id, the PutEvents entry.
_Owned = tuple[int, str, dict[str, Any]]


class EventBridgePublisher:
    """The EventBridge implementation of `sluice_shared.ports.EventPublisher`.

    Inside a batch's publish round (`sluice_shared.publishing`) a call waits to share its
    requests with the other records' facts; each call still gets its own outcome.

    Args:
        client: an open aioboto3 EventBridge client.
        bus_name: the custom bus every envelope goes to.
        retry: builds the retry policy per request (default `aws_retry`).
    """

    def __init__(
        self,
        client: EventBridgeClient,
        bus_name: str,
        *,
        retry: Callable[[], AsyncRetrying] = aws_retry,
    ) -> None:
        self._client = client
        self._bus = bus_name
        self._retry = retry

    async def publish(self, envelopes: Sequence[Envelope[Any]]) -> None:
        """See `EventPublisher.publish`."""
        # Build every entry first: an oversized envelope fails the call before anything is sent.
        group = [(envelope.id, to_eventbridge_entry(envelope, self._bus)) for envelope in envelopes]
        if not group:
            return
        round_ = current_round()
        if round_ is not None:
            await round_.publish(self.send_groups, group)
            return
        error = (await self.send_groups([group]))[0]
        if error is not None:
            raise error

    async def send_groups(
        self, groups: Sequence[Sequence[tuple[str, dict[str, Any]]]]
    ) -> list[BaseException | None]:
        """Send every group's entries in shared requests; return each group's error or None.

        A group's error is `PublishRejected` when the bus refused one of its entries for good (its
        other entries are then not retried), else the error its last failing entries met once
        the retry budget was spent (`TransientError` naming them, or what the client raised).
        """
        errors: list[BaseException | None] = [None] * len(groups)
        owned = [(index, *pair) for index, group in enumerate(groups) for pair in group]
        for chunk in chunk_entries(owned):
            await self._send(chunk, errors)
        return errors

    async def _send(self, chunk: list[_Owned], errors: list[BaseException | None]) -> None:
        pending = [item for item in chunk if errors[item[0]] is None]
        refused: TransientError | None = None  # the bus's own answer, as opposed to the client's
        try:
            async for attempt in self._retry():
                with attempt:
                    pending = await self._put(pending, errors)
                    if pending:
                        ids = ", ".join(envelope_id for _, envelope_id, _ in pending)
                        refused = TransientError(
                            f"{len(pending)} events not accepted by the bus: {ids}"
                        )
                        raise refused
        except Exception as exc:
            for index in sorted({item[0] for item in pending if errors[item[0]] is None}):
                errors[index] = _named(index, pending) if exc is refused else exc

    async def _put(self, pending: list[_Owned], errors: list[BaseException | None]) -> list[_Owned]:
        """Send `pending`; record permanent refusals in `errors`; return the entries to resend."""
        if not pending:
            return []
        with translating():
            response = await self._client.put_events(
                Entries=[cast("PutEventsRequestEntryTypeDef", entry) for *_, entry in pending]
            )
        if not response.get("FailedEntryCount"):
            return []
        retry: list[_Owned] = []
        rejected: dict[int, list[str]] = {}
        # Results are positional: result i belongs to request entry i.
        for item, result in zip(pending, response["Entries"], strict=True):
            code = result.get("ErrorCode")
            if not code:
                continue
            if code in PERMANENT_ENTRY_CODES:
                message = f"{item[1]} ({code}: {result.get('ErrorMessage', '')})"
                rejected.setdefault(item[0], []).append(message)
            else:
                retry.append(item)
        for index, messages in rejected.items():
            errors[index] = PublishRejected(
                f"the bus rejected {len(messages)} events: {'; '.join(messages)}"
            )
        return [item for item in retry if errors[item[0]] is None]


def _named(index: int, pending: list[_Owned]) -> TransientError:
    """A group's share of the entries the bus kept refusing: the error names only its own."""
    ids = [envelope_id for owner, envelope_id, _ in pending if owner == index]
    return TransientError(f"{len(ids)} events not accepted by the bus: {', '.join(ids)}")
