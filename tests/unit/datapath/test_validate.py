"""validate_file: every bad-input case of the data contract, on CSV and JSON Lines."""

from __future__ import annotations

import gzip
import time
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pytest
import yaml

from contracts.datasets import DatasetCatalog, DatasetContract
from contracts.datasets.loader import load_contract
from contracts.datasets.model import QuarantinePolicy
from contracts.errors import DatasetContractInvalid
from sluice_shared.datapath.schema import global_row, staged_schema
from sluice_shared.datapath.validate import ValidateResult, validate_file
from sluice_shared.limits import Limits

if TYPE_CHECKING:
    from pathlib import Path

HEADER = b"order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
GOOD = b"ORD-000001,C1,2024-03-01T12:00:00Z,SKU-1,3,19.99,EUR,DE,hello\n"


def _order(n: int, **fields: str) -> bytes:
    values = {
        "order_id": f"ORD-{n:06d}",
        "customer_id": "C1",
        "order_ts": "2024-03-01T12:00:00Z",
        "sku": "SKU-1",
        "quantity": "3",
        "unit_price": "19.99",
        "currency": "EUR",
        "country": "DE",
        "note": "",
    }
    values.update(fields)
    return (",".join(values.values()) + "\n").encode()


def _run(
    tmp_path: Path,
    data: bytes,
    contract: DatasetContract | None = None,
    *,
    name: str = "in.csv",
    limits: Limits | None = None,
    **kwargs: Any,
) -> ValidateResult:
    src = tmp_path / name
    src.write_bytes(data)
    return validate_file(
        src,
        contract or _lenient(load_contract("orders")),
        tmp_path / "out",
        limits=limits or Limits(),
        **kwargs,
    )


def _lenient(contract: DatasetContract) -> DatasetContract:
    # Row-level tests put many bad rows in small files: allow any ratio.
    return contract.model_copy(update={"quarantine": QuarantinePolicy(max_bad_ratio=1.0)})


def _quarantined(result: ValidateResult) -> list[dict[str, Any]]:
    assert result.quarantine_path is not None
    lines = result.quarantine_path.read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


def _staged(result: ValidateResult) -> pa.Table:
    tables = [pa.ipc.open_stream(path).read_all() for path in result.staged.values()]
    return pa.concat_tables(tables).sort_by("__row")


def _contract(columns: list[dict[str, Any]], kind: str = "csv", **fmt: Any) -> DatasetContract:
    return DatasetContract.model_validate(
        {
            "name": "t",
            "version": 1,
            "format": {"kind": kind, **fmt},
            "columns": columns,
            "quarantine": {"max_bad_ratio": 1.0},
        }
    )


# ------------------------------------------------------------------------------ good input


def test_validate_good_csv_stages_typed_rows_with_row_and_offset(tmp_path: Path) -> None:
    data = HEADER + _order(1) + _order(2, note="x", country="")
    result = _run(tmp_path, data)
    assert result.rejection is None
    assert (result.rows_in, result.rows_valid, result.rows_quarantined) == (2, 2, 0)
    assert result.bytes_in == len(data)
    assert result.quarantine_path is None
    assert list(result.staged) == [0]
    assert result.staged[0].name == "p00000-b0000.arrow"
    table = _staged(result)
    assert table.schema == staged_schema(load_contract("orders"))
    assert table.column("order_id").to_pylist() == ["ORD-000001", "ORD-000002"]
    assert table.column("quantity").to_pylist() == [3, 3]
    assert table.column("order_ts").to_pylist()[0] == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert table.column("country").to_pylist() == ["DE", None]
    assert table.column("__row").to_pylist() == [global_row(0, 1), global_row(0, 2)]
    assert table.column("__offset").to_pylist() == [len(HEADER), len(HEADER) + len(_order(1))]


def test_validate_bom_crlf_and_quoted_fields_pass_through_unchanged(tmp_path: Path) -> None:
    note = 'line one\r\nline "two", with comma'
    quoted = '"' + note.replace('"', '""') + '"'
    rows = [_order(1, note=quoted), _order(2)]
    body = HEADER + b"".join(rows)
    data = b"\xef\xbb\xbf" + body.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
    result = _run(tmp_path, data)
    assert result.rejection is None
    assert result.rows_valid == 2
    table = _staged(result)
    assert table.column("note").to_pylist()[0] == note
    # Offsets count the BOM: they are positions in the object as stored.
    first = data.index(b"ORD-000001")
    second = data.index(b"ORD-000002")
    assert table.column("__offset").to_pylist() == [first, second]


