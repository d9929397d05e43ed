"""The envelope: attributes filled from the model, EventBridge entries, and the 256 KB guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import ClassVar

import orjson
import pytest
from pydantic import ValidationError

from contracts.envelope import MAX_ENTRY_BYTES, ContractModel, Envelope, to_eventbridge_entry
from contracts.errors import ContractError, EventTooLarge
from contracts.events import FileIngestedV1, FileValidatedV1
from contracts.registry import parse_envelope, parse_eventbridge_event
from contracts.types import DatasetRef

FILE_ID = "0123456789abcdef0123456789abcdef"
CREATED = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def _validated(**changes: object) -> FileValidatedV1:
    fields: dict[str, object] = {
        "file_id": FILE_ID,
        "dataset": DatasetRef(name="orders", version=1),
        "bucket": "sluice-raw",
        "key": "orders/2024/01/a.csv",
        "staged_prefix": f"s3://sluice-work/stage/{FILE_ID}/validated/",
        "bucket_count": 2,
        "rows_in": 10,
        "rows_valid": 9,
        "rows_quarantined": 1,
        "bytes_in": 512,
        "object_created_at": CREATED,
    }
    fields.update(changes)
    return FileValidatedV1.model_validate(fields)


def test_wrap_model_fills_type_source_schema_and_subject() -> None:
    envelope = Envelope.wrap(_validated(), correlationid=FILE_ID)

    assert envelope.type == "sluice.file.validated.v1"
    assert envelope.source == "sluice.validate"
    assert envelope.dataschema == "https://schemas.sluice.dev/sluice.file.validated.v1.json"
    assert envelope.subject == FILE_ID
    assert envelope.specversion == "1.0"
    assert envelope.datacontenttype == "application/json"
    assert envelope.time.tzinfo is not None
    assert envelope.time.utcoffset() == timedelta(0)


def test_wrap_explicit_attributes_override_defaults() -> None:
    at = datetime(2024, 2, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))

    envelope = Envelope.wrap(
        _validated(), correlationid="c-1", source="sluice.batch", subject="s", id="e-1", time=at
    )

    assert (envelope.source, envelope.subject, envelope.id) == ("sluice.batch", "s", "e-1")
    assert envelope.time == datetime(2024, 2, 1, 10, 0, tzinfo=UTC)
    assert envelope.time.utcoffset() == timedelta(0)


def test_wrap_fresh_envelopes_get_distinct_ids() -> None:
    first = Envelope.wrap(_validated(), correlationid=FILE_ID)
    second = Envelope.wrap(_validated(), correlationid=FILE_ID)

    assert first.id != second.id


def test_wrap_model_without_source_raises() -> None:
    class Anonymous(ContractModel):
        TYPE: ClassVar[str] = "acme.thing.happened.v1"

    with pytest.raises(ValueError, match="SOURCE"):
        Envelope.wrap(Anonymous(), correlationid="c")


def test_envelope_naive_time_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Envelope.wrap(_validated(), correlationid="c", time=datetime(2024, 1, 1))


def test_envelope_type_not_matching_data_is_rejected() -> None:
    with pytest.raises(ValidationError, match="does not match its data"):
        Envelope[FileValidatedV1](
            source="sluice.validate",
            type="sluice.file.ingested.v1",
            correlationid="c",
            data=_validated(),
        )


def test_envelope_models_are_frozen() -> None:
    envelope = Envelope.wrap(_validated(), correlationid=FILE_ID)

    with pytest.raises(ValidationError):
        envelope.data.rows_in = 3  # type: ignore[misc]


def test_eventbridge_entry_carries_source_type_and_json_detail() -> None:
    envelope = Envelope.wrap(_validated(), correlationid=FILE_ID)

    entry = to_eventbridge_entry(envelope, "sluice-bus")

    assert entry["Source"] == "sluice.validate"
    assert entry["DetailType"] == "sluice.file.validated.v1"
    assert entry["EventBusName"] == "sluice-bus"
    assert entry["Time"] == envelope.time
    detail = orjson.loads(entry["Detail"])
    assert detail["correlationid"] == FILE_ID
    assert detail["data"]["rows_valid"] == 9
    assert detail["time"].endswith("Z")


def test_eventbridge_round_trip_envelope_entry_event_returns_equal_envelope() -> None:
    # GIVEN an envelope published as a PutEvents entry
    original = Envelope.wrap(_validated(quarantine_uri="s3://sluice-error/q/"), correlationid="c")
    entry = to_eventbridge_entry(original, "sluice-bus")
    # WHEN EventBridge delivers it (detail becomes an object) and the consumer parses it
    delivered = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "source": entry["Source"],
        "detail-type": entry["DetailType"],
        "account": "123456789012",
        "time": "2024-01-15T10:30:05Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": orjson.loads(entry["Detail"]),
    }
    parsed = parse_eventbridge_event(delivered)
    # THEN the consumer sees the same envelope, with typed data
    assert parsed == original
    assert isinstance(parsed.data, FileValidatedV1)
    # and an SQS body (the same event as JSON text) parses the same way
    assert parse_eventbridge_event(orjson.dumps(delivered).decode()) == original


def test_to_json_parse_envelope_round_trip_keeps_every_attribute() -> None:
    original = Envelope.wrap(_validated(), correlationid=FILE_ID)

    parsed = parse_envelope(original.to_json())

    assert parsed.model_dump() == original.model_dump()


def _ingested(version_id: str) -> Envelope[FileIngestedV1]:
    data = FileIngestedV1(
        file_id=FILE_ID,
        dataset=DatasetRef(name="orders", version=1),
        bucket="sluice-raw",
        key="orders/a.csv",
        version_id=version_id,
        etag='"abc"',
        size_bytes=1,
        object_created_at=CREATED,
    )
    return Envelope.wrap(data, correlationid=FILE_ID, id="e-1", time=CREATED)


def _charged_size(entry: dict[str, object]) -> int:
    # EventBridge's own formula: Time counts 14 bytes, then the UTF-8 bytes of the strings.
    strings = (entry["Source"], entry["DetailType"], entry["Detail"])
    return 14 + sum(len(str(s).encode()) for s in strings)


def test_eventbridge_entry_above_256kb_raises_event_too_large() -> None:
    # GIVEN an event whose payload alone is larger than the PutEvents entry limit
    envelope = _ingested("v" * MAX_ENTRY_BYTES)
    # WHEN it is turned into an entry THEN the guard refuses it with a stable code
    with pytest.raises(EventTooLarge, match="claim check") as raised:
        to_eventbridge_entry(envelope, "sluice-bus")
    assert raised.value.code == "event_too_large"
    assert isinstance(raised.value, ContractError)


def test_eventbridge_entry_exactly_256kb_is_accepted_one_byte_more_is_not() -> None:
    # GIVEN an entry padded to exactly the limit
    small = _charged_size(to_eventbridge_entry(_ingested("v"), "bus"))
    padding = "v" * (1 + MAX_ENTRY_BYTES - small)
    # WHEN / THEN it is accepted at the limit and refused one byte above
    assert _charged_size(to_eventbridge_entry(_ingested(padding), "bus")) == MAX_ENTRY_BYTES
    with pytest.raises(EventTooLarge):
        to_eventbridge_entry(_ingested(padding + "v"), "bus")
