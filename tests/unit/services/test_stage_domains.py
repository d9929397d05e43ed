"""validate → transform → output domains on in-memory fakes: counts, ledger steps, duplicates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.datasets import DatasetCatalog
from contracts.events import (
    FileIngestedV1,
    FileProcessedV1,
    FileRejectedV1,
    FileTransformedV1,
    FileValidatedV1,
)
from contracts.types import DatasetRef
from sluice_output.domain import write_transformed_file
from sluice_shared.keys import StageKeys, file_id_for
from sluice_shared.ports import FileRecord, FileStatus
from sluice_shared.stages import StageDeps, StageSettings
from sluice_transform.domain import transform_validated_file
from sluice_validate.domain import validate_ingested_file
from tests.fakes import InMemoryLedger, InMemoryObjectStore

HEADER = "order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
GOOD = [
    "ORD-000001,c1,2024-03-01T10:00:00Z,S1,2,2.5,EUR,DE,\n",
    "ORD-000002,c2,2024-03-02T10:00:00Z,S2,1,10,USD,US,\n",
    "ORD-000003,c3,2024-03-02T11:00:00Z,S3,1,1,GBP,GB,\n",
    "ORD-000004,c4,2024-03-03T11:00:00Z,S4,1,1,EUR,FR,\n",
]


@pytest.fixture
def deps() -> StageDeps:
    return StageDeps(
        objects=InMemoryObjectStore(), ledger=InMemoryLedger(), contracts=DatasetCatalog()
    )


async def ingested_file(deps: StageDeps, body: str, key: str = "orders/a.csv") -> FileIngestedV1:
    assert isinstance(deps.objects, InMemoryObjectStore)
    deps.objects.put("raw", key, body.encode())
    etag = (await deps.objects.head("raw", key)).etag
    file_id = file_id_for("raw", key, None, etag)
    await deps.ledger.register_file(
        FileRecord(
            file_id=file_id,
            dataset="orders",
            dataset_version=1,
            bucket="raw",
            key=key,
            etag=etag,
            size_bytes=len(body),
        )
    )
    return FileIngestedV1(
        file_id=file_id,
        dataset=DatasetRef(name="orders", version=1),
        bucket="raw",
        key=key,
        etag=etag,
        size_bytes=len(body),
        object_created_at=datetime(2024, 3, 4, tzinfo=UTC),
    )


async def test_stages_with_one_duplicate_reconcile_and_complete(
    deps: StageDeps, settings: StageSettings
) -> None:
    # GIVEN an orders file of four good rows plus an exact re-sent copy of the first
    ingested = await ingested_file(deps, HEADER + "".join(GOOD) + GOOD[0])
    # WHEN it goes through validate, transform and output
    validated = (await validate_ingested_file(ingested, deps, settings)).event
    assert isinstance(validated, FileValidatedV1)
    assert (validated.rows_in, validated.rows_valid, validated.rows_quarantined) == (5, 5, 0)
    transformed = (await transform_validated_file(validated, deps, settings)).event
    assert isinstance(transformed, FileTransformedV1)
    assert (transformed.rows_out, transformed.rows_quarantined) == (4, 1)
    processed = (await write_transformed_file(transformed, deps, settings)).event
    # THEN the file is COMPLETED with rows_in == rows_out + rows_quarantined
    assert isinstance(processed, FileProcessedV1)
    assert (processed.rows_in, processed.rows_out, processed.rows_quarantined) == (5, 4, 1)
    record = await deps.ledger.get(ingested.file_id)
    assert record is not None
    assert record.status is FileStatus.COMPLETED
    steps = [h["to_status"] for h in await deps.ledger.history(ingested.file_id)]
    assert steps[-1] == "COMPLETED"
    assert {"VALIDATING", "TRANSFORMING", "WRITING"} <= set(steps)
    # AND Parquet objects for three days plus the manifest exist
    assert isinstance(deps.objects, InMemoryObjectStore)
    keys = [info.key async for info in deps.objects.list_keys("processed", "")]
    assert sum(k.endswith(".parquet") for k in keys) == 3
    assert StageKeys(ingested.file_id, "orders").manifest in keys


async def test_validate_duplicate_delivery_after_transform_started_does_nothing(
    deps: StageDeps, settings: StageSettings
) -> None:
    ingested = await ingested_file(deps, HEADER + "".join(GOOD))
    validated = (await validate_ingested_file(ingested, deps, settings)).event
    assert isinstance(validated, FileValidatedV1)
    await transform_validated_file(validated, deps, settings)
    # WHEN the file.ingested message is delivered again
    again = await validate_ingested_file(ingested, deps, settings)
    # THEN nothing is redone or republished
    assert again.event is None


async def test_validate_redelivery_while_validating_redoes_the_step(
    deps: StageDeps, settings: StageSettings
) -> None:
    # A crash after claiming the step must not strand the file: the redelivery claims it again.
    ingested = await ingested_file(deps, HEADER + "".join(GOOD))
    await deps.ledger.transition(
        ingested.file_id, FileStatus.VALIDATING, expected=(FileStatus.PENDING,)
    )
    report = await validate_ingested_file(ingested, deps, settings)
    assert isinstance(report.event, FileValidatedV1)


async def test_output_redelivery_after_completion_republishes_the_same_fact(
    deps: StageDeps, settings: StageSettings
) -> None:
    ingested = await ingested_file(deps, HEADER + "".join(GOOD))
    validated = (await validate_ingested_file(ingested, deps, settings)).event
    assert isinstance(validated, FileValidatedV1)
    transformed = (await transform_validated_file(validated, deps, settings)).event
    assert isinstance(transformed, FileTransformedV1)
    first = (await write_transformed_file(transformed, deps, settings)).event
    # WHEN the file.transformed message is delivered again after COMPLETED
    second = (await write_transformed_file(transformed, deps, settings)).event
    # THEN the processed fact is rebuilt from the manifest (a lost publish is recovered)
    assert second == first


async def test_validate_too_many_bad_rows_rejects_file_atomically(
    deps: StageDeps, settings: StageSettings
) -> None:
    bad = "ORD-9,c,not-a-time,S,1,1,EUR,DE,\n"
    ingested = await ingested_file(deps, HEADER + GOOD[0] + bad * 3)
    report = await validate_ingested_file(ingested, deps, settings)
    assert isinstance(report.event, FileRejectedV1)
    assert report.event.reason_code == "bad_row_ratio_exceeded"
    assert report.event.rows_quarantined == report.event.rows_in == 4
    record = await deps.ledger.get(ingested.file_id)
    assert record is not None
    assert record.status is FileStatus.QUARANTINED
    assert isinstance(deps.objects, InMemoryObjectStore)
    staged = [info.key async for info in deps.objects.list_keys("work", "stage/")]
    assert staged == []
    quarantined = [info.key async for info in deps.objects.list_keys("errors", "quarantine/")]
    assert len(quarantined) == 1


async def test_validate_header_with_bare_carriage_returns_is_rejected_not_crashed(
    deps: StageDeps, settings: StageSettings
) -> None:
    # Found by the atheris fuzzer: csv.Error from the header parser used to escape validate.
    ingested = await ingested_file(deps, "\r\r,\r\r\n" + GOOD[0])
    report = await validate_ingested_file(ingested, deps, settings)
    assert isinstance(report.event, FileRejectedV1)
    assert report.event.reason_code == "header_mismatch"