def test_validate_csv_rows_keep_file_order_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sluice_shared.datapath.validate as validate_module

    monkeypatch.setattr(validate_module, "BLOCK_BYTES", 256)
    data = HEADER + b"".join(_order(n) for n in range(1, 301))
    result = _run(tmp_path, data)
    table = _staged(result)
    assert table.column("order_id").to_pylist() == [f"ORD-{n:06d}" for n in range(1, 301)]
    assert table.column("__row").to_pylist() == list(range(1, 301))


def test_validate_checks_blocks_on_threads_with_the_sequential_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import sluice_shared.datapath.validate as validate_module
    from sluice_shared.datapath import checks

    # GIVEN many small blocks with bad rows spread through them, on two CPUs
    monkeypatch.setattr(validate_module, "BLOCK_BYTES", 512)
    monkeypatch.setattr(validate_module, "INLINE_BYTES", -1)
    monkeypatch.setattr(validate_module, "usable_cpus", lambda: 2)
    rows = [_order(n, quantity="0" if n % 7 == 0 else "3") for n in range(1, 401)]
    data = HEADER + b"".join(rows)
    seen: set[str] = set()
    real_check = checks.check_block

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.add(threading.current_thread().name)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(checks, "check_block", spy)
    appended: list[str] = []
    real_append = validate_module._Stager._append

    def append_spy(stager: Any, bucket: int, part: pa.RecordBatch) -> None:
        appended.append(threading.current_thread().name)
        real_append(stager, bucket, part)

    monkeypatch.setattr(validate_module._Stager, "_append", append_spy)
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    # WHEN it is validated with two check threads, then with one
    threaded = _run(tmp_path / "two", data, bucket_count=2)
    on_pool = set(seen)
    staged_on = set(appended)
    appended.clear()
    monkeypatch.setattr(validate_module, "CHECK_THREADS", 1)
    sequential = _run(tmp_path / "one", data, bucket_count=2)
    # THEN every block (the rest of the header's too) was checked off the caller's thread,
    # its valid rows compressed and written on the staging threads (on the caller's with one
    # check thread), and nothing else changed
    assert on_pool
    assert all(name.startswith("sluice-check") for name in on_pool)
    assert staged_on
    assert all(name.startswith("sluice-stage") for name in staged_on)
    assert set(appended) == {threading.current_thread().name}
    assert threaded.rows_quarantined == sequential.rows_quarantined == 400 // 7
    assert _staged(threaded).equals(_staged(sequential))
    assert _quarantined(threaded) == _quarantined(sequential)
    for result in (threaded, sequential):
        assert sorted(result.staged) == [0, 1]


@pytest.mark.parametrize("failing", ["first", "last"])
def test_validate_staging_write_error_on_its_thread_is_raised_and_staging_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    import errno

    import sluice_shared.datapath.validate as validate_module

    # GIVEN a file of many blocks on two CPUs, where one staged write fails on the staging
    # thread: the first (raised when a later batch is handed over) or the last (at the close)
    monkeypatch.setattr(validate_module, "BLOCK_BYTES", 512)
    monkeypatch.setattr(validate_module, "THREADED_BLOCK_BYTES", 512)
    monkeypatch.setattr(validate_module, "INLINE_BYTES", -1)
    monkeypatch.setattr(validate_module, "usable_cpus", lambda: 2)
    data = HEADER + b"".join(_order(n) for n in range(1, 201))
    real_append = validate_module._Stager._append
    calls: list[int] = []

    def append(stager: Any, bucket: int, part: pa.RecordBatch) -> None:
        calls.append(1)
        holds_last_row = global_row(0, 200) in part.column("__row").to_pylist()
        if (failing == "first" and len(calls) == 1) or (failing == "last" and holds_last_row):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(stager, bucket, part)

    monkeypatch.setattr(validate_module._Stager, "_append", append)
    # WHEN it is validated
    with pytest.raises(OSError, match="No space left") as raised:
        _run(tmp_path, data)
    # THEN the write's own error reaches the caller, and no staged file is left behind
    assert raised.value.errno == errno.ENOSPC
    assert calls
    assert not list(tmp_path.rglob("*.arrow"))


