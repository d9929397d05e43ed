"""The v2 majors of file.ingested, file.validated and file.transformed: v1 with upper bounds on
the counts consumers size their work by. A new bound breaks a major, so the bounded facts are new
majors, published alongside v1; consumers accept both from their queue, their rules route v2."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.events import (
    FileIngestedV1,
    FileIngestedV2,
    FileProcessedV1,
    FileTransformedV1,
    FileTransformedV2,
    FileValidatedV1,
    FileValidatedV2,
    FileValidatedV3,
    accepted_types,
    published_majors,
    routed_type,
)
from contracts.tools import check_compatibility, schema_of
from contracts.types import (
    MAX_BUCKET_COUNT,
    MAX_OBJECT_BYTES,
    MAX_PARTITION_COUNT,
    InlineRows,
    LedgerSnapshot,
)

NOW = datetime(2024, 3, 1, tzinfo=UTC)
COMMON: dict[str, Any] = {
    "file_id": "a" * 32,
    "dataset": {"name": "orders", "version": 1},
    "bucket": "raw-bucket",
    "key": "orders/x.csv",
    "object_created_at": NOW,
}
VALIDATED: dict[str, Any] = {
    **COMMON,
    "staged_prefix": "s3://work/stage/x/",
    "bucket_count": 3,
    "partition_count": 2,
    "rows_in": 10,
    "rows_valid": 9,
    "rows_quarantined": 1,
    "bytes_in": 100,
}
TRANSFORMED: dict[str, Any] = {
    **COMMON,
    "transformed_prefix": "s3://work/stage/x/t/",
    "bucket_count": 3,
    "rows_in": 9,
    "rows_out": 9,
    "rows_quarantined": 1,
    "rows_file_in": 10,
}
INGESTED: dict[str, Any] = {**COMMON, "etag": "e", "size_bytes": 100}


@pytest.mark.parametrize(
    ("v1", "v2", "data", "field", "bound"),
    [
        (FileIngestedV1, FileIngestedV2, INGESTED, "size_bytes", MAX_OBJECT_BYTES),
        (FileValidatedV1, FileValidatedV2, VALIDATED, "bucket_count", MAX_BUCKET_COUNT),
        (FileValidatedV1, FileValidatedV2, VALIDATED, "partition_count", MAX_PARTITION_COUNT),
        (FileTransformedV1, FileTransformedV2, TRANSFORMED, "bucket_count", MAX_BUCKET_COUNT),
    ],
)
def test_v2_bounds_the_count_v1_leaves_open(
    v1: type[Any], v2: type[Any], data: dict[str, Any], field: str, bound: int
) -> None:
    # GIVEN a count at and just above its bound
    at, above = {**data, field: bound}, {**data, field: bound + 1}
    # THEN v2 takes the bound and refuses one more, naming the field; v1 takes both
    assert getattr(v2.model_validate(at), field) == bound
    with pytest.raises(ValidationError, match=field):
        v2.model_validate(above)
    assert getattr(v1.model_validate(above), field) == bound + 1
    # AND a v2 event is a v1 event (code written against v1 reads it unchanged)
    assert isinstance(v2.model_validate(at), v1)


@pytest.mark.parametrize(
    ("v1", "v2"),
    [
        (FileIngestedV1, FileIngestedV2),
        (FileValidatedV1, FileValidatedV2),
        (FileTransformedV1, FileTransformedV2),
    ],
)
def test_the_bound_is_breaking_within_a_major_hence_a_new_major(
    v1: type[Any], v2: type[Any]
) -> None:
    # The compatibility check reports exactly the new maxima between the two models' schemas:
    # the reason the bounds are a v2 and not an edit of v1.
    problems = check_compatibility(schema_of(v1), schema_of(v2))
    assert problems
    assert all("constraint 'maximum' changed from None to" in p for p in problems)


def test_published_majors_gives_every_live_major_newest_first() -> None:
    event = FileValidatedV1.model_validate(VALIDATED)
    majors = published_majors(event)
    assert [type(m) for m in majors] == [FileValidatedV3, FileValidatedV2, FileValidatedV1]
    assert majors[2] is event
    assert majors[1].model_dump() == {**event.model_dump(), "ledger": None}
    assert majors[0].model_dump() == {**event.model_dump(), "ledger": None, "inline": None}
    # a fact with one major is published as itself
    processed = FileProcessedV1.model_validate(
        {
            **COMMON,
            "manifest_uri": "s3://processed/_manifests/x.json",
            "objects": 1,
            "rows_in": 10,
            "rows_out": 9,
            "rows_quarantined": 1,
            "bytes_out": 5,
            "completed_at": NOW,
        }
    )
    assert published_majors(processed) == [processed]


def test_the_ledger_snapshot_travels_in_the_newest_major_only() -> None:
    # v2's optional `ledger` field: v1 has no such field, so its copy of the fact carries none
    # and stays what v1 consumers always received.
    snapshot = LedgerSnapshot(
        status="VALIDATING", version=2, size_bytes=10, rows_in=10, created_at=NOW, updated_at=NOW
    )
    event = FileValidatedV2.model_validate({**VALIDATED, "ledger": snapshot})
    newer, newest, older = published_majors(event)
    assert type(newer) is FileValidatedV3
    assert newest is event
    assert type(older) is FileValidatedV1
    assert "ledger" not in older.model_dump()
    assert older.model_dump() == event.model_dump(exclude={"ledger"})


def test_a_fact_with_its_rows_inline_is_published_in_v3_only() -> None:
    # v1 and v2 consumers read a staged prefix: a v3 fact without one cannot be said in them,
    # so it goes out in v3 alone; one with a staged prefix goes out in every major, without
    # the rows (v1 and v2 have no such field).
    rows = InlineRows.of(b"arrow ipc bytes", rows=3)
    staged = {**VALIDATED, "bucket_count": 1, "partition_count": 1}
    inline_only = FileValidatedV3.model_validate({**staged, "staged_prefix": None, "inline": rows})
    assert published_majors(inline_only) == [inline_only]
    both = FileValidatedV3.model_validate({**staged, "inline": rows})
    newest, v2, v1 = published_majors(both)
    assert newest is both
    assert "inline" not in v2.model_dump()
    assert "inline" not in v1.model_dump()


def test_inline_rows_whose_digest_is_not_theirs_do_not_parse() -> None:
    rows = InlineRows.of(b"arrow ipc bytes", rows=3)
    forged = {**rows.model_dump(), "data": InlineRows.of(b"other rows", rows=3).data}
    with pytest.raises(ValidationError, match="sha256 is not the digest"):
        InlineRows.model_validate(forged)
    with pytest.raises(ValidationError, match="staged_prefix, inline rows, or both"):
        FileValidatedV3.model_validate({**VALIDATED, "staged_prefix": None})


def test_published_majors_refuses_a_count_above_the_newer_bound() -> None:
    # A producer that computed an impossible count publishes nothing (a bug, not an event).
    event = FileValidatedV1.model_validate({**VALIDATED, "bucket_count": MAX_BUCKET_COUNT + 1})
    with pytest.raises(ValidationError, match="bucket_count"):
        published_majors(event)


def test_consumers_accept_every_live_major_and_rules_route_the_newest() -> None:
    assert accepted_types(FileIngestedV1) == {
        "sluice.file.ingested.v1",
        "sluice.file.ingested.v2",
    }
    assert accepted_types(FileValidatedV2) == accepted_types(FileValidatedV1)
    assert routed_type(FileTransformedV1) == "sluice.file.transformed.v3"
    assert routed_type(FileValidatedV1) == "sluice.file.validated.v3"
    assert accepted_types(FileProcessedV1) == {"sluice.file.processed.v1"}
    assert routed_type(FileProcessedV1) == "sluice.file.processed.v1"
