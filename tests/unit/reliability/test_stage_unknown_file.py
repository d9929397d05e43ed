"""A stage fact about a file the ledger never registered (spoofed) is poison, parked at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.datasets import DatasetCatalog
from contracts.events import FileIngestedV1
from contracts.types import DatasetRef
from sluice_shared.errors import PoisonInputError
from sluice_shared.stages import StageDeps, StageSettings
from sluice_validate.domain import validate_ingested_file
from tests.fakes import InMemoryLedger, InMemoryObjectStore

NAMES = {
    "raw_bucket": "raw",
    "work_bucket": "work",
    "processed_bucket": "processed",
    "error_bucket": "errors",
    "event_bus": "bus",
    "ledger_table": "ledger",
}
BODY = b"order_id,customer_id\nORD-000001,c\n"


async def test_stage_fact_for_unregistered_file_is_poison_without_side_effect() -> None:
    # GIVEN a well-formed file.ingested for a file the ledger never registered (spoofed)
    objects, ledger = InMemoryObjectStore(), InMemoryLedger()
    objects.put("raw", "orders/x.csv", BODY)
    spoofed = FileIngestedV1(
        file_id="0" * 32,
        dataset=DatasetRef(name="orders", version=1),
        bucket="raw",
        key="orders/x.csv",
        etag="etag",
        size_bytes=len(BODY),
        object_created_at=datetime(2024, 3, 1, tzinfo=UTC),
    )
    deps = StageDeps(objects=objects, ledger=ledger, contracts=DatasetCatalog())
    # WHEN validate receives it
    with pytest.raises(PoisonInputError) as rejected:
        await validate_ingested_file(spoofed, deps, StageSettings(**NAMES))
    # THEN it is parked at once (not retried up to maxReceiveCount), and nothing was written
    assert rejected.value.code == "unknown_file"
    assert set(objects.objects) == {("raw", "orders/x.csv")}
    assert ledger.records == {}
