"""In-memory fakes of the ports in `sluice_shared.ports`, for unit tests (no network).

They follow the same rules as the AWS adapters (the ledger uses the same transition table and
raises the same errors; `tests/integration/shared/test_port_contract_*.py` runs one suite against
a fake and its adapter alike) and record what was done, so a test asserts on outcomes, not on
calls.
Each fake can be told to fail: put exceptions in its `faults` list and the next calls raise them
in order (one per call), which is how unit tests inject transient and poison errors.

`fake_deps()` wires them into an `AwsDeps`; mypy checks there that every fake satisfies its
Protocol.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from contracts.envelope import Envelope, to_eventbridge_entry
from sluice_shared.aws.dynamodb import iso
from sluice_shared.clock import TICK, not_before
from sluice_shared.errors import InputLimitExceeded
from sluice_shared.ports import (
    REFUSED_STEP,
    AwsDeps,
    BusRule,
    FileRecord,
    FileStatus,
    ObjectInfo,
    ObjectNotFoundError,
    RunRecord,
    StaleRunError,
    StaleStateError,
    SupersededError,
    check_fields,
    check_transition,
    sequencer_order,
)


class _Faults:
    """A queue of exceptions the next calls raise, one per call."""

    def __init__(self) -> None:
        self.faults: list[BaseException] = []

    def _maybe_fail(self) -> None:
        if self.faults:
            raise self.faults.pop(0)


@dataclass
class StoredObject:
    data: bytes
    content_type: str | None
    last_modified: datetime
    version_id: str | None = None

    @property
    def etag(self) -> str:
        return hashlib.md5(self.data, usedforsecurity=False).hexdigest()


class InMemoryObjectStore(_Faults):
    """`ObjectStore` over a dict of `(bucket, key) -> StoredObject`."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[tuple[str, str], StoredObject] = {}

    def put(self, bucket: str, key: str, data: bytes, *, content_type: str | None = None) -> None:
        """Seed an object synchronously (test setup)."""
        self.objects[(bucket, key)] = StoredObject(data, content_type, datetime.now(UTC))

    def _get(self, bucket: str, key: str) -> StoredObject:
        try:
            return self.objects[(bucket, key)]
        except KeyError:
            raise ObjectNotFoundError(f"s3://{bucket}/{key} does not exist") from None

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        self._maybe_fail()
        stored = self._get(bucket, key)
        return ObjectInfo(
            key=key,
            size=len(stored.data),
            etag=stored.etag,
            last_modified=stored.last_modified,
            version_id=stored.version_id,
            content_type=stored.content_type,
        )

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
        self._maybe_fail()
        stored = self._get(bucket, key)
        if version_id is not None and version_id != stored.version_id:
            raise ObjectNotFoundError(f"s3://{bucket}/{key}?versionId={version_id} does not exist")
        if etag is not None and etag.strip('"') != stored.etag:
            raise ObjectNotFoundError(f"s3://{bucket}/{key} no longer holds ETag {etag}")
        data = stored.data
        if byte_range is not None:
            start, end = byte_range
            if start < 0 or end < start:
                raise ValueError(f"invalid byte range [{start}, {end})")
            data = data[start:end]
        await asyncio.to_thread(path.write_bytes, data)
        return len(data)

    async def upload_file(
        self, path: Path, bucket: str, key: str, *, content_type: str | None = None
    ) -> None:
        self._maybe_fail()
        data = await asyncio.to_thread(path.read_bytes)
        self.put(bucket, key, data, content_type=content_type)

    async def put_bytes(
        self, bucket: str, key: str, data: bytes, *, content_type: str | None = None
    ) -> None:
        self._maybe_fail()
        self.put(bucket, key, data, content_type=content_type)

    async def put_bytes_if_absent(
        self, bucket: str, key: str, data: bytes, *, content_type: str | None = None
    ) -> bool:
        self._maybe_fail()
        if (bucket, key) in self.objects:
            return False
        self.put(bucket, key, data, content_type=content_type)
        return True

    async def get_bytes(self, bucket: str, key: str, *, max_bytes: int) -> bytes:
        self._maybe_fail()
        stored = self._get(bucket, key)
        if len(stored.data) > max_bytes:
            raise InputLimitExceeded(
                f"s3://{bucket}/{key} is {len(stored.data)} bytes, above {max_bytes}",
                code="object_too_large",
            )
        return stored.data

    async def list_keys(self, bucket: str, prefix: str) -> AsyncIterator[ObjectInfo]:
        self._maybe_fail()
        for b, key in sorted(self.objects):
            if b == bucket and key.startswith(prefix):
                yield await self.head(bucket, key)

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        self._maybe_fail()
        doomed = [k for k in self.objects if k[0] == bucket and k[1].startswith(prefix)]
        for k in doomed:
            del self.objects[k]
        return len(doomed)


