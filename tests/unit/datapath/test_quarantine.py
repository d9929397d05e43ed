"""QuarantineWriter: records written on the caller's thread, one by one or in blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice_shared.datapath.quarantine import (
    MAX_RAW_RECORD_CHARS,
    QuarantineRecord,
    QuarantineWriter,
    encode_record,
)


def _record(row: int, code: str) -> QuarantineRecord:
    return QuarantineRecord(row_number=row, byte_offset=10 * row, reason_code=code, reason="r")


def test_write_block_writes_what_write_writes(tmp_path: Path) -> None:
    # GIVEN the same records written one by one, and as two blocks of encoded lines
    records = [_record(1, "a"), _record(2, "b"), _record(3, "a")]
    with QuarantineWriter(tmp_path / "direct.jsonl") as direct:
        for record in records:
            direct.write(record)
    with QuarantineWriter(tmp_path / "block.jsonl") as block:
        block.write_block({"a": 1, "b": 1}, [records[0].to_json(), records[1].to_json()])
        block.write_block({}, [])
        block.write_block({"a": 1}, [records[2].to_json()])
    # THEN the files and the counts are the same
    assert (tmp_path / "block.jsonl").read_bytes() == (tmp_path / "direct.jsonl").read_bytes()
    assert [json.loads(line)["row_number"] for line in direct.path.read_text().splitlines()] == [
        1,
        2,
        3,
    ]
    assert (block.count, block.reasons) == (direct.count, direct.reasons) == (3, {"a": 2, "b": 1})


def test_encode_record_is_the_records_json_line() -> None:
    # GIVEN a record whose raw text is longer than the kept maximum
    long_raw = "x" * (MAX_RAW_RECORD_CHARS + 5)
    record = QuarantineRecord(
        row_number=7,
        byte_offset=70,
        reason_code="cast_failed",
        reason="why",
        column="c",
        raw_record=long_raw,
        partition=2,
    )
    # WHEN it is encoded from its fields alone
    line = encode_record(7, 2, 70, "cast_failed", "why", "c", long_raw)
    # THEN the line is the record's own, truncated as the record's is
    assert line == record.to_json()
    assert json.loads(line)["raw_truncated"] is True
    assert len(json.loads(line)["raw_record"]) == MAX_RAW_RECORD_CHARS


def test_write_block_skip_policy_counts_without_a_file(tmp_path: Path) -> None:
    with QuarantineWriter(tmp_path / "q.jsonl", keep_raw=False) as writer:
        writer.write_block({"a": 2}, [])
    assert (writer.count, dict(writer.reasons), writer.written) == (2, {"a": 2}, False)
    assert not (tmp_path / "q.jsonl").exists()


def test_write_block_kept_records_without_their_lines_refused(tmp_path: Path) -> None:
    with QuarantineWriter(tmp_path / "q.jsonl") as writer, pytest.raises(ValueError, match="lines"):
        writer.write_block({"a": 2}, [b"{}"])