def test_validate_small_file_is_checked_on_the_callers_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import sluice_shared.datapath.validate as validate_module
    from sluice_shared.datapath import checks

    # GIVEN a small file (under INLINE_BYTES) of several blocks, on two CPUs
    monkeypatch.setattr(validate_module, "BLOCK_BYTES", 512)
    monkeypatch.setattr(validate_module, "usable_cpus", lambda: 2)
    data = HEADER + b"".join(_order(n) for n in range(1, 201))
    seen: set[str] = set()
    real_check = checks.check_block

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.add(threading.current_thread().name)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(checks, "check_block", spy)
    # WHEN it is validated
    result = _run(tmp_path, data)
    # THEN every block was checked without starting a thread
    assert seen == {threading.current_thread().name}
    assert result.rows_valid == 200


# ------------------------------------------------------------------------- file rejections


@pytest.mark.parametrize("data", [b"", b"\n\n\r\n"])
def test_validate_empty_file_is_rejected(tmp_path: Path, data: bytes) -> None:
    result = _run(tmp_path, data)
    assert result.rejection is not None
    assert result.rejection.reason_code == "empty_file"
    assert result.staged == {}


@pytest.mark.parametrize("data", [HEADER, HEADER.rstrip(b"\n"), HEADER + b"\n\n"])
def test_validate_header_only_is_no_data_rows(tmp_path: Path, data: bytes) -> None:
    result = _run(tmp_path, data)
    assert result.rejection is not None
    assert result.rejection.reason_code == "no_data_rows"


def test_validate_header_with_missing_and_extra_columns_names_them(tmp_path: Path) -> None:
    header = b"order_id,customer_id,order_ts,sku,quantity,price,currency,country,note,extra\n"
    result = _run(tmp_path, header + GOOD)
    assert result.rejection is not None
    assert result.rejection.reason_code == "header_mismatch"
    assert "missing columns: unit_price" in result.rejection.reason
    assert "unexpected columns: price, extra" in result.rejection.reason
    assert result.staged == {}


def test_validate_wrong_delimiter_is_header_mismatch(tmp_path: Path) -> None:
    data = HEADER.replace(b",", b";") + GOOD.replace(b",", b";")
    result = _run(tmp_path, data)
    assert result.rejection is not None
    assert result.rejection.reason_code == "header_mismatch"
    assert "';'-delimited" in result.rejection.reason


def test_validate_header_in_another_order_is_header_mismatch(tmp_path: Path) -> None:
    header = b"customer_id,order_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
    result = _run(tmp_path, header + GOOD)
    assert result.rejection is not None
    assert result.rejection.reason_code == "header_mismatch"
    assert "different order" in result.rejection.reason


def test_validate_file_over_size_limit_is_rejected_unread(tmp_path: Path) -> None:
    result = _run(tmp_path, HEADER + GOOD, limits=Limits(max_file_bytes=10))
    assert result.rejection is not None
    assert result.rejection.reason_code == "file_too_large"
    assert result.bytes_in == 0


def test_validate_key_over_length_limit_is_rejected(tmp_path: Path) -> None:
    result = _run(
        tmp_path, HEADER + GOOD, key="orders/" + "k" * 50, limits=Limits(max_key_length=20)
    )
    assert result.rejection is not None
    assert result.rejection.reason_code == "key_too_long"


def test_validate_gzip_csv_is_read_by_key_suffix(tmp_path: Path) -> None:
    data = gzip.compress(HEADER + _order(1) + _order(2))
    result = _run(tmp_path, data, name="in.csv.gz", key="orders/in.csv.gz")
    assert result.rejection is None
    assert result.rows_valid == 2
    assert result.bytes_in == len(HEADER + _order(1) + _order(2))


def test_validate_gzip_detected_by_magic_without_suffix(tmp_path: Path) -> None:
    result = _run(tmp_path, gzip.compress(HEADER + _order(1)), name="blob")
    assert result.rows_valid == 1


def test_validate_corrupt_gzip_is_rejected(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(HEADER + b"".join(_order(n) for n in range(200))))
    data[30:60] = b"\xff" * 30
    result = _run(tmp_path, bytes(data), name="in.csv.gz")
    assert result.rejection is not None
    assert result.rejection.reason_code == "corrupt_gzip"
    assert result.staged == {}


