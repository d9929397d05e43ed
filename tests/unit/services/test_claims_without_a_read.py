"""Claims without a read: a fact carrying the ledger record its producer left is claimed on the
condition that the stored record is exactly that one; any doubt takes the read, check, claim."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.datasets import DatasetCatalog
from contracts.events import FileIngestedV2, FileProcessedV1, FileTransformedV3, FileValidatedV3
from contracts.types import DatasetRef
from sluice_output.domain import write_transformed_file
from sluice_shared.errors import EventLedgerMismatch
from sluice_shared.keys import file_id_for
from sluice_shared.ports import FileRecord, FileStatus
from sluice_shared.stages import StageDeps, StageSettings, snapshot_of
from sluice_transform.domain import transform_validated_file
from sluice_validate.domain import validate_ingested_file
from tests.fakes import InMemoryLedger, InMemoryObjectStore

BODY = (
    "order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
    "ORD-000001,c1,2024-03-01T10:00:00Z,S1,2,2.5,EUR,DE,\n"
    "ORD-000002,c2,2024-03-02T10:00:00Z,S2,1,10,USD,US,\n"
)


class ReadCountingLedger(InMemoryLedger):
    """The in-memory ledger, counting the records read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, file_id: str) -> FileRecord | None:
        self.reads += 1
        return await super().get(file_id)


@pytest.fixture
def ledger() -> ReadCountingLedger:
    return ReadCountingLedger()


@pytest.fixture
def deps(ledger: ReadCountingLedger) -> StageDeps:
    return StageDeps(objects=InMemoryObjectStore(), ledger=ledger, contracts=DatasetCatalog())


async def _ingested(deps: StageDeps, *, key: str | None = None) -> FileIngestedV2:
    """Register a raw file as ingest does; its fact carries the registered record (`key`:
    a fact naming another key, with a snapshot that agrees with it)."""
    store = deps.objects
    assert isinstance(store, InMemoryObjectStore)
    store.put("raw", "orders/a.csv", BODY.encode())
    etag = (await store.head("raw", "orders/a.csv")).etag
    file_id = file_id_for("raw", "orders/a.csv", None, etag)
    _, registered = await deps.ledger.register_file(
        FileRecord(
            file_id=file_id,
            dataset="orders",
            dataset_version=1,
            bucket="raw",
            key="orders/a.csv",
            etag=etag,
            size_bytes=len(BODY),
            correlation_id=file_id,
        )
    )
    return FileIngestedV2(
        file_id=file_id,
        dataset=DatasetRef(name="orders", version=1),
        bucket="raw",
        key=key or "orders/a.csv",
        etag=etag,
        size_bytes=len(BODY),
        object_created_at=datetime(2024, 3, 4, tzinfo=UTC),
        ledger=snapshot_of(registered),
    )


async def through_every_stage(
    ingested: FileIngestedV2, deps: StageDeps, settings: StageSettings
) -> tuple[FileValidatedV3, FileTransformedV3, FileProcessedV1]:
    """The facts validate, transform and output publish for `ingested`, each stage handling
    the fact the one before published (small files: the v3 facts)."""
    validated = (await validate_ingested_file(ingested, deps, settings)).event
    assert isinstance(validated, FileValidatedV3)
    transformed = (await transform_validated_file(validated, deps, settings)).event
    assert isinstance(transformed, FileTransformedV3)
    processed = (await write_transformed_file(transformed, deps, settings)).event
    assert isinstance(processed, FileProcessedV1)
    return validated, transformed, processed


async def test_each_stage_claims_the_fact_it_receives_without_reading_the_ledger(
    deps: StageDeps, ledger: ReadCountingLedger, settings: StageSettings
) -> None:
    # GIVEN a file ingested with its record in the fact
    ingested = await _ingested(deps)

    # WHEN each stage handles the fact the one before published
    validated, transformed, processed = await through_every_stage(ingested, deps, settings)

    # THEN the file completes and no stage read its record
    assert (processed.rows_in, processed.rows_out) == (2, 2)
    assert ledger.reads == 0
    # each fact carries the record exactly as its producer left it
    for fact in (validated, transformed):
        assert fact.ledger is not None
    stored = await ledger.get(ingested.file_id)
    assert stored is not None
    assert stored.status is FileStatus.COMPLETED


async def test_a_fact_agreeing_with_its_own_snapshot_but_not_the_ledger_is_refused_unwritten(
    deps: StageDeps, ledger: ReadCountingLedger, settings: StageSettings
) -> None:
    # GIVEN a forged fact: another key, and a snapshot that agrees with it (not with the ledger)
    forged = await _ingested(deps, key="orders/other.csv")
    before = await ledger.get(forged.file_id)

    # WHEN validate handles it
    with pytest.raises(EventLedgerMismatch) as refused:
        await validate_ingested_file(forged, deps, settings)

    # THEN the claim's condition failed, the read found the difference, nothing was written
    assert [d[0] for d in refused.value.differences] == ["key"]
    assert await ledger.get(forged.file_id) == before
    assert [s["to_status"] for s in await ledger.history(forged.file_id)] == ["PENDING"]


async def test_a_redelivered_fact_whose_snapshot_is_stale_claims_after_reading(
    deps: StageDeps, ledger: ReadCountingLedger, settings: StageSettings
) -> None:
    # GIVEN a fact validate has handled once (the file moved on from the record it carries)
    ingested = await _ingested(deps)
    first = (await validate_ingested_file(ingested, deps, settings)).event
    assert isinstance(first, FileValidatedV3)
    reads = ledger.reads

    # WHEN it is delivered again
    again = (await validate_ingested_file(ingested, deps, settings)).event

    # THEN the second delivery read the record and claimed under its version, as without a
    # snapshot: the same fact again, staged under the new attempt's own prefix
    assert ledger.reads == reads + 1
    assert isinstance(again, FileValidatedV3)
    assert again.rows_valid == first.rows_valid
    assert again.ledger is not None
    assert first.ledger is not None
    assert again.ledger.version > first.ledger.version
