"""Property tests: any rows written as CSV or JSON Lines come back unchanged and in order."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sluice_shared.datapath.validate as validate_module
from contracts.datasets import DatasetContract
from sluice_shared.datapath.validate import validate_file
from sluice_shared.limits import Limits

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00\ufeff"), max_size=30)
CSV_CONTRACT = DatasetContract.model_validate(
    {
        "name": "t",
        "version": 1,
        "format": {"kind": "csv", "null_values": []},
        "columns": [
            {"name": "a", "type": "string"},
            {"name": "n", "type": "int64"},
            {"name": "b", "type": "string"},
        ],
        "quarantine": {"max_bad_ratio": 0.0},
    }
)
JSON_CONTRACT = DatasetContract.model_validate(
    {
        "name": "t",
        "version": 1,
        "format": {"kind": "jsonl", "null_values": []},
        "columns": [
            {"name": "s", "type": "string"},
            {"name": "n", "type": "int64"},
            {"name": "x", "type": "float64"},
            {"name": "flag", "type": "bool"},
            {"name": "renamed", "type": "string", "source": "k e y"},
        ],
        "quarantine": {"max_bad_ratio": 0.0},
    }
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _staged_rows(result: validate_module.ValidateResult) -> list[dict[str, Any]]:
    tables = [pa.ipc.open_stream(p).read_all() for p in result.staged.values()]
    if not tables:
        return []
    rows: list[dict[str, Any]] = pa.concat_tables(tables).sort_by("__row").to_pylist()
    return rows


def _validate(
    data: bytes, contract: DatasetContract, block_bytes: int
) -> tuple[validate_module.ValidateResult, list[dict[str, Any]]]:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(validate_module, "BLOCK_BYTES", block_bytes)
        src = Path(tmp) / "in"
        src.write_bytes(data)
        result = validate_file(src, contract, Path(tmp) / "out", limits=Limits())
        return result, _staged_rows(result)


@SETTINGS
@given(
    rows=st.lists(st.tuples(TEXT, st.integers(-(2**63), 2**63 - 1), TEXT), min_size=1, max_size=40),
    terminator=st.sampled_from(["\n", "\r\n"]),
    block_bytes=st.sampled_from([64, 1024, 1 << 20]),
)
def test_csv_round_trip_any_text_comes_back_unchanged(
    rows: list[tuple[str, int, str]], terminator: str, block_bytes: int
) -> None:
    # A lone CR must be quoted (RFC 4180); the csv module quotes it only when it is part of
    # the line terminator, so CR-bearing text is tried with CRLF files only.
    assume(terminator == "\r\n" or not any("\r" in a + b for a, _, b in rows))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=terminator)
    writer.writerow(["a", "n", "b"])
    offsets = []
    for row in rows:
        offsets.append(len(buffer.getvalue().encode()))
        writer.writerow(row)
    data = buffer.getvalue().encode()
    result, staged = _validate(data, CSV_CONTRACT, block_bytes)
    assert result.rejection is None, result.rejection
    assert [(r["a"], r["n"], r["b"]) for r in staged] == rows
    assert [r["__offset"] for r in staged] == offsets
    assert [r["__row"] for r in staged] == list(range(1, len(rows) + 1))


JSON_VALUE = st.fixed_dictionaries(
    {
        "s": st.one_of(st.none(), TEXT),
        "n": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
        "x": st.one_of(
            st.none(), st.floats(allow_nan=False, allow_infinity=False), st.integers(-1000, 1000)
        ),
        "flag": st.one_of(st.none(), st.booleans()),
        "k e y": TEXT,
    },
    optional={
        "unknown": st.recursive(
            st.integers(-100, 100), lambda c: st.lists(c, max_size=3), max_leaves=5
        )
    },
)


@SETTINGS
@given(
    objects=st.lists(JSON_VALUE, min_size=1, max_size=40),
    block_bytes=st.sampled_from([64, 1024, 1 << 20]),
)
def test_jsonl_round_trip_any_values_come_back_unchanged(
    objects: list[dict[str, Any]], block_bytes: int
) -> None:
    lines = [orjson.dumps(o) + b"\n" for o in objects]
    data = b"".join(lines)
    result, staged = _validate(data, JSON_CONTRACT, block_bytes)
    assert result.rejection is None, result.rejection
    expected = [
        {
            "s": o["s"],
            "n": o["n"],
            "x": None if o["x"] is None else float(o["x"]),
            "flag": o["flag"],
            "renamed": o["k e y"],
        }
        for o in objects
    ]
    assert [{k: r[k] for k in expected[0]} for r in staged] == expected
    starts = [sum(len(line) for line in lines[:i]) for i in range(len(lines))]
    assert [r["__offset"] for r in staged] == starts