def test_validate_gzip_bomb_is_rejected_early(tmp_path: Path) -> None:
    data = gzip.compress(HEADER + GOOD * 200_000)  # ~13 MB, compresses ~500x
    result = _run(tmp_path, data, name="in.csv.gz", limits=Limits(max_decompression_ratio=20))
    assert result.rejection is not None
    assert result.rejection.reason_code == "decompression_ratio_exceeded"
    assert result.bytes_in <= 20 * len(data) + (4 << 20)
    assert not list((tmp_path / "out").glob("*.arrow"))


def test_validate_bad_ratio_over_contract_rejects_whole_file_atomically(tmp_path: Path) -> None:
    contract = load_contract("orders")  # max_bad_ratio 0.2
    data = HEADER + _order(1) + _order(2) + _order(3, quantity="x") + _order(4, currency="JPY")
    result = _run(tmp_path, data, contract)
    assert result.rejection is not None
    assert result.rejection.reason_code == "bad_row_ratio_exceeded"
    assert (result.rows_in, result.rows_valid, result.rows_quarantined) == (4, 0, 4)
    assert result.staged == {}
    assert not list((tmp_path / "out").glob("*.arrow"))
    assert result.reasons == {"type_mismatch": 1, "not_in_enum": 1}


def test_validate_bad_ratio_at_limit_passes(tmp_path: Path) -> None:
    contract = load_contract("orders")
    data = HEADER + b"".join(_order(n) for n in range(1, 5)) + _order(5, quantity="x")
    result = _run(tmp_path, data, contract)  # 1 of 5 = 20%, not above 20%
    assert result.rejection is None
    assert (result.rows_valid, result.rows_quarantined) == (4, 1)


def test_validate_policy_fail_rejects_on_first_bad_row(tmp_path: Path) -> None:
    contract = load_contract("orders").model_copy(
        update={"quarantine": QuarantinePolicy(policy="fail", max_bad_ratio=1.0)}
    )
    result = _run(tmp_path, HEADER + _order(1) + _order(2, sku="S" * 40), contract)
    assert result.rejection is not None
    assert result.rejection.reason_code == "bad_rows_not_allowed"
    assert "row 2" in result.rejection.reason
    assert result.staged == {}
    assert result.rows_quarantined == result.rows_in


def test_validate_policy_skip_counts_bad_rows_without_raw_records(tmp_path: Path) -> None:
    contract = load_contract("orders").model_copy(
        update={"quarantine": QuarantinePolicy(policy="skip", max_bad_ratio=1.0)}
    )
    result = _run(tmp_path, HEADER + _order(1) + _order(2, sku="S" * 40), contract)
    assert result.rejection is None
    assert (result.rows_valid, result.rows_quarantined) == (1, 1)
    assert result.reasons == {"too_long": 1}
    assert result.quarantine_path is None


# -------------------------------------------------------------------------------- bad rows


def test_validate_structural_bad_rows_are_quarantined_with_offsets(tmp_path: Path) -> None:
    rows = [
        _order(1),
        b"ORD-000002,C1,2024-03-01T12:00:00Z\n",  # too few fields
        _order(3, note="a,b"),  # too many fields (unquoted delimiter)
        _order(4, customer_id="CX").replace(b"CX", b"C\xff"),
        _order(5),
    ]
    data = HEADER + b"".join(rows)
    result = _run(tmp_path, data)
    bad = _quarantined(result)
    assert [(b["row_number"], b["reason_code"]) for b in bad] == [
        (2, "column_count"),
        (3, "column_count"),
        (4, "invalid_utf8"),
    ]
    assert [b["byte_offset"] for b in bad] == [data.index(rows[i]) for i in (1, 2, 3)]
    assert "expected 9 fields, found 3" in bad[0]["reason"]
    invalid_at = data.index(b"C\xff") + 1
    assert f"byte offset {invalid_at}" in bad[2]["reason"]
    assert bad[0]["raw_record"] == rows[1].decode().rstrip("\n")
    assert _staged(result).column("order_id").to_pylist() == ["ORD-000001", "ORD-000005"]
    assert _staged(result).column("__row").to_pylist() == [1, 5]


