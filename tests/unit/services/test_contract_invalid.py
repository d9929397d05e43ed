"""A data contract that does not load ends the file QUARANTINED `contract_invalid`, never a retry.

Before, the loader raised pydantic's ValidationError: neither poison nor transient, so the SQS
consumer retried the notification on every delivery (a crash loop with nothing in the ledger).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from contracts.datasets import DatasetCatalog
from contracts.datasets.loader import DATASETS_DIR
from contracts.events import FileRejectedV1, FileValidatedV1
from sluice_ingest.domain import ingest_object
from sluice_ingest.ports import IngestDeps
from sluice_shared.ports import FileStatus
from sluice_shared.stages import StageDeps, StageSettings
from sluice_transform.domain import transform_validated_file
from sluice_validate.domain import validate_ingested_file
from tests.fakes import InMemoryLedger, InMemoryObjectStore, RecordingPublisher
from tests.unit.services.test_ingest_domain import notice
from tests.unit.services.test_ingest_domain import settings as ingest_settings
from tests.unit.services.test_stage_domains import GOOD, HEADER, ingested_file


@pytest.fixture
def broken(tmp_path: Path) -> DatasetCatalog:
    """GIVEN the data contracts with orders' lookup written `on:` (read as the boolean true)."""
    root = tmp_path / "datasets"
    shutil.copytree(DATASETS_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    contract = root / "orders" / "v1.yaml"
    contract.write_text(
        contract.read_text().replace(
            "{table: countries, column: country", "{table: countries, on: country"
        )
    )
    return DatasetCatalog(root)


def _assert_contract_invalid(error: str | None) -> None:
    assert error is not None
    first, *problems = error.splitlines()
    assert first == "data contract orders/v1 does not load (2 problems):"
    assert problems[0].startswith("- ")
    assert "transform.lookups[0].on: the key `on` was read as the boolean true" in problems[0]
    assert "transform.lookups[0].column: Field required" in problems[1]


async def test_ingest_with_a_broken_contract_quarantines_the_file(broken: DatasetCatalog) -> None:
    objects = InMemoryObjectStore()
    created = notice("orders/2024/03/01/a.csv", objects)
    ledger = InMemoryLedger()
    deps = IngestDeps(
        objects=objects, publisher=RecordingPublisher(), ledger=ledger, contracts=broken
    )

    # WHEN ingest sees the file (today: an exception on every delivery)
    report = await ingest_object(created, deps, ingest_settings())

    # THEN the file is QUARANTINED contract_invalid with the problems, and rejected
    assert report.outcome == "rejected"
    assert isinstance(report.event, FileRejectedV1)
    assert report.event.reason_code == "contract_invalid"
    record = await ledger.get(report.file_id)
    assert record is not None
    assert record.status is FileStatus.QUARANTINED
    assert record.error_code == "contract_invalid"
    _assert_contract_invalid(record.error)

    # AND a redelivery of the notification is a duplicate, not another attempt
    again = await ingest_object(created, deps, ingest_settings())
    assert again.outcome == "duplicate"


async def test_validate_with_a_contract_broken_after_ingest_quarantines_the_file(
    settings: StageSettings, broken: DatasetCatalog
) -> None:
    deps = StageDeps(objects=InMemoryObjectStore(), ledger=InMemoryLedger(), contracts=broken)
    ingested = await ingested_file(deps, HEADER + "".join(GOOD))

    report = await validate_ingested_file(ingested, deps, settings)

    assert isinstance(report.event, FileRejectedV1)
    assert report.event.reason_code == "contract_invalid"
    record = await deps.ledger.get(ingested.file_id)
    assert record is not None
    assert record.status is FileStatus.QUARANTINED
    _assert_contract_invalid(record.error)


async def test_transform_with_a_contract_broken_after_validate_quarantines_the_file(
    settings: StageSettings, broken: DatasetCatalog
) -> None:
    deps = StageDeps(
        objects=InMemoryObjectStore(), ledger=InMemoryLedger(), contracts=DatasetCatalog()
    )
    ingested = await ingested_file(deps, HEADER + "".join(GOOD))
    validated = (await validate_ingested_file(ingested, deps, settings)).event
    assert isinstance(validated, FileValidatedV1)

    # WHEN the contract breaks before transform runs
    report = await transform_validated_file(validated, replace(deps, contracts=broken), settings)

    # THEN the file ends QUARANTINED from TRANSFORMING, every row counted as quarantined
    assert isinstance(report.event, FileRejectedV1)
    assert report.event.reason_code == "contract_invalid"
    assert report.event.rows_quarantined == len(GOOD)
    record = await deps.ledger.get(ingested.file_id)
    assert record is not None
    assert record.status is FileStatus.QUARANTINED
    assert (record.rows_in, record.rows_out, record.rows_quarantined) == (4, 0, 4)
    _assert_contract_invalid(record.error)


async def test_transform_with_a_missing_lookup_table_quarantines_the_file(
    settings: StageSettings, tmp_path: Path
) -> None:
    root = tmp_path / "datasets"
    shutil.copytree(DATASETS_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    deps = StageDeps(
        objects=InMemoryObjectStore(), ledger=InMemoryLedger(), contracts=DatasetCatalog(root)
    )
    ingested = await ingested_file(deps, HEADER + "".join(GOOD))
    validated = (await validate_ingested_file(ingested, deps, settings)).event
    assert isinstance(validated, FileValidatedV1)
    # WHEN the lookup table the contract joins with is gone when transform runs
    (root / "orders" / "lookups" / "countries.csv").unlink()

    report = await transform_validated_file(validated, deps, settings)

    assert isinstance(report.event, FileRejectedV1)
    assert report.event.reason_code == "invalid_lookup_table"
    record = await deps.ledger.get(ingested.file_id)
    assert record is not None
    assert record.status is FileStatus.QUARANTINED
