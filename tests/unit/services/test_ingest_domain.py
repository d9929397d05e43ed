"""Ingest's decisions, on in-memory fakes: register once, announce, reject, route to batch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.datasets import DatasetCatalog
from contracts.events import FileIngestedV1, FileRejectedV1
from sluice_ingest.config import IngestSettings
from sluice_ingest.domain import ObjectCreated, ingest_object
from sluice_ingest.ports import IngestDeps
from sluice_shared.aws.errors import RequestRejected
from sluice_shared.keys import file_id_for
from sluice_shared.limits import Limits
from sluice_shared.ports import FileStatus
from tests.fakes import InMemoryLedger, InMemoryObjectStore, RecordingPublisher

RAW = "raw-bucket"


class RecordingStarter:
    def __init__(self) -> None:
        self.started: list[tuple[str, dict[str, Any]]] = []

    async def start(self, name: str, payload: dict[str, Any]) -> str:
        self.started.append((name, payload))
        return f"arn:aws:states:us-east-1:123456789012:execution:batch:{name}"


def settings(**overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "raw_bucket": RAW,
        "work_bucket": "work-bucket",
        "processed_bucket": "processed-bucket",
        "error_bucket": "error-bucket",
        "event_bus": "bus",
        "ledger_table": "ledger",
    }
    values.update(overrides)
    return IngestSettings(**values)


def deps(objects: InMemoryObjectStore, workflow: RecordingStarter | None = None) -> IngestDeps:
    return IngestDeps(
        objects=objects,
        publisher=RecordingPublisher(),
        ledger=InMemoryLedger(),
        contracts=DatasetCatalog(),
        workflow=workflow,
    )


def notice(
    key: str, objects: InMemoryObjectStore, *, encoded_key: str | None = None
) -> ObjectCreated:
    data = b"order_id\nORD-000001\n"
    objects.put(RAW, key, data)
    return ObjectCreated(
        bucket=RAW,
        key=encoded_key or key,
        size=len(data),
        etag=objects._get(RAW, key).etag,
        version_id=None,
        sequencer=None,
        time=datetime(2024, 3, 1, tzinfo=UTC),
    )


async def test_ingest_new_object_registers_pending_and_announces() -> None:
    # GIVEN an orders object in the raw bucket
    objects = InMemoryObjectStore()
    created = notice("orders/2024/03/01/a.csv", objects)
    d = deps(objects)
    # WHEN ingest sees its notification
    report = await ingest_object(created, d, settings())
    # THEN the file is PENDING in the ledger and a file.ingested fact is returned
    assert report.outcome == "realtime"
    assert isinstance(report.event, FileIngestedV1)
    assert report.event.dataset.name == "orders"
    record = await d.ledger.get(report.file_id)
    assert record is not None
    assert record.status is FileStatus.PENDING
    assert report.file_id == file_id_for(RAW, created.key, None, created.etag)


async def test_ingest_duplicate_notification_after_progress_does_nothing() -> None:
    objects = InMemoryObjectStore()
    created = notice("orders/a.csv", objects)
    d = deps(objects)
    first = await ingest_object(created, d, settings())
    await d.ledger.transition(first.file_id, FileStatus.VALIDATING, expected=[FileStatus.PENDING])
    # WHEN the same notification arrives again after validation started
    second = await ingest_object(created, d, settings())
    # THEN it is recognised as a duplicate and nothing is announced
    assert second.outcome == "duplicate"
    assert second.event is None


async def test_ingest_duplicate_while_still_pending_announces_again() -> None:
    # A crash between registering and publishing must not strand the file in PENDING.
    objects = InMemoryObjectStore()
    created = notice("orders/a.csv", objects)
    d = deps(objects)
    await ingest_object(created, d, settings())
    again = await ingest_object(created, d, settings())
    assert again.outcome == "realtime"
    assert isinstance(again.event, FileIngestedV1)


async def test_ingest_unknown_dataset_prefix_is_quarantined_with_reason() -> None:
    objects = InMemoryObjectStore()
    created = notice("invoices/a.csv", objects)
    d = deps(objects)
    report = await ingest_object(created, d, settings())
    assert report.outcome == "rejected"
    assert isinstance(report.event, FileRejectedV1)
    assert report.event.reason_code == "unknown_dataset"
    record = await d.ledger.get(report.file_id)
    assert record is not None
    assert record.status is FileStatus.QUARANTINED
    assert record.error_code == "unknown_dataset"


@pytest.mark.parametrize("key", ["orders.csv", "Orders/a.csv", "../orders/a.csv", "/orders/a.csv"])
async def test_ingest_key_without_dataset_segment_is_rejected(key: str) -> None:
    objects = InMemoryObjectStore()
    report = await ingest_object(notice(key, objects), deps(objects), settings())
    assert report.outcome == "rejected"
    assert isinstance(report.event, FileRejectedV1)
    assert report.event.reason_code == "unknown_dataset"


async def test_ingest_url_encoded_key_with_spaces_unicode_and_dots_is_decoded() -> None:
    # GIVEN a key with spaces, unicode and ../ segments, notified URL-encoded as S3 does
    objects = InMemoryObjectStore()
    key = "orders/../münchen daily/a b.csv"
    created = notice(key, objects, encoded_key="orders/../m%C3%BCnchen+daily/a+b.csv")
    report = await ingest_object(created, deps(objects), settings())
    # THEN the decoded key is what gets registered and announced (an S3 key, never a path)
    assert isinstance(report.event, FileIngestedV1)
    assert report.event.key == key


async def test_ingest_key_above_limit_is_rejected() -> None:
    objects = InMemoryObjectStore()
    created = notice("orders/" + "k" * 80 + ".csv", objects)
    report = await ingest_object(created, deps(objects), settings(limits=Limits(max_key_length=50)))
    assert isinstance(report.event, FileRejectedV1)
    assert report.event.reason_code == "key_too_long"


async def test_ingest_file_above_size_limit_is_rejected() -> None:
    objects = InMemoryObjectStore()
    created = notice("orders/a.csv", objects)
    report = await ingest_object(created, deps(objects), settings(limits=Limits(max_file_bytes=5)))
    assert isinstance(report.event, FileRejectedV1)
    assert report.event.reason_code == "file_too_large"


async def test_ingest_large_file_starts_batch_workflow_named_after_the_file() -> None:
    objects = InMemoryObjectStore()
    created = notice("orders/big.csv", objects)
    starter = RecordingStarter()
    report = await ingest_object(
        created,
        deps(objects, starter),
        settings(batch_threshold_bytes=1, batch_state_machine_arn="arn:aws:states:::x"),
    )
    assert report.outcome == "batch"
    assert report.event is None
    assert starter.started[0][0] == f"file-{report.file_id}"
    assert starter.started[0][1]["file"]["path"] == "batch"


async def test_ingest_vanished_object_is_reported_missing() -> None:
    objects = InMemoryObjectStore()
    created = ObjectCreated(
        bucket=RAW,
        key="orders/gone.csv",
        size=3,
        etag="x",
        version_id=None,
        sequencer=None,
        time=datetime(2024, 3, 1, tzinfo=UTC),
    )
    report = await ingest_object(created, deps(objects), settings())
    assert report.outcome == "missing"


class RejectingStarter:
    """A workflow that refuses the execution for good (a poison answer, e.g. invalid input)."""

    async def start(self, name: str, payload: dict[str, Any]) -> str:
        raise RequestRejected("StartExecution failed: InvalidExecutionInput", code="bad_input")


async def test_ingest_batch_start_refused_for_good_fails_the_registered_file() -> None:
    # GIVEN a large file and a batch workflow that refuses its execution as poison
    objects = InMemoryObjectStore()
    created = notice("orders/big.csv", objects)
    d = IngestDeps(
        objects=objects,
        publisher=RecordingPublisher(),
        ledger=InMemoryLedger(),
        contracts=DatasetCatalog(),
        workflow=RejectingStarter(),
    )
    # WHEN ingest routes it to the batch path
    with pytest.raises(RequestRejected):
        await ingest_object(
            created, d, settings(batch_threshold_bytes=1, batch_state_machine_arn="arn:x")
        )
    # THEN the notification is poison (parked next), and the file it registered is FAILED with
    # the reason instead of PENDING for ever
    assert isinstance(d.ledger, InMemoryLedger)
    [record] = d.ledger.records.values()
    assert (record.status, record.error_code) == (FileStatus.FAILED, "bad_input")


async def test_ingest_fact_that_can_never_be_published_fails_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the ingest handler whose bus refuses the file's fact for good (too large)
    import importlib
    import sys

    from contracts.envelope import Envelope
    from contracts.errors import EventTooLarge
    from sluice_ingest.adapters import IngestServiceDeps
    from sluice_ingest.events import S3ObjectCreated
    from sluice_shared.ports import AwsDeps
    from tests.fakes import RecordingParker

    for name, value in {
        "SLUICE_RAW_BUCKET": RAW,
        "SLUICE_WORK_BUCKET": "work-bucket",
        "SLUICE_PROCESSED_BUCKET": "processed-bucket",
        "SLUICE_ERROR_BUCKET": "error-bucket",
        "SLUICE_EVENT_BUS": "bus",
        "SLUICE_LEDGER_TABLE": "ledger",
    }.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("sluice_ingest.handler", None)
    handler = importlib.import_module("sluice_ingest.handler")
    objects = InMemoryObjectStore()
    created = notice("orders/a.csv", objects)
    publisher, ledger = RecordingPublisher(), InMemoryLedger()
    publisher.faults.append(EventTooLarge("the entry is 300000 bytes"))
    aws = AwsDeps(objects=objects, publisher=publisher, ledger=ledger, parker=RecordingParker())
    ingest = IngestDeps(
        objects=objects, publisher=publisher, ledger=ledger, contracts=DatasetCatalog()
    )
    notice_event = S3ObjectCreated.model_validate(
        {
            "bucket": {"name": RAW},
            "object": {"key": created.key, "size": created.size, "etag": created.etag},
            "event_time": created.time,
        }
    )
    # WHEN it handles the notification
    with pytest.raises(EventTooLarge):
        await handler.handle_one(
            Envelope.wrap(notice_event, correlationid="n-1"), IngestServiceDeps(aws, ingest)
        )
    # THEN the registered file is FAILED with the reason (its notification is parked next)
    [record] = ledger.records.values()
    assert (record.status, record.error_code) == (FileStatus.FAILED, "event_too_large")
    sys.modules.pop("sluice_ingest.handler", None)