def test_validate_field_and_record_size_limits(tmp_path: Path) -> None:
    limits = Limits(max_field_bytes=40, max_record_bytes=120)
    rows = [_order(1), _order(2, note="n" * 60), _order(3, note="m" * 200), _order(4)]
    result = _run(tmp_path, HEADER + b"".join(rows), limits=limits)
    bad = _quarantined(result)
    assert [(b["row_number"], b["reason_code"], b["column"]) for b in bad] == [
        (2, "field_too_large", "note"),
        (3, "record_too_large", None),
    ]
    assert result.rows_valid == 2


def test_validate_record_larger_than_a_block_is_skipped_streaming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sluice_shared.datapath.validate as validate_module

    monkeypatch.setattr(validate_module, "BLOCK_BYTES", 1024)
    huge = _order(2, note='"' + "z\n" * 20_000 + '"')
    data = HEADER + _order(1) + huge + _order(3)
    result = _run(tmp_path, data, limits=Limits(max_record_bytes=4096))
    bad = _quarantined(result)
    assert [(b["row_number"], b["reason_code"], b["byte_offset"]) for b in bad] == [
        (2, "record_too_large", len(HEADER) + len(_order(1)))
    ]
    assert str(len(huge)) in bad[0]["reason"]
    assert _staged(result).column("order_id").to_pylist() == ["ORD-000001", "ORD-000003"]


@pytest.mark.parametrize(
    ("fields", "code", "column"),
    [
        ({"customer_id": ""}, "null_not_allowed", "customer_id"),
        ({"quantity": "3.5"}, "type_mismatch", "quantity"),
        ({"quantity": " 3"}, "type_mismatch", "quantity"),
        ({"unit_price": "abc"}, "type_mismatch", "unit_price"),
        ({"unit_price": "nan"}, "type_mismatch", "unit_price"),
        ({"order_ts": "2024-02-30T12:00:00Z"}, "type_mismatch", "order_ts"),
        ({"order_ts": "2024-03-01T24:00:00Z"}, "type_mismatch", "order_ts"),
        ({"order_ts": "2024-03-01"}, "type_mismatch", "order_ts"),
        ({"order_ts": "2024-03-01T12:00:00+0200"}, "type_mismatch", "order_ts"),
        ({"quantity": "0"}, "below_min", "quantity"),
        ({"unit_price": "100000.01"}, "above_max", "unit_price"),
        ({"currency": "eur"}, "not_in_enum", "currency"),
        ({"order_id": "ORD-12"}, "regex_mismatch", "order_id"),
        ({"sku": "S" * 25}, "too_long", "sku"),
    ],
)
def test_validate_value_checks_give_reason_and_column(
    tmp_path: Path, fields: dict[str, str], code: str, column: str
) -> None:
    result = _run(tmp_path, HEADER + _order(1) + _order(2, **fields))
    bad = _quarantined(result)
    assert [(b["row_number"], b["reason_code"], b["column"]) for b in bad] == [(2, code, column)]
    assert column in bad[0]["reason"]
    assert result.rows_valid == 1


def test_validate_first_failing_column_wins(tmp_path: Path) -> None:
    result = _run(tmp_path, HEADER + _order(1, customer_id="", quantity="x", currency="JPY"))
    assert [(b["reason_code"], b["column"]) for b in _quarantined(result)] == [
        ("null_not_allowed", "customer_id")
    ]


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("^(?=(a+)+$)b", "invalid perl operator: (?="),  # lookahead: backtracking only
        (r"^(a)\1$", r"invalid escape sequence: \1"),  # backreference
    ],
)
def test_contract_regex_re2_cannot_compile_is_refused_at_load(
    tmp_path: Path, pattern: str, reason: str
) -> None:
    folder = tmp_path / "codes"
    folder.mkdir()
    columns = [{"name": "code", "type": "string", "constraints": {"regex": pattern}}]
    (folder / "v1.yaml").write_text(
        yaml.safe_dump(
            {"name": "codes", "version": 1, "format": {"kind": "csv"}, "columns": columns}
        )
    )
    with pytest.raises(DatasetContractInvalid) as raised:
        DatasetCatalog(tmp_path).load("codes")
    message = str(raised.value)
    assert f"column 'code': regex {pattern!r} is not accepted" in message
    assert reason in message
    assert "RE2" in message


