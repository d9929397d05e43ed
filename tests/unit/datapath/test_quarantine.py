"""QuarantineWriter: records written on the caller's thread, encoded here or elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice_shared.datapath.quarantine import QuarantineRecord, QuarantineWriter


def _record(row: int, code: str) -> QuarantineRecord:
    return QuarantineRecord(row_number=row, byte_offset=10 * row, reason_code=code, reason="r")


def test_write_encoded_writes_what_write_writes(tmp_path: Path) -> None:
    # GIVEN the same records written as records and as lines encoded beforehand
    records = [_record(1, "a"), _record(2, "b"), _record(3, "a")]
    with QuarantineWriter(tmp_path / "direct.jsonl") as direct:
        for record in records:
            direct.write(record)
    with QuarantineWriter(tmp_path / "encoded.jsonl") as encoded:
        for record in records:
            encoded.write_encoded(record.reason_code, record.to_json())
    # THEN the files and the counts are the same
    assert (tmp_path / "encoded.jsonl").read_bytes() == (tmp_path / "direct.jsonl").read_bytes()
    assert [json.loads(line)["row_number"] for line in direct.path.read_text().splitlines()] == [
        1,
        2,
        3,
    ]
    assert (
        (encoded.count, encoded.reasons) == (direct.count, direct.reasons) == (3, {"a": 2, "b": 1})
    )


def test_write_encoded_skip_policy_counts_without_a_file(tmp_path: Path) -> None:
    with QuarantineWriter(tmp_path / "q.jsonl", keep_raw=False) as writer:
        writer.write_encoded("a", None)
    assert (writer.count, dict(writer.reasons), writer.written) == (1, {"a": 1}, False)
    assert not (tmp_path / "q.jsonl").exists()


def test_write_encoded_kept_record_without_its_line_refused(tmp_path: Path) -> None:
    with QuarantineWriter(tmp_path / "q.jsonl") as writer, pytest.raises(ValueError, match="line"):
        writer.write_encoded("a", None)
