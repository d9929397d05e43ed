"""Two copies of one event entering a step afresh at the same instant (two Lambda instances):
the slower copy must not take the faster copy's announced staging with it.

The interleaving is forced, not hoped for: both copies look at the file's record (read it, or
try the claim without a read that their event allows) before either claims it (a barrier), and
every write of the slower copy waits until the faster one has returned its event. The slower
copy then dies at its first upload, so nothing of it is restaged: what the next stage reads
is exactly what the faster copy announced.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from contracts.datasets import DatasetCatalog
from contracts.events import FileTransformedV1, FileValidatedV1
from sluice_output.domain import write_transformed_file
from sluice_shared.ports import FileRecord, FileStatus
from sluice_shared.stages import StageDeps, StageSettings
from sluice_transform.domain import transform_validated_file
from sluice_validate.domain import validate_ingested_file
from tests.fakes import InMemoryLedger, InMemoryObjectStore
from tests.unit.reliability.test_stage_reentry import Killed, ingested

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path


E = TypeVar("E", FileValidatedV1, FileTransformedV1)
# Which copy the running task is: "first" (announces first), "second" (slower), "" (neither).
ROLE: ContextVar[str] = ContextVar("role", default="")


@pytest.fixture
def settings(settings: StageSettings) -> StageSettings:
    """Every file's rows staged (`SLUICE_INLINE_MAX_BYTES=0`), as a large file's are: these
    tests are about staging."""
    return settings.model_copy(update={"inline_max_bytes": 0})


class SameInstantLedger(InMemoryLedger):
    """Once armed, each copy's first look at the record (a read, or a claim without a read on
    the record its event carries) waits for the other copy's: both see the file where it was
    before either claimed the step."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier: asyncio.Barrier | None = None
        self.read: set[str] = set()

    async def _together(self) -> None:
        role = ROLE.get()
        if self.barrier is not None and role and role not in self.read:
            self.read.add(role)
            await self.barrier.wait()

    async def get(self, file_id: str) -> FileRecord | None:
        record = await super().get(file_id)
        await self._together()
        return record

    async def transition_assumed(
        self, assumed: FileRecord, to: FileStatus, **fields: Any
    ) -> FileRecord | None:
        await self._together()
        return await super().transition_assumed(assumed, to, **fields)


class SlowSecondStore(InMemoryObjectStore):
    """The second copy's writes (deletes included) wait until the first copy has announced;
    then, if `kill_second`, the second copy dies at its first upload."""

    def __init__(self) -> None:
        super().__init__()
        self.first_announced = asyncio.Event()
        self.kill_second = True
        self.second_deleted: list[str] = []

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        if ROLE.get() == "second":
            await self.first_announced.wait()
            self.second_deleted.append(prefix)
        return await super().delete_prefix(bucket, prefix)

    async def upload_file(
        self, path: Path, bucket: str, key: str, *, content_type: str | None = None
    ) -> None:
        if ROLE.get() == "second":
            await self.first_announced.wait()
            if self.kill_second:
                raise Killed(f"killed while uploading {key}")
        await super().upload_file(path, bucket, key, content_type=content_type)


def rig() -> tuple[SlowSecondStore, SameInstantLedger, StageDeps]:
    objects, ledger = SlowSecondStore(), SameInstantLedger()
    return objects, ledger, StageDeps(objects=objects, ledger=ledger, contracts=DatasetCatalog())


async def race(
    step: Callable[[], Awaitable[E | None]],
    objects: SlowSecondStore,
    ledger: SameInstantLedger,
) -> tuple[E, E | None]:
    """Run two copies of `step` entering at the same instant; the first announces first.
    Returns the first copy's event and the second's (None when the second died)."""
    ledger.barrier, ledger.read = asyncio.Barrier(2), set()

    async def first() -> E | None:
        ROLE.set("first")
        try:
            return await step()
        finally:
            objects.first_announced.set()

    async def second() -> E | None:
        ROLE.set("second")
        try:
            return await step()
        except Killed:
            return None

    announced, late = await asyncio.gather(first(), second())
    ledger.barrier = None
    assert announced is not None
    return announced, late