def test_contract_regex_runs_in_linear_time(tmp_path: Path) -> None:
    # RE2 accepts nested quantifiers and matches them in linear time; a backtracking matcher
    # needs ~2^40 steps for the second field.
    contract = _contract([{"name": "code", "constraints": {"regex": "^(a+)+$"}, "type": "string"}])
    started = time.monotonic()
    result = _run(tmp_path, b"code\naaaa\n" + b"a" * 40 + b"!\n", contract)
    # Backtracking would take hours, so a loaded machine's slowness stays far below this bound.
    assert time.monotonic() - started < 120
    assert result.rows_valid == 1
    assert [(b["row_number"], b["reason_code"], b["column"]) for b in _quarantined(result)] == [
        (2, "regex_mismatch", "code")
    ]


def test_validate_timestamp_forms_are_read_as_utc(tmp_path: Path) -> None:
    forms = {
        "2024-03-01T12:00:00Z": datetime(2024, 3, 1, 12, tzinfo=UTC),
        "2024-03-01 12:00:00Z": datetime(2024, 3, 1, 12, tzinfo=UTC),
        "2024-03-01T12:00:00": datetime(2024, 3, 1, 12, tzinfo=UTC),
        "2024-03-01T12:00:00.5+02:00": datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC),
        "2024-03-01T12:00:00.123456789-01:30": datetime(2024, 3, 1, 13, 30, 0, 123456, tzinfo=UTC),
        "2024-02-29T00:00:00Z": datetime(2024, 2, 29, tzinfo=UTC),
    }
    rows = [_order(n, order_ts=text) for n, text in enumerate(forms, start=1)]
    result = _run(tmp_path, HEADER + b"".join(rows))
    assert result.rows_quarantined == 0
    assert _staged(result).column("order_ts").to_pylist() == list(forms.values())


def test_validate_impossible_days_next_to_every_timestamp_form(tmp_path: Path) -> None:
    # One block: impossible days of the common forms (Arrow's cast refuses the whole column
    # for one) among valid values of every form, days of 29 and more among them.
    valid = {
        "2024-03-31T12:00:00Z": datetime(2024, 3, 31, 12, tzinfo=UTC),
        "2024-02-29 00:00:00Z": datetime(2024, 2, 29, tzinfo=UTC),
        "2024-01-30T23:59:59Z": datetime(2024, 1, 30, 23, 59, 59, tzinfo=UTC),
        "2024-03-01T12:00:00": datetime(2024, 3, 1, 12, tzinfo=UTC),
        "2024-03-29T12:00:00.5+02:00": datetime(2024, 3, 29, 10, 0, 0, 500000, tzinfo=UTC),
        "2024-03-01T12:00:00.123456789-01:30": datetime(2024, 3, 1, 13, 30, 0, 123456, tzinfo=UTC),
        "2024-12-28T00:00:00Z": datetime(2024, 12, 28, tzinfo=UTC),
    }
    impossible = ["2024-02-30T12:00:00Z", "2023-02-29 00:00:00Z", "2024-04-31T00:00:00Z"]
    texts = [*valid][:3] + impossible[:2] + [*valid][3:] + impossible[2:]
    rows = [_order(n, order_ts=text) for n, text in enumerate(texts, start=1)]
    result = _run(tmp_path, HEADER + b"".join(rows))
    bad = _quarantined(result)
    assert [(b["row_number"], b["reason_code"], b["column"]) for b in bad] == [
        (4, "type_mismatch", "order_ts"),
        (5, "type_mismatch", "order_ts"),
        (10, "type_mismatch", "order_ts"),
    ]
    assert _staged(result).column("order_ts").to_pylist() == list(valid.values())


def test_validate_null_markers_are_exact_and_per_column(tmp_path: Path) -> None:
    contract = _contract(
        [
            {"name": "a", "type": "string", "nullable": True},
            {"name": "b", "type": "int64", "nullable": True, "null_values": ["NA", "-"]},
            {"name": "c", "type": "string", "nullable": False},
        ],
        null_values=["", "null"],
    )
    data = b"a,b,c\nnull,NA,NA\n,-,null\nNULL, NA,x\n"
    result = _run(tmp_path, data, contract)
    # Row 2: c is "null" (a dataset marker) -> null in a required column.
    # Row 3: " NA" is not exactly a marker -> not an int.
    assert [(b["row_number"], b["reason_code"], b["column"]) for b in _quarantined(result)] == [
        (2, "null_not_allowed", "c"),
        (3, "type_mismatch", "b"),
    ]
    table = _staged(result)
    assert table.column("a").to_pylist() == [None]
    assert table.column("b").to_pylist() == [None]
    assert table.column("c").to_pylist() == ["NA"]


