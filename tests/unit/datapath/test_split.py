"""Byte-range planning: cuts fall on record ends, so split runs equal the whole-file run."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.datasets import DatasetContract
from contracts.datasets.loader import load_contract
from sluice_shared.datapath import split
from sluice_shared.datapath.split import ByteRange, plan_byte_ranges
from sluice_shared.datapath.validate import validate_file
from sluice_shared.limits import Limits

CSV_CONTRACT = DatasetContract.model_validate(
    {
        "name": "t",
        "version": 1,
        "format": {"kind": "csv"},
        "columns": [
            {"name": "id", "type": "int64", "nullable": False, "constraints": {"min": 0}},
            {"name": "note", "type": "string"},
        ],
        "quarantine": {"max_bad_ratio": 1.0},
    }
)
JSON_CONTRACT = DatasetContract.model_validate(
    {
        "name": "t",
        "version": 1,
        "format": {"kind": "jsonl"},
        "columns": [
            {"name": "id", "type": "int64", "nullable": False, "constraints": {"min": 0}},
            {"name": "note", "type": "string"},
        ],
        "quarantine": {"max_bad_ratio": 1.0},
    }
)
NOTE = st.text(
    st.sampled_from(list('ab,"\n\r é')),
    max_size=12,
)


def _run_all(
    src: Path, contract: DatasetContract, ranges: list[ByteRange], out: Path
) -> dict[str, Any]:
    """Validate each range; collect (offset, values) of staged rows and quarantined offsets."""
    rows: list[tuple[Any, ...]] = []
    bad: list[int] = []
    totals = [0, 0, 0]
    for r in ranges:
        result = validate_file(
            src,
            contract,
            out / f"p{r.partition}",
            limits=Limits(),
            partition=r.partition,
            byte_range=(r.start, r.end),
        )
        assert result.rejection is None, result.rejection
        totals[0] += result.rows_in
        totals[1] += result.rows_valid
        totals[2] += result.rows_quarantined
        for path in result.staged.values():
            for row in pa.ipc.open_stream(path).read_all().to_pylist():
                row.pop("__row")  # partition-relative: differs between split and whole runs
                rows.append((row.pop("__offset"), *row.values()))
        if result.quarantine_path is not None:
            for line in result.quarantine_path.read_bytes().splitlines():
                bad.append(orjson.loads(line)["byte_offset"])
    return {"rows": sorted(rows), "bad": sorted(bad), "totals": totals}


def _check_split_equals_whole(data: bytes, contract: DatasetContract, target: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.write_bytes(data)
        ranges, note = plan_byte_ranges(src, contract, target_bytes=target)
        assert note
        assert ranges[0].start == 0
        assert ranges[-1].end == len(data)
        assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
        assert [r.partition for r in ranges] == list(range(len(ranges)))
        whole = _run_all(src, contract, [ByteRange(0, 0, len(data))], Path(tmp) / "whole")
        split = _run_all(src, contract, ranges, Path(tmp) / "split")
    assert split == whole


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(st.integers(-3, 10**6), NOTE), min_size=1, max_size=60),
    target=st.integers(1, 200),
    crlf=st.booleans(),
)
def test_split_csv_never_loses_or_duplicates_a_record(
    rows: list[tuple[int, str]], target: int, crlf: bool
) -> None:
    buffer = io.StringIO()
    # QUOTE_ALL on notes keeps every CR/LF inside quotes, as RFC 4180 requires.
    writer = csv.writer(
        buffer, lineterminator="\r\n" if crlf else "\n", quoting=csv.QUOTE_NONNUMERIC
    )
    writer.writerow(["id", "note"])
    writer.writerows(rows)
    data = buffer.getvalue().replace('"id","note"', "id,note").encode()
    _check_split_equals_whole(data, CSV_CONTRACT, target)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.one_of(
            st.tuples(st.integers(-3, 10**6), NOTE).map(
                lambda r: orjson.dumps({"id": r[0], "note": r[1]})
            ),
            st.sampled_from([b"not json", b"[1]", b"", b'{"id": "7"}']),
        ),
        min_size=1,
        max_size=60,
    ),
    target=st.integers(1, 200),
)
def test_split_jsonl_never_loses_or_duplicates_a_record(rows: list[bytes], target: int) -> None:
    data = b"\n".join(rows) + b"\n"
    if not data.strip():
        data = b'{"id": 1}\n'
    _check_split_equals_whole(data, JSON_CONTRACT, target)


def test_split_csv_cuts_land_on_record_ends_with_quoted_newlines(tmp_path: Path) -> None:
    record = b'1,"a\nb\nc\nd"\n'
    data = b"id,note\n" + record * 100
    src = tmp_path / "in.csv"
    src.write_bytes(data)
    ranges, note = plan_byte_ranges(src, CSV_CONTRACT, target_bytes=50)
    assert len(ranges) > 5
    assert "quote-aware" in note
    for r in ranges[1:]:
        assert (r.start - len(b"id,note\n")) % len(record) == 0


def test_split_header_range_always_holds_a_record(tmp_path: Path) -> None:
    data = b"id,note\n1,x\n2,y\n"
    src = tmp_path / "in.csv"
    src.write_bytes(data)
    ranges, _ = plan_byte_ranges(src, CSV_CONTRACT, target_bytes=1)
    assert ranges[0] == ByteRange(0, 0, len(b"id,note\n1,x\n"))
    assert len(ranges) == 2


def test_split_gzip_is_one_range(tmp_path: Path) -> None:
    src = tmp_path / "in.csv.gz"
    src.write_bytes(gzip.compress(b"id,note\n" + b"1,x\n" * 1000))
    ranges, note = plan_byte_ranges(src, CSV_CONTRACT, target_bytes=10)
    assert ranges == [ByteRange(0, 0, src.stat().st_size)]
    assert "gzip" in note


def test_split_unbalanced_quotes_fall_back_to_one_range(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b'id,note\n1,x\n2,"open\n' + b"3,y\n" * 100)
    ranges, note = plan_byte_ranges(src, CSV_CONTRACT, target_bytes=10)
    assert ranges == [ByteRange(0, 0, src.stat().st_size)]
    assert "unbalanced" in note


def test_split_small_file_is_one_range(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": 1}\n')
    ranges, _ = plan_byte_ranges(src, JSON_CONTRACT, target_bytes=1 << 20)
    assert ranges == [ByteRange(0, 0, 10)]


def test_split_rejects_non_positive_target(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": 1}\n')
    with pytest.raises(ValueError, match="target_bytes"):
        plan_byte_ranges(src, JSON_CONTRACT, target_bytes=0)


def test_split_generated_orders_file_matches_whole_run(tmp_path: Path) -> None:
    from sluice.generate import generate

    src = tmp_path / "orders.csv"
    truth = generate("orders", src, rows=3000, bad_ratio=0.05, duplicate_ratio=0.01, seed=3)
    contract = load_contract("orders")
    ranges, _ = plan_byte_ranges(src, contract, target_bytes=40_000)
    assert len(ranges) > 4
    result = _run_all(src, contract, ranges, tmp_path / "split")
    assert result["totals"] == [3000, 3000 - truth.rows_bad_total, truth.rows_bad_total]


def test_split_jsonl_leading_blank_lines_join_the_first_record(tmp_path: Path) -> None:
    # GIVEN a JSON Lines object that starts with blank lines, cut as small as possible
    data = b'\n\n{"id":0,"note":""}\n'
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    ranges, _ = plan_byte_ranges(src, JSON_CONTRACT, target_bytes=1)
    # THEN no range holds only blank lines: the blanks travel with the first record
    assert ranges == [ByteRange(0, 0, len(data))]
    _check_split_equals_whole(data, JSON_CONTRACT, 1)


@pytest.mark.parametrize(
    ("contract", "record"),
    [(CSV_CONTRACT, b'1,"x"\n'), (JSON_CONTRACT, b'{"id":1}\n')],
    ids=["csv", "jsonl"],
)
def test_split_planning_holds_small_windows_not_a_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, contract: DatasetContract, record: bytes
) -> None:
    # GIVEN an 8 MB object cut in two ranges of 4 MB, scanned in 256 KiB chunks
    monkeypatch.setattr(split, "SCAN_BYTES", 256 << 10)
    header = b"id,note\n" if contract.format.kind == "csv" else b""
    src = tmp_path / "in.data"
    src.write_bytes(header + record * ((8 << 20) // len(record)))
    # WHEN the ranges are planned
    tracemalloc.start()
    try:
        ranges, _ = plan_byte_ranges(src, contract, target_bytes=4 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # THEN they were found reading windows of at most 1 MiB, never a whole range at once
    assert len(ranges) == 2
    assert peak < 2 << 20, f"planning held {peak} bytes"
