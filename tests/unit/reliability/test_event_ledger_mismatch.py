"""Each stage takes what it acts on from the ledger record and the settings, never from the
event: an event about a registered file that disagrees with the record is refused
(`event_ledger_mismatch`, poison) before any side effect, naming every differing field with
both values. Genuine events, duplicates included, always agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.datasets import DatasetCatalog
from contracts.events import FileIngestedV1, FileTransformedV1, FileValidatedV1
from contracts.types import DatasetRef
from sluice_output.domain import write_transformed_file
from sluice_shared.errors import EventLedgerMismatch, TransientError
from sluice_shared.keys import file_id_for
from sluice_shared.ports import FileRecord
from sluice_shared.stages import StageDeps, StageSettings
from sluice_transform.domain import transform_validated_file
from sluice_validate.domain import validate_ingested_file
from tests.fakes import InMemoryLedger, InMemoryObjectStore

BODY = (
    b"order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
    b"ORD-000001,c1,2024-03-01T10:00:00Z,S1,2,2.5,EUR,DE,\n"
    b"ORD-000002,c2,2024-03-02T10:00:00Z,S2,1,10,USD,US,\n"
)


@pytest.fixture
def settings(settings: StageSettings) -> StageSettings:
    """Every file's rows staged (`SLUICE_INLINE_MAX_BYTES=0`), as a large file's are: these
    tests are about staging."""
    return settings.model_copy(update={"inline_max_bytes": 0})


@pytest.fixture
def deps() -> StageDeps:
    return StageDeps(
        objects=InMemoryObjectStore(), ledger=InMemoryLedger(), contracts=DatasetCatalog()
    )


async def registered_file(deps: StageDeps) -> FileIngestedV1:
    assert isinstance(deps.objects, InMemoryObjectStore)
    deps.objects.put("raw", "orders/a.csv", BODY)
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


def snapshot(deps: StageDeps) -> tuple[Any, ...]:
    assert isinstance(deps.objects, InMemoryObjectStore)
    assert isinstance(deps.ledger, InMemoryLedger)
    return (
        dict(deps.objects.objects),
        dict(deps.ledger.records),
        {k: list(v) for k, v in deps.ledger.steps.items()},
    )


@pytest.mark.parametrize(
    ("change", "field", "event_value", "ledger_value"),
    [
        (
            {"dataset": DatasetRef(name="sensor_readings", version=1)},
            "dataset.name",
            "'sensor_readings'",
            "'orders'",
        ),
        ({"dataset": DatasetRef(name="orders", version=2)}, "dataset.version", "2", "1"),
        ({"bucket": "elsewhere"}, "bucket", "'elsewhere'", "'raw'"),
        ({"key": "orders/b.csv"}, "key", "'orders/b.csv'", "'orders/a.csv'"),
        ({"version_id": "v9"}, "version_id", "'v9'", "None"),
        ({"etag": "forged"}, "etag", "'forged'", None),
        ({"size_bytes": 1}, "size_bytes", "1", str(len(BODY))),
    ],
)
async def test_validate_refuses_an_ingested_event_that_disagrees_with_the_ledger(
    deps: StageDeps,
    settings: StageSettings,
    change: dict[str, Any],
    field: str,
    event_value: str,
    ledger_value: str | None,
) -> None:
    # GIVEN a registered file and a file.ingested naming it with one field changed
    genuine = await registered_file(deps)
    forged = genuine.model_copy(update=change)
    before = snapshot(deps)
    # WHEN validate receives it
    with pytest.raises(EventLedgerMismatch) as refused:
        await validate_ingested_file(forged, deps, settings)
    # THEN it is poison naming the field and both values, and nothing changed
    assert refused.value.code == "event_ledger_mismatch"
    [(name, got, want)] = refused.value.differences
    assert name == field
    assert repr(got) == event_value
    if ledger_value is not None:
        assert repr(want) == ledger_value
    assert f"{field}: event {event_value}" in str(refused.value)
    assert snapshot(deps) == before


async def test_genuine_events_and_their_duplicates_agree_with_the_ledger(
    deps: StageDeps, settings: StageSettings
) -> None:
    # GIVEN a file run through the three stages
    ingested = await registered_file(deps)
    validated = (await validate_ingested_file(ingested, deps, settings)).event
    assert isinstance(validated, FileValidatedV1)
    transformed = (await transform_validated_file(validated, deps, settings)).event
    assert isinstance(transformed, FileTransformedV1)
    assert (await write_transformed_file(transformed, deps, settings)).event is not None
    # WHEN every fact is delivered again after completion
    # THEN none is refused: each is a duplicate (output republishes its fact)
    assert (await validate_ingested_file(ingested, deps, settings)).event is None
    assert (await transform_validated_file(validated, deps, settings)).event is None
    assert (await write_transformed_file(transformed, deps, settings)).event is not None


async def validated_file(deps: StageDeps, settings: StageSettings) -> FileValidatedV1:
    validated = (await validate_ingested_file(await registered_file(deps), deps, settings)).event
    assert isinstance(validated, FileValidatedV1)
    return validated


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"staged_prefix": "s3://work/stage/" + "e" * 32 + "/validated/"}, "staged_prefix"),
        ({"staged_prefix": "s3://attacker/stage/x/validated/"}, "staged_prefix"),
        ({"dataset": DatasetRef(name="sensor_readings", version=1)}, "dataset.name"),
        ({"bucket_count": 4}, "bucket_count"),
        ({"partition_count": 2}, "partition_count"),
        ({"rows_in": 0, "rows_valid": 0, "rows_quarantined": 0}, "rows_in"),
        ({"rows_quarantined": 1}, "rows_quarantined"),
        ({"quarantine_uri": "s3://errors/elsewhere/"}, "quarantine_uri"),
    ],
)
async def test_transform_refuses_a_validated_event_that_disagrees_with_the_ledger(
    deps: StageDeps, settings: StageSettings, change: dict[str, Any], field: str
) -> None:
    # GIVEN a validated file and a file.validated naming it with a field changed
    genuine = await validated_file(deps, settings)
    forged = genuine.model_copy(update=change)
    before = snapshot(deps)
    # WHEN transform receives it
    with pytest.raises(EventLedgerMismatch) as refused:
        await transform_validated_file(forged, deps, settings)
    # THEN it is refused naming the field, the file is still where it was, nothing was staged
    assert field in [name for name, _, _ in refused.value.differences]
    assert snapshot(deps) == before


async def test_transform_refuses_validated_before_validate_recorded_its_counts(
    deps: StageDeps, settings: StageSettings
) -> None:
    # GIVEN a registered file that validate never finished (the ledger holds no counts)
    ingested = await registered_file(deps)
    forged = FileValidatedV1(
        file_id=ingested.file_id,
        dataset=ingested.dataset,
        bucket="raw",
        key="orders/a.csv",
        staged_prefix=f"s3://work/stage/{ingested.file_id}/validated/",
        bucket_count=1,
        rows_in=0,
        rows_valid=0,
        rows_quarantined=0,
        bytes_in=0,
        object_created_at=ingested.object_created_at,
    )
    # WHEN a file.validated claiming an empty file arrives
    with pytest.raises(EventLedgerMismatch) as refused:
        await transform_validated_file(forged, deps, settings)
    # THEN it cannot make the file complete empty: its counts have nothing to agree with
    assert ("rows_in", 0, None) in refused.value.differences


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"transformed_prefix": "s3://work/stage/" + "e" * 32 + "/transformed/"},
            "transformed_prefix",
        ),
        ({"dataset": DatasetRef(name="sensor_readings", version=1)}, "dataset.name"),
        ({"key": "orders/b.csv"}, "key"),
        ({"bucket_count": 2}, "bucket_count"),
        ({"rows_file_in": 5}, "rows_file_in"),
        ({"rows_quarantined": 7}, "rows_quarantined"),
    ],
)
async def test_output_refuses_a_transformed_event_that_disagrees_with_the_ledger(
    deps: StageDeps, settings: StageSettings, change: dict[str, Any], field: str
) -> None:
    # GIVEN a transformed file and a file.transformed naming it with a field changed
    validated = await validated_file(deps, settings)
    genuine = (await transform_validated_file(validated, deps, settings)).event
    assert isinstance(genuine, FileTransformedV1)
    forged = genuine.model_copy(update=change)
    before = snapshot(deps)
    # WHEN output receives it
    with pytest.raises(EventLedgerMismatch) as refused:
        await write_transformed_file(forged, deps, settings)
    # THEN nothing was written and the file did not move
    assert field in [name for name, _, _ in refused.value.differences]
    assert snapshot(deps) == before


@pytest.mark.parametrize(
    ("area", "refused"),
    [
        ("validated/v{version}/", False),  # the attempt that announced it
        ("validated/", False),  # the step prefix of an event from before per-attempt staging
        ("validated/v{later}/", True),  # an attempt the ledger never issued
        ("validated/v{version}/nested/", True),
        ("transformed/v{version}/", True),  # another step's staging
    ],
)
async def test_transform_accepts_only_the_files_own_issued_staging_areas(
    deps: StageDeps, settings: StageSettings, area: str, refused: bool
) -> None:
    # GIVEN a validated file, and its file.validated naming one of several staging areas
    genuine = await validated_file(deps, settings)
    record = await deps.ledger.get(genuine.file_id)
    assert record is not None
    version = int(genuine.staged_prefix.rstrip("/").rsplit("/v", 1)[1])
    named = area.format(version=f"{version:06d}", later=f"{record.version + 1:06d}")
    forged = genuine.model_copy(
        update={"staged_prefix": f"s3://work/stage/{genuine.file_id}/{named}"}
    )
    # WHEN transform receives it
    if refused:
        with pytest.raises(EventLedgerMismatch) as caught:
            await transform_validated_file(forged, deps, settings)
        # THEN it is refused, saying what shape the prefix must have
        [(field, _, expected)] = caught.value.differences
        assert field == "staged_prefix"
        assert str(expected).startswith(f"s3://work/stage/{genuine.file_id}/validated/v<")
    else:
        # THEN it is the file's own: transform claims the step (no refusal); the bare step
        # prefix holds none of the attempts' objects, which is a retry, not a refusal
        if named == "validated/":
            with pytest.raises(TransientError, match="staged rows"):
                await transform_validated_file(forged, deps, settings)
        else:
            await transform_validated_file(forged, deps, settings)
        after = await deps.ledger.get(genuine.file_id)
        assert after is not None
        assert after.status.value == "TRANSFORMING"