async def validated_event(deps: StageDeps, settings: StageSettings) -> FileValidatedV1:
    ingest_fact = await ingested(deps)

    async def step() -> FileValidatedV1 | None:
        report = await validate_ingested_file(ingest_fact, deps, settings)
        assert report.event is None or isinstance(report.event, FileValidatedV1)
        return report.event

    assert isinstance(deps.ledger, SameInstantLedger)
    assert isinstance(deps.objects, SlowSecondStore)
    announced, late = await race(step, deps.objects, deps.ledger)
    assert late is None  # the second copy died
    return announced


async def claims_into(ledger: InMemoryLedger, file_id: str, step: FileStatus) -> int:
    """How many times the file entered `step` from elsewhere or claimed it again (the counts
    update after the work sets fields, a claim sets none)."""
    history = await ledger.history(file_id)
    return sum(
        1
        for s in history
        if s["to_status"] == step.value and "rows_in" not in s and "rows_quarantined" not in s
    )


async def test_validate_two_fresh_copies_at_once_slower_keeps_faster_announced_staging(
    settings: StageSettings,
) -> None:
    # GIVEN a file ingested once, and two copies of its file.ingested event entering validation
    # at the same instant; the second is slower and dies at its first upload
    _, ledger, deps = rig()
    # WHEN the first copy has announced its staging before the second gets to write
    announced = await validated_event(deps, settings)
    # THEN both copies claimed the step (the race happened)
    assert await claims_into(ledger, announced.file_id, FileStatus.VALIDATING) == 2
    # AND transform finds every row the first copy announced
    transformed = await transform_validated_file(announced, deps, settings)
    assert isinstance(transformed.event, FileTransformedV1)
    assert transformed.event.rows_out == 4
    # AND the file completes
    report = await write_transformed_file(transformed.event, deps, settings)
    assert report.rows_out == 4
    record = await ledger.get(announced.file_id)
    assert record is not None
    assert record.status is FileStatus.COMPLETED


async def test_transform_two_fresh_copies_at_once_slower_keeps_faster_announced_staging(
    settings: StageSettings,
) -> None:
    objects, ledger, deps = rig()
    validated = (await validate_ingested_file(await ingested(deps), deps, settings)).event
    assert isinstance(validated, FileValidatedV1)

    async def step() -> FileTransformedV1 | None:
        event = (await transform_validated_file(validated, deps, settings)).event
        if event is None:
            return None
        assert isinstance(event, FileTransformedV1)
        return event

    announced, late = await race(step, objects, ledger)
    assert late is None
    assert await claims_into(ledger, validated.file_id, FileStatus.TRANSFORMING) == 2
    # THEN output writes every row the first copy announced and completes the file
    report = await write_transformed_file(announced, deps, settings)
    assert report.rows_out == 4
    record = await ledger.get(validated.file_id)
    assert record is not None
    assert record.status is FileStatus.COMPLETED
    assert (record.rows_in, record.rows_out, record.rows_quarantined) == (5, 4, 1)


async def test_two_fresh_copies_both_finishing_each_announce_complete_distinct_staging(
    settings: StageSettings,
) -> None:
    # GIVEN two copies entering validation at once, both finishing (nobody dies)
    objects, ledger, deps = rig()
    objects.kill_second = False
    ingest_fact = await ingested(deps)

    async def step() -> FileValidatedV1 | None:
        report = await validate_ingested_file(ingest_fact, deps, settings)
        assert report.event is None or isinstance(report.event, FileValidatedV1)
        return report.event

    announced, late = await race(step, objects, ledger)
    # THEN each announced its own staging, and neither deleted anything
    assert late is not None
    assert announced.staged_prefix != late.staged_prefix
    assert objects.second_deleted == []
    # AND both announced facts are usable: the first drives transform, the late one re-enters
    # it (a duplicate fact with its own staging) and reads the same rows
    last: FileTransformedV1 | None = None
    for fact in (announced, late):
        event = (await transform_validated_file(fact, deps, settings)).event
        assert isinstance(event, FileTransformedV1)
        assert event.rows_out == 4
        last = event
    assert last is not None
    report = await write_transformed_file(last, deps, settings)
    assert report.rows_out == 4
