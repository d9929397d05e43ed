"""The ports every service talks through, the ledger's records and state machine, and `AwsDeps`.

Ports are structural (`typing.Protocol`): the aioboto3 adapters in `sluice_shared.aws` and the
in-memory fakes in `tests/fakes.py` implement them without inheriting anything, and mypy checks
both against these signatures.

Errors raised through the ports (besides the `sluice_shared.errors` tree):

```
SluiceError
├── StaleStateError           the ledger record is not in an expected state (late duplicate)
├── SupersededError           a newer version of the object's key was registered first
├── IllegalTransitionError    the caller asked for a move the state machine forbids (a bug)
└── PoisonInputError
    └── ObjectNotFoundError   the object (or version) does not exist
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from sluice_shared import clock
from sluice_shared.errors import PoisonInputError, SluiceError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Mapping, Sequence
    from pathlib import Path

    from contracts.envelope import Envelope


# --------------------------------------------------------------------------------------- errors


class ObjectNotFoundError(PoisonInputError):
    """The object, or the requested version of it, does not exist."""

    code = "object_not_found"


class StaleStateError(SluiceError):
    """A ledger transition found the record in a state it did not expect.

    Raised when the record is missing, its status is not among `expected`, or a concurrent writer
    won the optimistic lock. For an at-least-once consumer this usually means "someone already
    did this step": treat it as done, do not retry. `current` is the record as last read (None when
    it does not exist).
    """

    code = "stale_state"

    def __init__(self, message: str, *, file_id: str, current: FileRecord | None) -> None:
        super().__init__(message)
        self.file_id = file_id
        self.current = current


class SupersededError(SluiceError):
    """A file was not registered: a notification of its key with a later S3 sequencer was
    registered first, so this one is about an older version (a late, out-of-order notice)."""

    code = "superseded"


class StaleRunError(SluiceError):
    """A conditional write of a batch run record found it changed since it was read (another
    writer won): read it again and re-apply the change."""

    code = "stale_run"


class IllegalTransitionError(SluiceError):
    """The requested transition is never allowed by the state machine (a programming error)."""

    code = "illegal_transition"


# ------------------------------------------------------------------------------------ object store


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """Metadata of one S3 object. `etag` is unquoted; `version_id` is None when unversioned."""

    key: str
    size: int
    etag: str
    last_modified: datetime
    version_id: str | None = None
    content_type: str | None = None


class ObjectStore(Protocol):
    """Object storage (S3). Every method raises `TransientError` after bounded retries,
    `ObjectNotFoundError` for a missing key, and other `SluiceError`s from
    `sluice_shared.aws.errors`."""

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        """Return the object's metadata. Raises ObjectNotFoundError when it does not exist."""
        ...

    async def download_to(
        self,
        bucket: str,
        key: str,
        path: Path,
        *,
        version_id: str | None = None,
        byte_range: tuple[int, int] | None = None,
        etag: str | None = None,
    ) -> int:
        """Stream the object (or bytes `[start, end)` of it) into `path` in bounded chunks.

        The file is truncated first, so a retried download never appends. Returns the number of
        bytes written (fewer than `end - start` when the object ends earlier). `etag`: only the
        object with this ETag (quoted or not); when the key now holds another object (it was
        overwritten in a bucket without versions), the content asked for is gone and
        ObjectNotFoundError is raised. Raises ValueError for a negative or reversed range.
        """
        ...

    async def upload_file(
        self, path: Path, bucket: str, key: str, *, content_type: str | None = None
    ) -> None:
        """Upload a local file, in parts above 8 MiB, reading one part at a time."""
        ...

    async def put_bytes(
        self, bucket: str, key: str, data: bytes, *, content_type: str | None = None
    ) -> None:
        """Write a small object in one request (manifests, markers, quarantine samples)."""
        ...

    async def put_bytes_if_absent(
        self, bucket: str, key: str, data: bytes, *, content_type: str | None = None
    ) -> bool:
        """Write a small object only if no object has the key (a conditional write: of two
        writers, exactly one succeeds). Returns False, writing nothing, when the key exists."""
        ...

    async def get_bytes(self, bucket: str, key: str, *, max_bytes: int) -> bytes:
        """Read a small object whole. Raises InputLimitExceeded when it is above `max_bytes`."""
        ...

    def list_keys(self, bucket: str, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Yield every object under `prefix`, in key order, page by page."""
        ...

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under `prefix` (current versions); return how many were deleted."""
        ...


# ---------------------------------------------------------------------------------- event publisher


class EventPublisher(Protocol):
    """Publishes envelopes to the Sluice bus."""

    async def publish(self, envelopes: Sequence[Envelope[Any]]) -> None:
        """Publish every envelope at least once.

        Entries are sent in requests of at most 10 entries and 256 KB; entries the bus rejects
        with a retryable code are re-sent alone (never the accepted ones), with backoff.
        Raises TransientError naming the envelope ids still failing after the retry budget,
        `PublishRejected` when the bus refuses an entry permanently, and `EventTooLarge` (a
        `contracts.errors.ContractError`) for an envelope above 256 KB, before anything is sent.
        """
        ...


class PublishRejected(SluiceError):
    """The bus refused entries for a reason retrying cannot fix (malformed, not authorised)."""

    code = "publish_rejected"


# ------------------------------------------------------------------------------------- bus rules


@dataclass(frozen=True, slots=True)
class BusRule:
    """One rule of the Sluice bus as EventBridge lists it (`event_pattern` None: a schedule)."""

    name: str
    arn: str
    event_pattern: str | None
    enabled: bool


class BusRules(Protocol):
    """The rules of the Sluice bus, and EventBridge's own pattern matcher."""

    async def list_rules(self) -> list[BusRule]:
        """Every rule of the bus, all pages. Raises a SluiceError for any failure."""
        ...

    async def matches(self, pattern: str, event: Mapping[str, Any]) -> bool:
        """Whether the event pattern `pattern` (JSON) matches `event` (an EventBridge event:
        id, account, source, time, region, resources, detail-type, detail). Raises a
        SluiceError for any failure (an invalid pattern included)."""
        ...


# ----------------------------------------------------------------------------------------- ledger

# S3 sequencers are hex strings of varying length; left-padded to one width and upper-cased they
# compare as strings (DynamoDB's `<=` on S) in the order S3 gave them. AWS's are 16-20 digits.
SEQUENCER_WIDTH = 32
_SEQUENCER = re.compile(rf"^[0-9A-Fa-f]{{1,{SEQUENCER_WIDTH}}}$")


def sequencer_order(sequencer: str | None) -> str | None:
    """The ledger's comparable form of an S3 event `sequencer` (fixed-width, upper-case hex),
    or None when there is none or it is not a hex string of at most `SEQUENCER_WIDTH` digits.

    S3 documents that of two events of one key the greater sequencer, compared after
    left-padding the shorter with zeros, is the later; sequencers of different keys are not
    comparable.
    """
    if sequencer is None or not _SEQUENCER.match(sequencer):
        return None
    return sequencer.upper().rjust(SEQUENCER_WIDTH, "0")


class FileStatus(StrEnum):
    PENDING = "PENDING"
    VALIDATING = "VALIDATING"
    TRANSFORMING = "TRANSFORMING"
    WRITING = "WRITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    QUARANTINED = "QUARANTINED"


TERMINAL_STATUSES = frozenset({FileStatus.COMPLETED, FileStatus.FAILED, FileStatus.QUARANTINED})

_FORWARD = (
    FileStatus.PENDING,
    FileStatus.VALIDATING,
    FileStatus.TRANSFORMING,
    FileStatus.WRITING,
    FileStatus.COMPLETED,
)


def _allowed() -> dict[FileStatus, frozenset[FileStatus]]:
    table: dict[FileStatus, frozenset[FileStatus]] = {}
    for index, status in enumerate(_FORWARD):
        if status in TERMINAL_STATUSES:
            table[status] = frozenset()
            continue
        # Re-entering the same working state is allowed: an at-least-once consumer that crashed
        # mid-step is redelivered and must be able to claim the step again. The version still
        # moves, so a stale writer of the earlier attempt loses its conditional write.
        moves = {status, _FORWARD[index + 1], FileStatus.FAILED, FileStatus.QUARANTINED}
        table[status] = frozenset(moves)
    table[FileStatus.FAILED] = frozenset()
    table[FileStatus.QUARANTINED] = frozenset()
    return table


ALLOWED_TRANSITIONS: Mapping[FileStatus, frozenset[FileStatus]] = _allowed()
"""The ledger's state machine: status -> statuses it may move to. Terminal states map to ∅."""


def check_transition(to: FileStatus, expected: Collection[FileStatus]) -> None:
    """Raise IllegalTransitionError unless `to` is reachable from every status in `expected`.

    Called before any I/O by every Ledger implementation, so fakes and DynamoDB agree.
    """
    if not expected:
        raise IllegalTransitionError("a transition needs at least one expected status")
    illegal = sorted(str(s) for s in expected if to not in ALLOWED_TRANSITIONS[FileStatus(s)])
    if illegal:
        raise IllegalTransitionError(f"{to} is not reachable from {', '.join(illegal)}")


def utc_now() -> datetime:
    """The current time by this worker's clock, timezone-aware UTC (the ledger's clock
    default; see `sluice_shared.clock`)."""
    return clock.now()


class FileRecord(BaseModel):
    """The `SK=META` item of a file in the ledger (see docs/architecture.md, "Ledger")."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    file_id: str = Field(min_length=1)
    status: FileStatus = FileStatus.PENDING
    dataset: str
    dataset_version: int | None = None
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size_bytes: int = Field(default=0, ge=0)
    rows_in: int | None = None
    rows_out: int | None = None
    rows_quarantined: int | None = None
    correlation_id: str | None = None
    error_code: str | None = None
    error: str | None = None
    # sha256 of the rows validate/transform carried in their fact instead of staging them.
    validated_sha256: str | None = None
    transformed_sha256: str | None = None
    created_at: AwareDatetime = Field(default_factory=utc_now)
    updated_at: AwareDatetime = Field(default_factory=utc_now)
    version: int = Field(default=0, ge=0)


# Fields a transition may set besides status/version/updated_at (identity fields never change).
MUTABLE_FIELDS = frozenset(
    {
        "dataset_version",
        "rows_in",
        "rows_out",
        "rows_quarantined",
        "error_code",
        "error",
        "correlation_id",
        "size_bytes",
        "validated_sha256",
        "transformed_sha256",
    }
)


def check_fields(fields: Mapping[str, Any]) -> None:
    """Raise ValueError when a transition tries to set a field that is not in `MUTABLE_FIELDS`."""
    unknown = sorted(set(fields) - MUTABLE_FIELDS)
    if unknown:
        raise ValueError(f"transition cannot set {', '.join(unknown)}")


class RunRecord(BaseModel):
    """The `PK=RUN#<run_id>`, `SK=META` item of a batch run."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str = Field(min_length=1)
    status: str = "RUNNING"
    execution_arn: str | None = None
    map_run_arn: str | None = None
    prefix: str | None = None
    files: int | None = None
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    details: dict[str, Any] = Field(default_factory=dict)


class Ledger(Protocol):
    """The file ledger: one record per file, moved forward by conditional writes."""

    async def register_file(
        self, record: FileRecord, *, sequencer: str | None = None
    ) -> tuple[bool, FileRecord]:
        """Create the record if its file_id is new.

        Returns `(True, record)` when created, `(False, existing)` when the file was already
        registered (a duplicate notification: do nothing more). With `sequencer` (the
        notification's, in `sequencer_order` form) the registration is also conditional on no
        later sequencer having been registered for the record's bucket and key, and records
        this one as the key's latest, in the same write; raises SupersededError (registering
        nothing) when a later one was, whether or not the file itself exists.
        """
        ...

    async def transition(
        self,
        file_id: str,
        to: FileStatus,
        *,
        expected: Collection[FileStatus],
        current: FileRecord | None = None,
        **fields: Any,
    ) -> FileRecord:
        """Move the file to `to` if its status is in `expected`, setting `fields`.

        Conditional on the status and the version read (optimistic lock); bumps `version`,
        `updated_at` and the status/day index, and appends a history step. Returns the new
        record. `current` is the record as the caller last read or wrote it (a `get`, or the
        previous transition's return): when its status is expected, the write is tried on it
        without reading the record first, and a lost lock falls back to reading; the outcome is
        the same as without it. Raises IllegalTransitionError (before any I/O) when `to` is not
        reachable from an expected status, ValueError for a field that may not change, and
        StaleStateError when the record is missing, in another status, or a concurrent writer
        won.
        """
        ...

    async def transition_assumed(
        self, assumed: FileRecord, to: FileStatus, **fields: Any
    ) -> FileRecord | None:
        """Move the file to `to`, setting `fields`, if its stored record is exactly `assumed`
        (a record not read from the ledger but taken from a fact): the write is conditional on
        every field of it, not only on its status and version. Returns the new record, or None,
        having written nothing, when the stored record differs in any field or is missing (the
        caller then reads it). Raises IllegalTransitionError (before any I/O) when `to` is not
        reachable from `assumed.status`, ValueError for a field that may not change."""
        ...

    async def record_refusal(
        self, record: FileRecord, *, event_type: str, event_id: str, code: str, reason: str
    ) -> None:
        """Append a `REFUSED` step to the file's history: an event about the file was refused
        (`code`, `reason`) and parked. The file's record (status, version) is left as it is, so
        a refused event can neither move nor block the file; `from_status` and `version` say
        where the file was when it happened."""
        ...

    async def get(self, file_id: str) -> FileRecord | None:
        """Return the file's record (strongly consistent), or None."""
        ...

    async def history(self, file_id: str) -> list[dict[str, Any]]:
        """Return the file's history steps, oldest first (`at`, `from_status`, `to_status`,
        `version`, and the fields set by the step)."""
        ...

    async def list_by_status(self, status: FileStatus, day: date) -> list[FileRecord]:
        """Return the files whose last transition put them in `status` on UTC `day`, oldest
        update first (eventually consistent: reads the status/day index)."""
        ...

    async def put_run(self, run: RunRecord, *, replaces: RunRecord | None = None) -> None:
        """Create or replace a batch run record.

        With `replaces` (the record as read), the write happens only if the stored record is still
        that one (same `updated_at`); raises StaleRunError otherwise, so concurrent
        read-modify-write updates never lose each other's changes.
        """
        ...

    async def get_run(self, run_id: str) -> RunRecord | None:
        """Return a batch run record, or None."""
        ...


# ------------------------------------------------------------------------------------ queue parker

REASON_CODE_ATTRIBUTE = "sluice-reason-code"
REFUSED_STEP = "REFUSED"
"""`to_status` of a history step recording a refused event (`Ledger.record_refusal`)."""
REASON_ATTRIBUTE = "sluice-reason"


class QueueParker(Protocol):
    """Moves a message that can never succeed to a dead-letter queue, with the reason."""

    async def park(self, queue_url: str, body: str, reason_code: str, reason: str) -> None:
        """Send `body` to `queue_url` with the `sluice-reason-code` and `sluice-reason`
        message attributes. Raises TransientError after bounded retries."""
        ...


# ------------------------------------------------------------------------------------------- deps


@dataclass(frozen=True, slots=True)
class AwsDeps:
    """Every port a service may use, built once per execution environment."""

    objects: ObjectStore
    publisher: EventPublisher
    ledger: Ledger
    parker: QueueParker
    # The bus's rules (`sluice_shared.subscribers`); None where nothing asks them (tests, tools).
    rules: BusRules | None = None