class RecordingPublisher(_Faults):
    """`EventPublisher` that keeps every published envelope, in order.

    Each envelope is turned into an EventBridge entry first, so an oversized event fails here
    exactly as it would on the bus.
    """

    def __init__(self, bus_name: str = "sluice-test-bus") -> None:
        super().__init__()
        self.bus_name = bus_name
        self.published: list[Envelope[Any]] = []

    async def publish(self, envelopes: Sequence[Envelope[Any]]) -> None:
        self._maybe_fail()
        for envelope in envelopes:
            to_eventbridge_entry(envelope, self.bus_name)
        self.published.extend(envelopes)

    def types(self) -> list[str]:
        """The contract types published so far, in order."""
        return [envelope.type for envelope in self.published]


class InMemoryLedger(_Faults):
    """`Ledger` in a dict, with the same transition table and errors as `DynamoDbLedger`."""

    def __init__(self, *, clock: Any = None) -> None:
        super().__init__()
        self.records: dict[str, FileRecord] = {}
        self.steps: dict[str, list[dict[str, Any]]] = {}
        self.runs: dict[str, RunRecord] = {}
        # (bucket, key) -> the latest S3 sequencer registered (`sequencer_order` form)
        self.sequencers: dict[tuple[str, str], str] = {}
        self._clock = clock or (lambda: datetime.now(UTC))
        self._tick = 0

    def _now(self) -> datetime:
        # Strictly increasing even with a frozen clock, like distinct DynamoDB history keys.
        self._tick += 1
        moment: datetime = self._clock()
        return moment + timedelta(microseconds=self._tick)

    async def register_file(
        self, record: FileRecord, *, sequencer: str | None = None
    ) -> tuple[bool, FileRecord]:
        self._maybe_fail()
        if sequencer is not None:
            if sequencer_order(sequencer) != sequencer:
                raise ValueError(f"sequencer {sequencer!r} is not in sequencer_order form")
            latest = self.sequencers.get((record.bucket, record.key))
            if latest is not None and latest > sequencer:
                raise SupersededError(f"{record.key} has a later notification registered")
        existing = self.records.get(record.file_id)
        if existing is not None:
            return False, existing
        if sequencer is not None:
            self.sequencers[(record.bucket, record.key)] = sequencer
        self.records[record.file_id] = record
        self.steps[record.file_id] = [
            {
                "at": iso(record.updated_at),
                "from_status": None,
                "to_status": record.status.value,
                "version": record.version,
            }
        ]
        return True, record

    async def transition(
        self,
        file_id: str,
        to: FileStatus,
        *,
        expected: Collection[FileStatus],
        current: FileRecord | None = None,
        **fields: Any,
    ) -> FileRecord:
        check_transition(to, expected)
        check_fields(fields)
        self._maybe_fail()
        given = current
        if given is not None and given.status in set(expected) and given.file_id != file_id:
            raise ValueError(f"the record given is of file {given.file_id}, not {file_id}")
        # `current` only saves a read in the real ledger; the fake always decides on its own
        # record, which is what the real one ends up doing too.
        current = self.records.get(file_id)
        if current is None:
            raise StaleStateError(
                f"file {file_id} is not in the ledger", file_id=file_id, current=None
            )
        if current.status not in {FileStatus(s) for s in expected}:
            raise StaleStateError(
                f"file {file_id} is {current.status}", file_id=file_id, current=current
            )
        updated = FileRecord.model_validate(
            {
                **current.model_dump(),
                **fields,
                "status": to,
                "version": current.version + 1,
                "updated_at": not_before(self._now(), current.updated_at + TICK),
            }
        )
        self.records[file_id] = updated
        self.steps[file_id].append(
            {
                **fields,
                "at": iso(updated.updated_at),
                "from_status": current.status.value,
                "to_status": to.value,
                "version": updated.version,
            }
        )
        return updated

    async def transition_assumed(
        self, assumed: FileRecord, to: FileStatus, **fields: Any
    ) -> FileRecord | None:
        check_transition(to, (assumed.status,))
        check_fields(fields)
        if self.records.get(assumed.file_id) != assumed:
            return None
        return await self.transition(assumed.file_id, to, expected=(assumed.status,), **fields)

    async def record_refusal(
        self, record: FileRecord, *, event_type: str, event_id: str, code: str, reason: str
    ) -> None:
        self._maybe_fail()
        self.steps.setdefault(record.file_id, []).append(
            {
                "at": iso(self._now()),
                "from_status": record.status.value,
                "to_status": REFUSED_STEP,
                "version": record.version,
                "event_type": event_type,
                "event_id": event_id,
                "error_code": code,
                "error": reason,
            }
        )

    async def get(self, file_id: str) -> FileRecord | None:
        self._maybe_fail()
        return self.records.get(file_id)

    async def history(self, file_id: str) -> list[dict[str, Any]]:
        self._maybe_fail()
        return [dict(step) for step in self.steps.get(file_id, [])]

    async def list_by_status(self, status: FileStatus, day: date) -> list[FileRecord]:
        self._maybe_fail()
        found = [
            r
            for r in self.records.values()
            if r.status == status and r.updated_at.astimezone(UTC).date() == day
        ]
        return sorted(found, key=lambda r: r.updated_at)

    async def put_run(self, run: RunRecord, *, replaces: RunRecord | None = None) -> None:
        self._maybe_fail()
        stored = self.runs.get(run.run_id)
        if replaces is not None and (stored is None or stored.updated_at != replaces.updated_at):
            raise StaleRunError(f"run {run.run_id} changed since it was read")
        self.runs[run.run_id] = run

    async def get_run(self, run_id: str) -> RunRecord | None:
        self._maybe_fail()
        return self.runs.get(run_id)


