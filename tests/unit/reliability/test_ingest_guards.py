"""Ingest guards the reliability scenarios called for, on fakes: a notification for a bucket
ingest does not own (spoofed), and an older object version notified after a newer one."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

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


class CountingStore(InMemoryObjectStore):
    """The in-memory store, counting HEADs."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = 0

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        self.heads += 1
        return await super().head(bucket, key)


def complete(version_id: str, sequencer: str) -> ObjectCreated:
    """A notification of `orders/x.csv` with everything S3 → EventBridge sends."""
    notice = created("raw", "orders/x.csv", version_id)
    return dataclasses.replace(notice, etag="0f1e", sequencer=sequencer)


async def test_ingest_older_sequencer_after_newer_is_superseded_without_reading_the_object() -> (
    None
):
    # GIVEN notifications that carry version id, size, ETag and sequencer (as EventBridge's do)
    objects, ledger = CountingStore(), InMemoryLedger()
    deps, settings = ingest_deps(objects, ledger), IngestSettings(**NAMES)
    # WHEN the newer version's is processed first and the older one's arrives late
    newest = await ingest_object(complete("v2", "0100"), deps, settings)
    older = await ingest_object(complete("v1", "FF"), deps, settings)
    # THEN the newer one is registered from the notification's facts, the older is superseded,
    # and the object was never read (not even there: the store is empty)
    assert (newest.outcome, older.outcome) == ("realtime", "superseded")
    [record] = ledger.records.values()
    assert (record.version_id, record.etag, record.size_bytes) == ("v2", "0f1e", len(BODY))
    assert objects.heads == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"sequencer": None},
        {"sequencer": "not hex"},
        {"size": None},
        {"etag": ""},
        {"version_id": None},
        {"key": "orders/x+y.csv"},
        {"key": "orders/x%2By.csv"},
    ],
    ids=["no-sequencer", "bad-sequencer", "no-size", "no-etag", "unversioned", "plus", "percent"],
)
async def test_ingest_notification_that_does_not_settle_the_version_reads_the_object(
    changes: dict[str, Any],
) -> None:
    # GIVEN a notification missing one fact, or whose key may or may not be URL-encoded
    objects, ledger = CountingStore(), InMemoryLedger()
    notice = dataclasses.replace(complete("v1", "0A"), **changes)
    for key in {notice.key, unquote_plus(notice.key)}:
        objects.put("raw", key, BODY)
    # WHEN ingest handles it
    report = await ingest_object(notice, ingest_deps(objects, ledger), IngestSettings(**NAMES))
    # THEN it read the object's metadata (HEAD) before registering it
    assert objects.heads == 1
    assert report.outcome == "realtime"
