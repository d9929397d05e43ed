"""`EventPublisher` over EventBridge PutEvents: chunked, and re-sending only the failed entries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from contracts.envelope import entry_size, to_eventbridge_entry
from sluice_shared.aws.errors import translating
from sluice_shared.errors import TransientError
from sluice_shared.ports import PublishRejected
from sluice_shared.retry import aws_retry

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from tenacity import AsyncRetrying
    from types_aiobotocore_events.client import EventBridgeClient
    from types_aiobotocore_events.type_defs import PutEventsRequestEntryTypeDef

    from contracts.envelope import Envelope

MAX_ENTRIES_PER_REQUEST = 10  # PutEvents limit
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


def chunk_entries(
    entries: Sequence[tuple[str, dict[str, Any]]],
) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Split `(envelope id, entry)` pairs into requests of <= 10 entries and <= 256 KB, in order.

    Every entry is assumed to fit alone (`to_eventbridge_entry` refuses larger ones).
    """
    chunk: list[tuple[str, dict[str, Any]]] = []
    chunk_bytes = 0
    for pair in entries:
        size = _size(pair[1])
        if chunk and (
            len(chunk) == MAX_ENTRIES_PER_REQUEST or chunk_bytes + size > MAX_REQUEST_BYTES
        ):
            yield chunk
            chunk, chunk_bytes = [], 0
        chunk.append(pair)
        chunk_bytes += size
    if chunk:
        yield chunk


class EventBridgePublisher:
    """The EventBridge implementation of `sluice_shared.ports.EventPublisher`.

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
        entries = [
            (envelope.id, to_eventbridge_entry(envelope, self._bus)) for envelope in envelopes
        ]
        for chunk in chunk_entries(entries):
            await self._send(chunk)

    async def _send(self, chunk: list[tuple[str, dict[str, Any]]]) -> None:
        pending = chunk
        async for attempt in self._retry():
            with attempt:
                pending = await self._put(pending)
                if pending:
                    ids = ", ".join(envelope_id for envelope_id, _ in pending)
                    raise TransientError(f"{len(pending)} events not accepted by the bus: {ids}")

    async def _put(
        self, pending: list[tuple[str, dict[str, Any]]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Send `pending`; return the entries to send again. Raises PublishRejected."""
        with translating():
            response = await self._client.put_events(
                Entries=[cast("PutEventsRequestEntryTypeDef", entry) for _, entry in pending]
            )
        if not response.get("FailedEntryCount"):
            return []
        retry: list[tuple[str, dict[str, Any]]] = []
        rejected: list[str] = []
        # Results are positional: result i belongs to request entry i.
        for pair, result in zip(pending, response["Entries"], strict=True):
            code = result.get("ErrorCode")
            if not code:
                continue
            if code in PERMANENT_ENTRY_CODES:
                rejected.append(f"{pair[0]} ({code}: {result.get('ErrorMessage', '')})")
            else:
                retry.append(pair)
        if rejected:
            raise PublishRejected(f"the bus rejected {len(rejected)} events: {'; '.join(rejected)}")
        return retry