def test_validate_bool_and_date_columns(tmp_path: Path) -> None:
    contract = _contract([{"name": "flag", "type": "bool"}, {"name": "day", "type": "date"}])
    data = b"flag,day\ntrue,2024-02-29\n0,2024-01-31\nyes,2024-01-01\nTRUE,2023-02-29\n"
    result = _run(tmp_path, data, contract)
    assert [(b["row_number"], b["column"]) for b in _quarantined(result)] == [
        (3, "flag"),
        (4, "day"),
    ]
    table = _staged(result)
    assert table.column("flag").to_pylist() == [True, False]
    assert table.column("day").to_pylist() == [date(2024, 2, 29), date(2024, 1, 31)]


def test_validate_headerless_csv_uses_contract_columns(tmp_path: Path) -> None:
    contract = _contract(
        [{"name": "a", "type": "int64"}, {"name": "b", "type": "string"}], header=False
    )
    result = _run(tmp_path, b"1,x\n2,y\n", contract)
    assert result.rows_valid == 2
    assert _staged(result).column("a").to_pylist() == [1, 2]


# ----------------------------------------------------------------------- ranges and buckets


def test_validate_byte_range_has_no_header_and_absolute_offsets(tmp_path: Path) -> None:
    data = HEADER + _order(1) + _order(2) + _order(3)
    start = len(HEADER) + len(_order(1))
    result = _run(tmp_path, data, partition=3, byte_range=(start, len(data)))
    assert result.rows_in == 2
    table = _staged(result)
    assert result.staged[0].name == "p00003-b0000.arrow"
    assert table.column("__row").to_pylist() == [global_row(3, 1), global_row(3, 2)]
    assert table.column("__offset").to_pylist() == [start, start + len(_order(2))]


def test_validate_buckets_split_rows_by_primary_key(tmp_path: Path) -> None:
    rows = [_order(n % 40) for n in range(200)]
    result = _run(tmp_path, HEADER + b"".join(rows), bucket_count=4)
    assert result.rows_valid == 200
    assert len(result.staged) > 1
    seen: dict[str, int] = {}
    total = 0
    for bucket, path in result.staged.items():
        table = pa.ipc.open_stream(path).read_all()
        total += table.num_rows
        assert path.name == f"p00000-b{bucket:04d}.arrow"
        for key in table.column("order_id").to_pylist():
            assert seen.setdefault(key, bucket) == bucket
    assert total == 200


# -------------------------------------------------------------------------------- JSON Lines


def _jsonl(*objects: object) -> bytes:
    return b"".join((o if isinstance(o, bytes) else orjson.dumps(o)) + b"\n" for o in objects)


def _reading(n: int, **fields: object) -> dict[str, object]:
    reading: dict[str, object] = {
        "device_id": "dev-0000000a",
        "ts": f"2024-03-01T00:00:{n:02d}Z",
        "metric": "temperature",
        "value": 21.5,
        "battery": 0.5,
        "site": "berlin-1",
        "ok": True,
    }
    reading.update(fields)
    return reading


def _sensor() -> DatasetContract:
    return _lenient(load_contract("sensor_readings"))


def test_validate_jsonl_maps_source_keys_and_ignores_unknown_keys(tmp_path: Path) -> None:
    data = _jsonl(_reading(1, extra={"nested": [1, 2]}), _reading(2, value=3, site=None))
    result = _run(tmp_path, data, _sensor(), name="in.jsonl")
    assert result.rejection is None
    table = _staged(result)
    assert table.column("reading_ts").to_pylist()[1] == datetime(2024, 3, 1, 0, 0, 2, tzinfo=UTC)
    assert table.column("value").to_pylist() == [21.5, 3.0]
    assert table.column("site").to_pylist() == ["berlin-1", None]
    assert table.column("__offset").to_pylist() == [
        0,
        len(_jsonl(_reading(1, extra={"nested": [1, 2]}))),
    ]


