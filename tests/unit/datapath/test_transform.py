"""transform_bucket: dedupe across partitions, derived columns, lookup joins, casts, drop."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from contracts.datasets import DatasetCatalog, DatasetContract
from sluice_shared.datapath.schema import OFFSET_COLUMN, ROW_COLUMN, global_row, staged_schema
from sluice_shared.datapath.transform import (
    LookupTableError,
    TransformResult,
    load_lookups,
    transform_bucket,
    transformed_schema,
)

UTC = dt.UTC


def make_contract(**overrides: Any) -> DatasetContract:
    spec: dict[str, Any] = {
        "name": "shop",
        "version": 1,
        "format": {"kind": "csv"},
        "columns": [
            {"name": "id", "type": "string", "nullable": False},
            {"name": "qty", "type": "int64"},
            {"name": "price", "type": "float64"},
            {"name": "code", "type": "string"},
            {"name": "ts", "type": "timestamp"},
        ],
        "primary_key": ["id"],
        "transform": {"dedupe": True},
    }
    spec.update(overrides)
    return DatasetContract.model_validate(spec)


def write_staged(
    path: Path, contract: DatasetContract, partition: int, rows: list[dict[str, Any]]
) -> Path:
    """A validated staged file: rows numbered 1.. within `partition`, offsets 100 * number."""
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = staged_schema(contract)
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for number, row in enumerate(rows, start=1):
        for name in schema.names:
            if name == ROW_COLUMN:
                columns[name].append(global_row(partition, number))
            elif name == OFFSET_COLUMN:
                columns[name].append(100 * number)
            else:
                columns[name].append(row.get(name))
    table = pa.table(columns, schema=schema)
    with pa.ipc.new_stream(str(path), schema) as writer:
        # several small batches, as validate writes them
        for batch in table.to_batches(max_chunksize=2):
            writer.write_batch(batch)
    return path


def read_staged(path: Path) -> pa.Table:
    with pa.ipc.open_stream(str(path)) as reader:
        return reader.read_all()


def run(
    tmp_path: Path,
    contract: DatasetContract,
    partitions: list[list[dict[str, Any]]],
    lookups: dict[str, pa.Table] | None = None,
) -> tuple[TransformResult, pa.Table | None, list[dict[str, Any]]]:
    inputs = [
        write_staged(tmp_path / f"p{i:05d}.arrow", contract, i, rows)
        for i, rows in enumerate(partitions)
    ]
    result = transform_bucket(
        inputs,
        contract,
        tmp_path / "out" / "b0000.arrow",
        lookups=lookups or {},
        quarantine_path=tmp_path / "q" / "b0000.jsonl",
    )
    table = read_staged(result.staged) if result.staged else None
    quarantined = (
        [json.loads(line) for line in result.quarantine_path.read_text().splitlines()]
        if result.quarantine_path
        else []
    )
    return result, table, quarantined


def test_transform_bucket_duplicate_keys_across_partitions_keep_first_and_quarantine_rest(
    tmp_path: Path,
) -> None:
    # GIVEN key A in partition 0 (row 1) and again in partition 1 (row 2) and partition 2 (row 1)
    contract = make_contract()
    partitions = [
        [{"id": "A", "qty": 1}, {"id": "B", "qty": 2}],
        [{"id": "C", "qty": 3}, {"id": "A", "qty": 4}],
        [{"id": "A", "qty": 5}],
    ]
    # WHEN the bucket is transformed
    result, table, quarantined = run(tmp_path, contract, partitions)
    # THEN the first A survives, the two later copies are quarantined with their origin
    assert table is not None
    assert table.column("id").to_pylist() == ["A", "B", "C"]
    assert table.column("qty").to_pylist() == [1, 2, 3]
    assert [(q["partition"], q["row_number"], q["byte_offset"]) for q in quarantined] == [
        (1, 2, 200),
        (2, 1, 100),
    ]
    assert {q["reason_code"] for q in quarantined} == {"duplicate_primary_key"}
    assert "row 1 of partition 0" in quarantined[0]["reason"]
    assert json.loads(quarantined[0]["raw_record"])["qty"] == 4
    assert (result.rows_in, result.rows_out, result.rows_quarantined) == (5, 3, 2)
    assert result.rows_in == result.rows_out + result.rows_quarantined
    assert result.reasons == {"duplicate_primary_key": 2}


def test_transform_bucket_composite_key_dedupes_on_all_parts(tmp_path: Path) -> None:
    contract = make_contract(primary_key=["id", "code"])
    rows: list[dict[str, Any]] = [
        {"id": "A", "code": "x"},
        {"id": "A", "code": "y"},
        {"id": "A", "code": "x"},
        {"id": "A", "code": None},
        {"id": "A", "code": None},
    ]
    result, table, quarantined = run(tmp_path, contract, [rows])
    assert table is not None
    # rows with a null key part are never duplicates (SQL UNIQUE semantics)
    assert table.column("code").to_pylist() == ["x", "y", None, None]
    assert [q["row_number"] for q in quarantined] == [3]
    assert quarantined[0]["column"] == "id,code"
    assert result.rows_in == result.rows_out + result.rows_quarantined


def test_transform_bucket_dedupe_disabled_keeps_every_copy(tmp_path: Path) -> None:
    contract = make_contract(transform={"dedupe": False})
    result, table, _ = run(tmp_path, contract, [[{"id": "A"}, {"id": "A"}]])
    assert table is not None
    assert table.num_rows == 2
    assert result.rows_quarantined == 0
    assert result.quarantine_path is None


def test_transform_bucket_skip_policy_counts_duplicates_without_writing_them(
    tmp_path: Path,
) -> None:
    contract = make_contract(quarantine={"policy": "skip"})
    result, _, quarantined = run(tmp_path, contract, [[{"id": "A"}, {"id": "A"}]])
    assert result.rows_quarantined == 1
    assert result.reasons == {"duplicate_primary_key": 1}
    assert result.quarantine_path is None
    assert quarantined == []


def test_transform_bucket_no_rows_stages_nothing(tmp_path: Path) -> None:
    contract = make_contract()
    result, table, _ = run(tmp_path, contract, [[], []])
    assert result == TransformResult(0, 0, 0, None, None, {})
    assert table is None
    assert not (tmp_path / "out" / "b0000.arrow").exists()


def test_transform_bucket_output_keeps_row_and_drops_offset_and_dropped_columns(
    tmp_path: Path,
) -> None:
    contract = make_contract(transform={"drop": ["code"]})
    _, table, _ = run(tmp_path, contract, [[{"id": "A", "code": "x"}]])
    assert table is not None
    assert table.schema == transformed_schema(contract)
    assert "code" not in table.column_names
    assert OFFSET_COLUMN not in table.column_names
    assert table.column(ROW_COLUMN).to_pylist() == [global_row(0, 1)]


def test_transform_bucket_many_rows_keep_input_order(tmp_path: Path) -> None:
    contract = make_contract()
    partitions = [[{"id": f"p{p}-{i}", "qty": i} for i in range(700)] for p in range(3)]
    result, table, _ = run(tmp_path, contract, partitions)
    assert table is not None
    assert table.column("id").to_pylist() == [r["id"] for rows in partitions for r in rows]
    assert table.column(ROW_COLUMN).to_pylist() == sorted(table.column(ROW_COLUMN).to_pylist())
    assert result.rows_out == 2100


def derived_values(
    tmp_path: Path, derived: dict[str, Any], rows: list[dict[str, Any]]
) -> list[Any]:
    contract = make_contract(transform={"derived": [derived], "dedupe": False})
    _, table, _ = run(tmp_path, contract, [rows])
    assert table is not None
    return list(table.column(derived["name"]).to_pylist())


TS = dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("derived", "rows", "expected"),
    [
        (
            {"name": "total", "op": "multiply", "args": ["qty", "price"]},
            [{"qty": 3, "price": 2.5}, {"qty": None, "price": 1.0}],
            [7.5, None],
        ),
        (
            {"name": "plus", "op": "add", "args": ["qty", {"literal": 10}]},
            [{"qty": 3}, {"qty": -3}],
            [13, 7],
        ),
        (
            {"name": "minus", "op": "subtract", "args": ["qty", "qty", {"literal": 1}]},
            [{"qty": 3}],
            [-1],
        ),
        (
            {"name": "ratio", "op": "divide", "args": ["qty", {"literal": 2}]},
            [{"qty": 3}, {"qty": 0}],
            [1.5, 0.0],
        ),
        (
            {"name": "ratio", "op": "divide", "args": [{"literal": 1}, "qty"]},
            [{"qty": 4}, {"qty": 0}, {"qty": None}],
            [0.25, None, None],
        ),
        (
            {"name": "up", "op": "upper", "args": ["code"]},
            [{"code": "éa-b"}, {"code": None}],
            ["ÉA-B", None],
        ),
        ({"name": "low", "op": "lower", "args": ["code"]}, [{"code": "AbC"}], ["abc"]),
        ({"name": "t", "op": "trim", "args": ["code"]}, [{"code": "  a b \t"}], ["a b"]),
        (
            {
                "name": "c",
                "op": "concat",
                "args": ["id", "code", {"literal": "z"}],
                "separator": "-",
            },
            [{"id": "A", "code": "x"}, {"id": "B", "code": None}],
            ["A-x-z", "B-z"],
        ),
        (
            {"name": "d", "op": "date_of", "args": ["ts"]},
            [{"ts": TS}, {"ts": None}],
            [dt.date(2024, 2, 29), None],
        ),
        (
            {"name": "r", "op": "round", "args": ["price"], "digits": 1},
            [{"price": 2.26}, {"price": 2.25}, {"price": None}],
            [2.3, 2.2, None],
        ),
        ({"name": "r", "op": "round", "args": ["qty"]}, [{"qty": 7}], [7]),
        (
            {"name": "c", "op": "coalesce", "args": ["code", "id", {"literal": "none"}]},
            [{"id": "A", "code": "x"}, {"id": "B", "code": None}],
            ["x", "B"],
        ),
        (
            {"name": "q", "op": "multiply", "args": ["qty", "price"], "type": "int64"},
            [{"qty": 2, "price": 3.0}],
            [6],
        ),
        (
            {"name": "s", "op": "add", "args": ["qty", {"literal": 1}], "type": "string"},
            [{"qty": 2}],
            ["3"],
        ),
    ],
)
def test_derived_op_computes_expected_values(
    tmp_path: Path, derived: dict[str, Any], rows: list[dict[str, Any]], expected: list[Any]
) -> None:
    base = [{"id": f"r{i}", **row} for i, row in enumerate(rows)]
    for i, row in enumerate(base):
        row.setdefault("id", f"r{i}")
    assert derived_values(tmp_path, derived, base) == expected


def test_derived_integer_overflow_gives_null_not_wrapped(tmp_path: Path) -> None:
    derived = {"name": "big", "op": "multiply", "args": ["qty", {"literal": 2**40}]}
    rows = [{"id": "a", "qty": 2**30}, {"id": "b", "qty": 3}]
    assert derived_values(tmp_path, derived, rows) == [None, 3 * 2**40]


def test_derived_result_cast_failure_quarantines_row(tmp_path: Path) -> None:
    # GIVEN a derived column cast to int64 where one product has a fraction
    derived = {"name": "q", "op": "multiply", "args": ["qty", "price"], "type": "int64"}
    contract = make_contract(transform={"derived": [derived]})
    rows = [{"id": "a", "qty": 2, "price": 3.0}, {"id": "b", "qty": 1, "price": 0.5}]
    # WHEN transformed
    result, table, quarantined = run(tmp_path, contract, [rows])
    # THEN the row that cannot be cast is quarantined, the other goes on
    assert table is not None
    assert table.column("q").to_pylist() == [6]
    assert [(q["row_number"], q["reason_code"], q["column"]) for q in quarantined] == [
        (2, "cast_failed", "q")
    ]
    assert result.rows_in == result.rows_out + result.rows_quarantined


def test_derived_on_wrong_argument_type_rejected_before_reading(tmp_path: Path) -> None:
    contract = make_contract(
        transform={"derived": [{"name": "x", "op": "multiply", "args": ["code", "qty"]}]}
    )
    with pytest.raises(ValueError, match="needs numbers"):
        run(tmp_path, contract, [[{"id": "a"}]])


def test_transform_cast_converts_and_quarantines_unconvertible_values(tmp_path: Path) -> None:
    contract = make_contract(transform={"casts": {"code": "int64", "price": "string"}})
    rows: list[dict[str, Any]] = [
        {"id": "a", "code": "12", "price": 1.5},
        {"id": "b", "code": "twelve", "price": 2.0},
        {"id": "c", "code": None, "price": None},
    ]
    result, table, quarantined = run(tmp_path, contract, [rows])
    assert table is not None
    assert table.schema.field("code").type == pa.int64()
    assert table.column("code").to_pylist() == [12, None]
    assert table.column("price").to_pylist() == ["1.5", None]
    assert [(q["row_number"], q["reason_code"], q["column"]) for q in quarantined] == [
        (2, "cast_failed", "code")
    ]
    assert result.rows_in == result.rows_out + result.rows_quarantined


def make_catalog(root: Path, csv_text: str) -> DatasetCatalog:
    lookups = root / "shop" / "lookups"
    lookups.mkdir(parents=True)
    (lookups / "codes.csv").write_text(csv_text, "utf-8")
    return DatasetCatalog(root)


LOOKUP = {
    "table": "codes",
    "column": "code",
    "key": "code",
    "columns": ["label", "n"],
    "prefix": "c_",
}


def test_lookup_join_matches_misses_and_null_keys_keep_rows(tmp_path: Path) -> None:
    # GIVEN a lookup table and rows that match, miss, and have a null key
    catalog = make_catalog(tmp_path / "catalog", "code,label,n\nx,Ex,1\ny,Why,002\nz,,3\n")
    contract = make_contract(transform={"lookups": [LOOKUP], "dedupe": False})
    lookups = load_lookups(contract, catalog)
    rows: list[dict[str, Any]] = [
        {"id": "1", "code": "y"},
        {"id": "2", "code": "nope"},
        {"id": "3", "code": None},
        {"id": "4", "code": "x"},
        {"id": "5", "code": "y"},
        {"id": "6", "code": "z"},
    ]
    # WHEN transformed
    result, table, _ = run(tmp_path / "run", contract, [rows], lookups)
    # THEN row order and count are kept; misses and null keys get nulls; values stay strings
    assert table is not None
    assert table.column("id").to_pylist() == ["1", "2", "3", "4", "5", "6"]
    assert table.column("c_label").to_pylist() == ["Why", None, None, "Ex", "Why", ""]
    assert table.column("c_n").to_pylist() == ["002", None, None, "1", "002", "3"]
    assert result.rows_out == 6


def test_lookup_join_on_non_string_column_matches_text(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path / "catalog", "code,label,n\n7,seven,1\n")
    lookup = {**LOOKUP, "column": "qty"}
    contract = make_contract(transform={"lookups": [lookup]})
    lookups = load_lookups(contract, catalog)
    _, table, _ = run(
        tmp_path / "run", contract, [[{"id": "a", "qty": 7}, {"id": "b", "qty": 8}]], lookups
    )
    assert table is not None
    assert table.column("c_label").to_pylist() == ["seven", None]


def test_load_lookups_duplicate_keys_rejected(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path, "code,label,n\nx,Ex,1\nx,Other,2\n")
    contract = make_contract(transform={"lookups": [LOOKUP]})
    with pytest.raises(LookupTableError, match=r"duplicate 'code' values \['x'\]"):
        load_lookups(contract, catalog)


def test_load_lookups_missing_column_rejected(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path, "code,label\nx,Ex\n")
    contract = make_contract(transform={"lookups": [LOOKUP]})
    with pytest.raises(LookupTableError, match=r"no column\(s\) \['n'\]"):
        load_lookups(contract, catalog)


def test_load_lookups_missing_table_rejected(tmp_path: Path) -> None:
    contract = make_contract(transform={"lookups": [LOOKUP]})
    with pytest.raises(LookupTableError, match="not found"):
        load_lookups(contract, DatasetCatalog(tmp_path))


def test_load_lookups_shipped_orders_contract_reads_countries() -> None:
    from contracts.datasets.loader import load_contract

    tables = load_lookups(load_contract("orders"))
    countries = tables["countries"]
    assert {"code", "name", "region"} <= set(countries.column_names)
    assert all(t == pa.string() for t in countries.schema.types)


def test_transform_bucket_hash_collisions_never_drop_distinct_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a hash space of 3 values, so nearly every pair of different keys collides,
    # and pass 1 sorting in slices of 4 hashes
    from sluice_shared.datapath import transform

    monkeypatch.setattr(transform, "_HASH_SPACE", 3)
    monkeypatch.setattr(transform, "_SORT_SLICE", 4)
    contract = make_contract()
    keys = [f"k{i % 40}" for i in range(100)]
    # WHEN transformed
    result, table, quarantined = run(tmp_path, contract, [[{"id": k} for k in keys]])
    # THEN exactly the first occurrence of each distinct key survives
    assert table is not None
    assert table.column("id").to_pylist() == [f"k{i}" for i in range(40)]
    assert len(quarantined) == 60
    assert all(q["reason_code"] == "duplicate_primary_key" for q in quarantined)
    assert (result.rows_in, result.rows_out, result.rows_quarantined) == (100, 40, 60)


def test_transform_bucket_inputs_out_of_row_order_rejected(tmp_path: Path) -> None:
    contract = make_contract()
    first = write_staged(tmp_path / "p1.arrow", contract, 1, [{"id": "a"}])
    second = write_staged(tmp_path / "p0.arrow", contract, 0, [{"id": "b"}])
    with pytest.raises(ValueError, match="partition order"):
        transform_bucket(
            [first, second],
            contract,
            tmp_path / "t.arrow",
            lookups={},
            quarantine_path=tmp_path / "q.jsonl",
        )


def test_transform_bucket_two_column_key_across_partitions_first_copy_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a two-column key repeated across three staged partitions, pass 1 sorting in slices
    from sluice_shared.datapath import transform

    monkeypatch.setattr(transform, "_SORT_SLICE", 8)
    contract = make_contract(primary_key=["id", "qty"])
    parts = [
        [{"id": f"k{i % 7}", "qty": i % 3} for i in range(start, start + 20)]
        for start in (0, 20, 40)
    ]
    # WHEN transformed
    result, table, quarantined = run(tmp_path, contract, parts)
    # THEN each distinct (id, qty) survives once, as its first copy in file order
    rows = [row for part in parts for row in part]
    seen: dict[tuple[object, object], int] = {}
    for index, row in enumerate(rows):
        seen.setdefault((row["id"], row["qty"]), index)
    expected = [rows[i] for i in sorted(seen.values())]
    assert table is not None
    kept = zip(table.column("id").to_pylist(), table.column("qty").to_pylist(), strict=True)
    assert list(kept) == [(r["id"], r["qty"]) for r in expected]
    assert result.rows_quarantined == len(quarantined) == len(rows) - len(expected)


def test_transform_bucket_staged_file_without_key_column_rejected(tmp_path: Path) -> None:
    contract = make_contract()
    path = tmp_path / "p0.arrow"
    schema = pa.schema([pa.field("qty", pa.int64())])
    with pa.ipc.new_stream(str(path), schema) as writer:
        writer.write_table(pa.table({"qty": [1, 2]}, schema=schema))
    with pytest.raises(ValueError, match="lacks column"):
        transform_bucket(
            [path], contract, tmp_path / "t.arrow", lookups={}, quarantine_path=tmp_path / "q.jsonl"
        )


def test_transform_bucket_two_threads_hash_and_transform_off_the_callers_thread_same_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from sluice_shared.datapath import transform
    from sluice_shared.datapath.buckets import assign_buckets

    # GIVEN two partitions of many small chunks with duplicates and failing casts, on two CPUs
    # (threads even for this small input)
    monkeypatch.setattr(transform, "CHUNK_ROWS", 40)
    monkeypatch.setattr(transform, "INLINE_BYTES", -1)
    monkeypatch.setattr(transform, "usable_cpus", lambda: 2)
    contract = make_contract(transform={"dedupe": True, "casts": {"code": "int64"}})
    partitions = [
        [
            {"id": f"k{(p * 300 + i) % 450}", "qty": i, "code": "x" if i % 37 == 0 else str(i)}
            for i in range(300)
        ]
        for p in range(2)
    ]
    seen: dict[str, set[str]] = {"hash": set(), "transform": set()}
    real_hash, real_chunk = assign_buckets, transform._transform_chunk

    def spy_hash(*args: Any) -> Any:
        seen["hash"].add(threading.current_thread().name)
        return real_hash(*args)

    def spy_chunk(*args: Any) -> Any:
        seen["transform"].add(threading.current_thread().name)
        return real_chunk(*args)

    monkeypatch.setattr(transform, "assign_buckets", spy_hash)
    monkeypatch.setattr(transform, "_transform_chunk", spy_chunk)
    # WHEN the bucket is transformed with two threads, then with one
    threaded = run(tmp_path / "two", contract, partitions)
    on_threads = {stage: set(names) for stage, names in seen.items()}
    for names in seen.values():
        names.clear()
    monkeypatch.setattr(transform, "TRANSFORM_THREADS", 1)
    sequential = run(tmp_path / "one", contract, partitions)
    # THEN keys were hashed and chunks transformed on the second threads, one thread did it
    # all in the other run, and rows, quarantine records and their order are the same
    assert on_threads["hash"]
    assert all(n.startswith("sluice-hash") for n in on_threads["hash"])
    assert on_threads["transform"]
    assert all(n.startswith("sluice-transform") for n in on_threads["transform"])
    assert seen == {"hash": {"MainThread"}, "transform": {"MainThread"}}
    (result_2, table_2, quarantined_2), (result_1, table_1, quarantined_1) = threaded, sequential
    assert table_2 is not None
    assert table_1 is not None
    assert table_2.equals(table_1)
    assert quarantined_2 == quarantined_1
    assert {q["reason_code"] for q in quarantined_1} == {"duplicate_primary_key", "cast_failed"}
    assert result_2.reasons == result_1.reasons
    assert result_2.rows_in == result_2.rows_out + result_2.rows_quarantined == 600


def test_transform_bucket_small_input_stays_on_the_callers_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from sluice_shared.datapath import transform

    # GIVEN a small bucket on two CPUs
    monkeypatch.setattr(transform, "usable_cpus", lambda: 2)
    seen: set[str] = set()
    real_chunk = transform._transform_chunk

    def spy_chunk(*args: Any) -> Any:
        seen.add(threading.current_thread().name)
        return real_chunk(*args)

    monkeypatch.setattr(transform, "_transform_chunk", spy_chunk)
    rows = [{"id": f"k{i % 40}", "qty": i} for i in range(50)]
    # WHEN it is transformed
    result, table, _ = run(tmp_path, make_contract(), [rows])
    # THEN no thread was started for it
    assert seen == {threading.current_thread().name}
    assert table is not None
    assert (result.rows_out, result.rows_quarantined) == (40, 10)


@pytest.mark.parametrize("size", [0, 1, 7, 1_000, 50_000])
def test_sorted_hashes_radix_sort_orders_like_a_comparison_sort(size: int) -> None:
    import random

    from sluice_shared.datapath.transform import _sorted_hashes

    # GIVEN uint32 hashes over the whole range, with repeats (above 1,024 values Arrow
    # counts each digit instead of comparing)
    rng = random.Random(size)
    values = [rng.getrandbits(32) for _ in range(size)]
    values += values[: size // 10]
    hashes = pa.array(values, pa.uint32())
    # WHEN radix-sorted THEN the order is the comparison sort's
    assert _sorted_hashes(hashes).to_pylist() == sorted(values)


def _repeated_key_bucket(tmp_path: Path) -> list[Path]:
    """A staged bucket of three 500-row partition files whose ids k0..k1199 repeat: rows 0-299
    and 1200-1499 share their keys."""
    contract = make_contract()
    return [
        write_staged(
            tmp_path / f"p{p}.arrow",
            contract,
            p,
            [{"id": f"k{(p * 500 + i) % 1200}"} for i in range(500)],
        )
        for p in range(3)
    ]


def test_candidate_rows_same_mask_one_slice_or_many_on_two_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice_shared.datapath import transform

    # GIVEN a staged bucket in several batches with repeated keys
    paths = _repeated_key_bucket(tmp_path)
    # WHEN pass 1 runs on one thread with one slice, then on two threads in slices of 64
    one = transform._candidate_rows(paths, ["id"], 1)
    monkeypatch.setattr(transform, "_SORT_SLICE", 64)
    two = transform._candidate_rows(paths, ["id"], 2)
    # THEN the masks are the same, and mark the rows whose key repeats (keys k0-k299)
    assert one is not None
    assert two is not None
    assert one.equals(two)
    assert one.to_pylist() == [n < 300 or n >= 1200 for n in range(1500)]


def test_transform_bucket_reads_staged_batches_on_the_reading_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a bucket with duplicates, so both passes read it (pass 1 its key column only)
    contract = make_contract()
    rows = [{"id": f"k{i % 5}", "qty": i} for i in range(12)]
    options: list[pa.ipc.IpcReadOptions | None] = []
    real_open = pa.ipc.open_stream

    def spy(source: Any, *args: Any, **kwargs: Any) -> pa.ipc.RecordBatchStreamReader:
        options.append(kwargs.get("options"))
        return real_open(source, *args, **kwargs)

    staged = write_staged(tmp_path / "p00000.arrow", contract, 0, rows)
    monkeypatch.setattr(pa.ipc, "open_stream", spy)
    # WHEN it is transformed
    result = transform_bucket(
        [staged],
        contract,
        tmp_path / "out" / "b0000.arrow",
        lookups={},
        quarantine_path=tmp_path / "q" / "b0000.jsonl",
    )
    monkeypatch.undo()
    # THEN every staged read decompressed its batches on the reading thread (no hand-off to
    # Arrow's CPU pool per batch), and the rows are the same
    assert len(options) >= 3
    assert all(o is not None and o.use_threads is False for o in options)
    assert result.staged is not None
    assert read_staged(result.staged).column("id").to_pylist() == [f"k{i}" for i in range(5)]


def test_candidate_rows_looks_up_repeated_hashes_once_per_run_of_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice_shared.datapath import transform

    # GIVEN a staged bucket of 1,500 rows in batches of two rows, with repeated keys
    paths = _repeated_key_bucket(tmp_path)
    calls: list[int] = []
    real_is_in = pc.is_in

    def spy(values: pa.Array, **kwargs: Any) -> pa.Array:
        calls.append(len(values))
        return real_is_in(values, **kwargs)

    monkeypatch.setattr(pc, "is_in", spy)
    monkeypatch.setattr(transform, "_SORT_SLICE", 400)
    # WHEN pass 1 marks the rows whose hash repeats
    mask = transform._candidate_rows(paths, ["id"], 2)
    # THEN the hashes were looked up in runs of at most 200 values (400 over two threads: a
    # hash set built 8 times, not once per two-row batch; the two threads' calls interleave in
    # any order), and the mask is the one row by row
    assert sorted(calls, reverse=True) == [200] * 7 + [100]
    assert mask is not None
    assert mask.to_pylist() == [n < 300 or n >= 1200 for n in range(1500)]


def _zoned_casts_to(monkeypatch: pytest.MonkeyPatch, target: pa.DataType) -> list[pa.DataType]:
    """The types of the zoned timestamps `pc.cast` is asked to cast to `target` from now on."""
    seen: list[pa.DataType] = []
    real_cast = pc.cast

    def spy(values: Any, target_type: Any = None, *args: Any, **kwargs: Any) -> Any:
        zoned = isinstance(values.type, pa.TimestampType) and values.type.tz is not None
        if zoned and target_type == target:
            seen.append(values.type)
        return real_cast(values, target_type, *args, **kwargs)

    monkeypatch.setattr(pc, "cast", spy)
    return seen


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_temporal_text_writes_utc_timestamps_as_arrow_does_without_a_zone_lookup(
    unit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice_shared.datapath.transform import _temporal_text

    # GIVEN UTC timestamps with a null, and timestamps of another zone
    utc = pa.chunked_array([pa.array([0, None, 1_234_567_891], pa.timestamp(unit, tz="UTC"))])
    berlin = utc.cast(pa.timestamp(unit, tz="Europe/Berlin"))
    expected_utc = pc.cast(utc, pa.string())
    expected_berlin = pc.cast(berlin, pa.string())
    zoned_to_text = _zoned_casts_to(monkeypatch, pa.string())
    # WHEN they are written as text for a quarantined row's raw record
    utc_text, berlin_text = _temporal_text(utc), _temporal_text(berlin)
    # THEN the text is Arrow's own, and only the other zone was cast as a zoned timestamp
    assert utc_text.to_pylist() == expected_utc.to_pylist()
    assert utc_text.to_pylist()[0].endswith("Z")
    assert berlin_text.to_pylist() == expected_berlin.to_pylist()
    assert zoned_to_text == [berlin.type]


def test_date_of_dates_utc_timestamps_without_a_zone_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from contracts.datasets import DerivedColumn
    from sluice_shared.datapath.derive import compute_derived

    # GIVEN UTC timestamps either side of midnight, and a null
    micros = [86_399_999_999, 86_400_000_000, None]
    batch = pa.record_batch({"ts": pa.array(micros, pa.timestamp("us", tz="UTC"))})
    derived = DerivedColumn.model_validate({"name": "d", "op": "date_of", "args": ["ts"]})
    zoned_to_date = _zoned_casts_to(monkeypatch, pa.date32())
    # WHEN their date is derived
    dates = compute_derived(derived, batch, batch.num_rows)
    # THEN each is its UTC calendar date, and no zoned timestamp was cast to a date
    assert dates.to_pylist() == [dt.date(1970, 1, 1), dt.date(1970, 1, 2), None]
    assert zoned_to_date == []
