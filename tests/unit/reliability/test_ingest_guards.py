"""Ingest guards the reliability scenarios called for, on fakes: a notification for a bucket
ingest does not own (spoofed), and an older object version notified after a newer one."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from contracts.datasets import DatasetCatalog
from sluice_ingest.config import IngestSettings
from sluice_ingest.domain import ObjectCreated, ingest_object
from sluice_ingest.ports import IngestDeps
from sluice_shared.errors import PoisonInputError
from sluice_shared.ports import ObjectInfo
from tests.fakes import InMemoryLedger, InMemoryObjectStore, RecordingPublisher

NAMES = {
    "raw_bucket": "raw",
    "work_bucket": "work",
    "processed_bucket": "processed",
    "error_bucket": "errors",
    "event_bus": "bus",
    "ledger_table": "ledger",
}
BODY = b"order_id,customer_id\nORD-000001,c\n"


class VersionedStore(InMemoryObjectStore):
    """HEAD answers for the newest version, as S3 does on a versioned bucket."""

    newest_version = "v2"

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        info = await super().head(bucket, key)
        return dataclasses.replace(info, version_id=self.newest_version)


def ingest_deps(objects: InMemoryObjectStore, ledger: InMemoryLedger) -> IngestDeps:
    return IngestDeps(
        objects=objects,
        publisher=RecordingPublisher(),
        ledger=ledger,
        contracts=DatasetCatalog(),
        workflow=None,
    )


def created(bucket: str, key: str, version_id: str | None = None) -> ObjectCreated:
    return ObjectCreated(
        bucket=bucket,
        key=key,
        size=len(BODY),
        etag="etag",
        version_id=version_id,
        sequencer=None,
        time=datetime(2024, 3, 1, tzinfo=UTC),
    )


async def test_ingest_notification_for_foreign_bucket_is_poison_and_registers_nothing() -> None:
    # GIVEN an object in a bucket that is not the raw bucket (a spoofed or misrouted event)
    objects, ledger = InMemoryObjectStore(), InMemoryLedger()
    objects.put("processed", "orders/x.csv", BODY)
    # WHEN ingest gets a notification for it
    with pytest.raises(PoisonInputError) as rejected:
        await ingest_object(
            created("processed", "orders/x.csv"),
            ingest_deps(objects, ledger),
            IngestSettings(**NAMES),
        )
    # THEN it is poison (parked with a reason) and nothing was registered
    assert rejected.value.code == "unexpected_bucket"
    assert ledger.records == {}


async def test_ingest_older_version_notified_after_newer_is_superseded() -> None:
    # GIVEN a versioned raw object whose newest version is v2
    objects, ledger = VersionedStore(), InMemoryLedger()
    objects.put("raw", "orders/x.csv", BODY)
    deps, settings = ingest_deps(objects, ledger), IngestSettings(**NAMES)
    # WHEN the notification of v1 arrives (late: v2 is already there)
    report = await ingest_object(created("raw", "orders/x.csv", "v1"), deps, settings)
    # THEN v1 is not registered and nothing is announced
    assert report.outcome == "superseded"
    assert report.event is None
    assert ledger.records == {}
    # AND the newest version's notification goes through as usual
    newest = await ingest_object(created("raw", "orders/x.csv", "v2"), deps, settings)
    assert newest.outcome == "realtime"
    assert [r.version_id for r in ledger.records.values()] == ["v2"]