def test_validate_jsonl_bad_records_fail_alone(tmp_path: Path) -> None:
    deep: object = 1
    for _ in range(40):
        deep = {"a": deep}
    records = [
        _reading(1),
        b'{"device_id": "dev-0000000a", "ts": ',
        b"[1, 2, 3]",
        _reading(4, meta=deep),
        _reading(5, value="12.5"),
        _reading(6, ok=1),
        _reading(7, device_id=None),
        _reading(8, metric="wind"),
        _reading(9),
        b'{"device_id": "dev-0000000a", "site": "caf\xe9"}',
        _reading(11, battery=True),
        {k: v for k, v in _reading(12).items() if k != "ts"},
        _reading(13),
    ]
    result = _run(tmp_path, _jsonl(*records), _sensor(), name="in.jsonl")
    got = [(b["row_number"], b["reason_code"], b["column"]) for b in _quarantined(result)]
    assert got == [
        (2, "invalid_json", None),
        (3, "not_an_object", None),
        (4, "too_deep", None),
        (5, "type_mismatch", "value"),
        (6, "type_mismatch", "ok"),
        (7, "null_not_allowed", "device_id"),
        (8, "not_in_enum", "metric"),
        (10, "invalid_utf8", None),
        (11, "type_mismatch", "battery"),
        (12, "null_not_allowed", "reading_ts"),
    ]
    assert _staged(result).column("__row").to_pylist() == [1, 9, 13]


def test_validate_jsonl_depth_limit_is_configurable(tmp_path: Path) -> None:
    data = _jsonl(_reading(1, meta={"a": {"b": 1}}), _reading(2))
    result = _run(tmp_path, data, _sensor(), name="in.jsonl", limits=Limits(max_json_depth=2))
    assert [b["reason_code"] for b in _quarantined(result)] == ["too_deep"]
    result = _run(tmp_path, data, _sensor(), name="in.jsonl", limits=Limits(max_json_depth=3))
    assert result.rows_valid == 2


def test_validate_jsonl_int_column_takes_json_integers_only(tmp_path: Path) -> None:
    contract = _contract([{"name": "n", "type": "int64"}], kind="jsonl")
    data = _jsonl({"n": 1}, {"n": "12"}, {"n": 1.5}, {"n": True}, {"n": -(2**62)})
    result = _run(tmp_path, data, contract, name="in.jsonl")
    assert [b["row_number"] for b in _quarantined(result)] == [2, 3, 4]
    assert {b["reason_code"] for b in _quarantined(result)} == {"type_mismatch"}
    assert _staged(result).column("n").to_pylist() == [1, -(2**62)]


def test_validate_jsonl_many_blocks_with_scattered_bad_rows_keep_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sluice_shared.datapath.validate as validate_module

    monkeypatch.setattr(validate_module, "BLOCK_BYTES", 2048)
    records = [
        _reading(n % 60, value="x") if n % 7 == 3 else _reading(n % 60, device_id=f"dev-{n:08x}")
        for n in range(400)
    ]
    result = _run(tmp_path, _jsonl(*records), _sensor(), name="in.jsonl")
    bad_rows = [b["row_number"] for b in _quarantined(result)]
    assert bad_rows == [n + 1 for n in range(400) if n % 7 == 3]
    good = [n + 1 for n in range(400) if n % 7 != 3]
    assert _staged(result).column("__row").to_pylist() == good


@pytest.mark.parametrize("markers", [["NA"], ["", "NA"], [""], []])
def test_validate_jsonl_null_or_missing_value_is_null_whatever_the_markers(
    tmp_path: Path, markers: list[str]
) -> None:
    # GIVEN a required string column, JSON null, a missing key and a null marker
    contract = _contract(
        [{"name": "a", "type": "string", "nullable": False}, {"name": "b", "type": "int64"}],
        kind="jsonl",
        null_values=markers,
    )
    data = _jsonl({"a": None, "b": 1}, {"b": 2}, {"a": "NA", "b": 3}, {"a": "x", "b": 4})
    result = _run(tmp_path, data, contract, name="in.jsonl")
    # THEN JSON null and the missing key are nulls (not allowed) with any markers, "NA" only
    # when it is one
    bad = [(r["row_number"], r["reason_code"]) for r in _quarantined(result)]
    expected = [(1, "null_not_allowed"), (2, "null_not_allowed")]
    if "NA" in markers:
        expected.append((3, "null_not_allowed"))
    assert bad == expected
    assert _staged(result).column("a").to_pylist() == ["NA", "x"][("NA" in markers) :]