@dataclass(frozen=True)
class ParkedMessage:
    queue_url: str
    body: str
    reason_code: str
    reason: str


@dataclass
class RecordingParker:
    """`QueueParker` that keeps parked messages; `faults` makes the next parks fail."""

    parked: list[ParkedMessage] = field(default_factory=list)
    faults: list[BaseException] = field(default_factory=list)

    async def park(self, queue_url: str, body: str, reason_code: str, reason: str) -> None:
        if self.faults:
            raise self.faults.pop(0)
        self.parked.append(ParkedMessage(queue_url, body, reason_code, reason))


class ManualClock:
    """A monotonic clock in seconds that moves only when a test sets `now`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class InMemoryBusRules:
    """`BusRules` over a list of rules; `matches` answers with `match(pattern, event)` (a
    test's own stand-in for EventBridge's matcher) and records each question as (rule pattern,
    detail-type); `faults` makes the next calls (either method) fail."""

    rules: list[BusRule] = field(default_factory=list)
    match: Any = None  # Callable[[dict, dict], bool]
    listings: int = 0
    asked: list[tuple[str, str]] = field(default_factory=list)
    faults: list[BaseException] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    def add(self, name: str, pattern: dict[str, Any] | None, *, enabled: bool = True) -> None:
        import json

        arn = f"arn:aws:events:eu-west-1:111122223333:rule/sluice/{name}"
        text = None if pattern is None else json.dumps(pattern)
        self.rules.append(BusRule(name=name, arn=arn, event_pattern=text, enabled=enabled))

    async def list_rules(self) -> list[BusRule]:
        if self.faults:
            raise self.faults.pop(0)
        self.listings += 1
        return list(self.rules)

    async def matches(self, pattern: str, event: Mapping[str, Any]) -> bool:
        import json

        if self.faults:
            raise self.faults.pop(0)
        self.asked.append((pattern, str(event["detail-type"])))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let the other questions of one refresh start
            return bool(self.match(json.loads(pattern), dict(event)))
        finally:
            self.in_flight -= 1


@dataclass(frozen=True)
class FakeDeps:
    """`AwsDeps` plus typed access to the fakes behind it."""

    objects: InMemoryObjectStore
    publisher: RecordingPublisher
    ledger: InMemoryLedger
    parker: RecordingParker

    def as_aws_deps(self) -> AwsDeps:
        """The same fakes as an `AwsDeps` (this is where mypy checks the Protocols)."""
        return AwsDeps(
            objects=self.objects,
            publisher=self.publisher,
            ledger=self.ledger,
            parker=self.parker,
            rules=InMemoryBusRules(),
        )


def fake_deps() -> FakeDeps:
    """Fresh fakes for one test."""
    return FakeDeps(
        objects=InMemoryObjectStore(),
        publisher=RecordingPublisher(),
        ledger=InMemoryLedger(),
        parker=RecordingParker(),
    )
