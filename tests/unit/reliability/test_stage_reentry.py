"""A late duplicate that re-enters a step the file already finished, and dies half-way, must not
take the staged output of the finished attempt with it (found by the soak: the next stage then
read nothing, forever)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.datasets import DatasetCatalog
from contracts.events import FileIngestedV1, FileTransformedV1, FileValidatedV1
from contracts.types import DatasetRef
from sluice_output.domain import write_transformed_file
from sluice_shared.errors import TransientError
from sluice_shared.keys import file_id_for
from sluice_shared.ports import FileRecord, FileStatus
from sluice_shared.stages import StageDeps, StageSettings
from sluice_transform.domain import transform_validated_file
from sluice_validate.domain import validate_ingested_file
from tests.fakes import InMemoryLedger, InMemoryObjectStore

BODY = (
    "order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
    "ORD-000001,c1,2024-03-01T10:00:00Z,S1,2,2.5,EUR,DE,\n"
    "ORD-000002,c2,2024-03-02T10:00:00Z,S2,1,10,USD,US,\n"
    "ORD-000003,c3,2024-03-02T11:00:00Z,S3,0,1,GBP,GB,\n"
    "ORD-000004,c4,2024-03-03T11:00:00Z,S4,1,1,EUR,FR,\n"
    "ORD-000005,c5,2024-03-03T12:00:00Z,S5,1,1,EUR,FR,\n"
)


@pytest.fixture
def settings(settings: StageSettings) -> StageSettings:
    """Every file's rows staged (`SLUICE_INLINE_MAX_BYTES=0`), as a large file's are: these
    tests are about staging."""
    return settings.model_copy(update={"inline_max_bytes": 0})


async def ingested(deps: StageDeps) -> FileIngestedV1:
    assert isinstance(deps.objects, InMemoryObjectStore)
    deps.objects.put("raw", "orders/a.csv", BODY.encode())
    etag = (await deps.objects.head("raw", "orders/a.csv")).etag
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
    return FileIngestedV1(
        file_id=file_id,
        dataset=DatasetRef(name="orders", version=1),
        bucket="raw",
        key="orders/a.csv",
        etag=etag,
        size_bytes=len(BODY),
        object_created_at=datetime(2024, 3, 4, tzinfo=UTC),
    )


class Killed(BaseException):
    """The worker died (a BaseException: nothing in the step may catch it)."""


class DyingStore(InMemoryObjectStore):
    """Once armed, the worker dies at its next upload (after any clean-up it did before)."""

    armed = False

    async def upload_file(
        self, path: Path, bucket: str, key: str, *, content_type: str | None = None
    ) -> None:
        if self.armed:
            raise Killed(f"killed while uploading {key}")
        await super().upload_file(path, bucket, key, content_type=content_type)


async def test_validate_duplicate_dying_mid_restage_keeps_finished_staging(
    settings: StageSettings,
) -> None:
    # GIVEN a file validated once (its fact published)
    objects, ledger = DyingStore(), InMemoryLedger()
    deps = StageDeps(objects=objects, ledger=ledger, contracts=DatasetCatalog())
    event = await ingested(deps)
    first = await validate_ingested_file(event, deps, settings)
    assert isinstance(first.event, FileValidatedV1)
    # WHEN a duplicate of the same event re-enters validation and the worker dies at its first
    # upload
    objects.armed = True
    with pytest.raises(Killed):
        await validate_ingested_file(event, deps, settings)
    objects.armed = False
    # THEN transform still finds every staged row of the finished attempt
    transformed = await transform_validated_file(first.event, deps, settings)
    assert isinstance(transformed.event, FileTransformedV1)
    assert transformed.event.rows_out == 4


async def test_transform_duplicate_dying_mid_restage_keeps_finished_staging(
    settings: StageSettings,
) -> None:
    objects, ledger = DyingStore(), InMemoryLedger()
    deps = StageDeps(objects=objects, ledger=ledger, contracts=DatasetCatalog())
    validated = (await validate_ingested_file(await ingested(deps), deps, settings)).event
    assert isinstance(validated, FileValidatedV1)
    first = await transform_validated_file(validated, deps, settings)
    assert isinstance(first.event, FileTransformedV1)
    objects.armed = True
    with pytest.raises(Killed):
        await transform_validated_file(validated, deps, settings)
    objects.armed = False
    report = await write_transformed_file(first.event, deps, settings)
    assert report.rows_out == 4
    record = await ledger.get(validated.file_id)
    assert record is not None
    assert record.status is FileStatus.COMPLETED


def test_killed_is_not_an_exception() -> None:
    assert not issubclass(Killed, Exception)
    assert not issubclass(Killed, TransientError)
