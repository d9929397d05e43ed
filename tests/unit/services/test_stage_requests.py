"""Small one-bucket files staged (`SLUICE_INLINE_MAX_BYTES=0`): transform and output name their
staged object instead of listing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from contracts.datasets import DatasetCatalog
from contracts.events import FileIngestedV1, FileProcessedV1, FileTransformedV1, FileValidatedV1
from contracts.types import DatasetRef
from sluice_output.domain import ReconciliationError, write_transformed_file
from sluice_shared.errors import TransientError
from sluice_shared.keys import file_id_for, split_s3_uri
from sluice_shared.ports import FileRecord, FileStatus
from sluice_shared.stages import StageDeps, StageSettings
from sluice_transform.domain import transform_validated_file
from sluice_validate.domain import validate_ingested_file
from tests.fakes import InMemoryLedger, InMemoryObjectStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sluice_shared.ports import ObjectInfo

BODY = (
    "order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
    "ORD-000001,c1,2024-03-01T10:00:00Z,S1,2,2.5,EUR,DE,\n"
    "ORD-000002,c2,2024-03-02T10:00:00Z,S2,1,10,USD,US,\n"
)


class ListingCountingStore(InMemoryObjectStore):
    """The in-memory store, recording the prefixes listed."""

    def __init__(self) -> None:
        super().__init__()
        self.listed: list[str] = []

    async def list_keys(self, bucket: str, prefix: str) -> AsyncIterator[ObjectInfo]:
        self.listed.append(prefix)
        async for info in super().list_keys(bucket, prefix):
            yield info


def staged_key(announced_prefix: str, name: str) -> tuple[str, str]:
    """The (bucket, key) of the object `name` in the staging an event announced."""
    bucket, prefix = split_s3_uri(announced_prefix)
    return bucket, f"{prefix}{name}"


@pytest.fixture
def settings(settings: StageSettings) -> StageSettings:
    """The staged path for every file (no rows inline): what these tests are about."""
    return settings.model_copy(update={"inline_max_bytes": 0})


@pytest.fixture
def store() -> ListingCountingStore:
    return ListingCountingStore()


@pytest.fixture
def deps(store: ListingCountingStore) -> StageDeps:
    return StageDeps(objects=store, ledger=InMemoryLedger(), contracts=DatasetCatalog())


async def _validated(
    deps: StageDeps, store: ListingCountingStore, settings: StageSettings
) -> FileValidatedV1:
    store.put("raw", "orders/a.csv", BODY.encode())
    etag = (await store.head("raw", "orders/a.csv")).etag
    file_id = file_id_for("raw", "orders/a.csv", None, etag)
    await deps.ledger.register_file(
        FileRecord(
            file_id=file_id,
            dataset="orders",
            dataset_version=1,
            bucket="raw",
            key="orders/a.csv",
            etag=etag,
            size_bytes=len(BODY),
        )
    )
    ingested = FileIngestedV1(
        file_id=file_id,
        dataset=DatasetRef(name="orders", version=1),
        bucket="raw",
        key="orders/a.csv",
        etag=etag,
        size_bytes=len(BODY),
        object_created_at=datetime(2024, 3, 4, tzinfo=UTC),
    )
    validated = (await validate_ingested_file(ingested, deps, settings)).event
    assert isinstance(validated, FileValidatedV1)
    assert validated.bucket_count == 1
    return validated


async def test_stages_one_bucket_file_complete_without_listing_staged_objects(
    deps: StageDeps, store: ListingCountingStore, settings: StageSettings
) -> None:
    validated = await _validated(deps, store, settings)
    transformed = (await transform_validated_file(validated, deps, settings)).event
    assert isinstance(transformed, FileTransformedV1)
    processed = (await write_transformed_file(transformed, deps, settings)).event
    assert isinstance(processed, FileProcessedV1)
    assert (processed.rows_in, processed.rows_out, processed.rows_quarantined) == (2, 2, 0)
    assert store.listed == []


async def test_transform_named_staged_object_missing_raises_staging_incomplete(
    deps: StageDeps, store: ListingCountingStore, settings: StageSettings
) -> None:
    validated = await _validated(deps, store, settings)
    del store.objects[staged_key(validated.staged_prefix, "p00000-b0000.arrow")]
    with pytest.raises(TransientError) as raised:
        await transform_validated_file(validated, deps, settings)
    assert raised.value.code == "staging_incomplete"


async def test_output_named_staged_object_missing_fails_reconciliation_not_completes(
    deps: StageDeps, store: ListingCountingStore, settings: StageSettings
) -> None:
    validated = await _validated(deps, store, settings)
    transformed = (await transform_validated_file(validated, deps, settings)).event
    assert isinstance(transformed, FileTransformedV1)
    del store.objects[staged_key(transformed.transformed_prefix, "b0000.arrow")]
    with pytest.raises(ReconciliationError, match="rows_out 0"):
        await write_transformed_file(transformed, deps, settings)
    record = await deps.ledger.get(validated.file_id)
    assert record is not None
    assert record.status is FileStatus.FAILED
