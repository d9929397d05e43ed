"""The S3 "Object Created" event at ingest's boundary (`sluice_ingest.events.parse_s3_event`)."""

from __future__ import annotations

from typing import Any

import pytest

from sluice_ingest.events import parse_s3_event


def s3_event(**object_fields: Any) -> dict[str, Any]:
    return {
        "id": "e1",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "time": "2024-03-01T10:00:00Z",
        "detail": {
            "bucket": {"name": "sluice-raw"},
            "object": {"key": "orders/a.csv", "size": 10, "etag": "abc", **object_fields},
        },
    }


@pytest.mark.parametrize(
    ("fields", "version_id"),
    [({"version-id": "3HL4kqtJlcpXroDTDmJ"}, "3HL4kqtJlcpXroDTDmJ"), ({"version-id": "null"}, None),
     ({}, None)],
)  # fmt: skip
def test_s3_event_null_version_is_no_version(
    fields: dict[str, Any], version_id: str | None
) -> None:
    # "null" (versioning off or suspended) names whatever the key holds now: not an identity
    assert parse_s3_event(s3_event(**fields)).data.object.version_id == version_id


def test_s3_event_carries_size_etag_sequencer_or_says_it_does_not() -> None:
    # what EventBridge delivers (the shape of an AWS "Object Created" detail) is kept as it is
    full = parse_s3_event(s3_event(sequencer="0064D3901D00059242")).data.object
    assert (full.size, full.etag, full.sequencer) == (10, "abc", "0064D3901D00059242")
    # a notification without a size says nothing about it (not an empty object): ingest reads it
    bare = {"bucket": {"name": "sluice-raw"}, "object": {"key": "orders/a.csv"}}
    event = {**s3_event(), "detail": bare}
    assert parse_s3_event(event).data.object.size is None
