"""write_partitioned: Hive keys, escaping, determinism, bounded writers, content read back."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contracts.datasets import DatasetContract
from sluice_shared.datapath.output import (
    HIVE_NULL,
    OutputResult,
    escape_partition_value,
    output_schema,
    write_partitioned,
)
from sluice_shared.datapath.schema import ROW_COLUMN
from sluice_shared.datapath.transform import transformed_schema

UTC = dt.UTC


def make_contract(partition_by: list[dict[str, Any]]) -> DatasetContract:
    return DatasetContract.model_validate(
        {
            "name": "shop",
            "version": 1,
            "format": {"kind": "csv"},
            "columns": [
                {"name": "id", "type": "string", "nullable": False},
                {"name": "region", "type": "string"},
                {"name": "ts", "type": "timestamp"},
                {"name": "day", "type": "date"},
                {"name": "qty", "type": "int64"},
            ],
            "partition_by": partition_by,
        }
    )


DAY = [{"name": "dt", "column": "ts", "transform": "day"}]


def write_transformed(
    path: Path, contract: DatasetContract, rows: list[dict[str, Any]], batch_rows: int = 3
) -> Path:
    schema = transformed_schema(contract)
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for number, row in enumerate(rows, start=1):
        for name in schema.names:
            columns[name].append(number if name == ROW_COLUMN else row.get(name))
    table = pa.table(columns, schema=schema)
    with pa.ipc.new_stream(str(path), schema) as writer:
        for batch in table.to_batches(max_chunksize=batch_rows):
            writer.write_batch(batch)
    return path


def ts(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, tzinfo=UTC)


def run(
    tmp_path: Path,
    contract: DatasetContract,
    rows: list[dict[str, Any]],
    out: str = "out",
    **options: Any,
) -> OutputResult:
    staged = write_transformed(tmp_path / "t.arrow", contract, rows)
    return write_partitioned(
        [staged], contract, tmp_path / out, file_id="f00d", bucket=7, **options
    )


def read_rows(result: OutputResult) -> dict[str, list[dict[str, Any]]]:
    return {o.key: pq.read_table(o.local_path).to_pylist() for o in result.objects}


def _digest(result: OutputResult) -> dict[str, str]:
    """Each written object's key and the sha256 of its bytes."""
    return {o.key: hashlib.sha256(o.local_path.read_bytes()).hexdigest() for o in result.objects}


def test_write_partitioned_by_day_writes_hive_keys_and_rows(tmp_path: Path) -> None:
    # GIVEN rows over two UTC days, interleaved (a day boundary near midnight)
    contract = make_contract(DAY)
    rows = [
        {"id": "a", "ts": ts(1, 23), "qty": 1},
        {"id": "b", "ts": ts(2, 0), "qty": 2},
        {"id": "c", "ts": ts(1, 0), "qty": 3},
        {"id": "d", "ts": ts(2, 5), "qty": 4},
    ]
    # WHEN written
    result = run(tmp_path, contract, rows)
    # THEN one file per day, rows in input order, no __row and no dt column inside the files
    by_key = read_rows(result)
    assert list(by_key) == [
        "dataset=shop/dt=2024-03-01/part-f00d-b0007-0000.parquet",
        "dataset=shop/dt=2024-03-02/part-f00d-b0007-0000.parquet",
    ]
    assert [r["id"] for r in by_key[result.objects[0].key]] == ["a", "c"]
    assert [r["id"] for r in by_key[result.objects[1].key]] == ["b", "d"]
    assert by_key[result.objects[0].key][0] == {
        "id": "a",
        "region": None,
        "ts": ts(1, 23),
        "day": None,
        "qty": 1,
    }
    assert result.rows == 4
    assert [o.rows for o in result.objects] == [2, 2]
    for obj in result.objects:
        assert obj.local_path == tmp_path / "out" / obj.key
        assert obj.bytes == obj.local_path.stat().st_size
        file_schema = pq.read_schema(obj.local_path)
        assert file_schema.names == output_schema(contract).names
        assert ROW_COLUMN not in file_schema.names
        assert pq.ParquetFile(obj.local_path).metadata.row_group(0).column(0).compression == "ZSTD"


def test_write_partitioned_month_year_and_date_transforms(tmp_path: Path) -> None:
    contract = make_contract(
        [
            {"name": "y", "column": "day", "transform": "year"},
            {"name": "m", "column": "ts", "transform": "month"},
        ]
    )
    rows = [
        {"id": "a", "ts": ts(1), "day": dt.date(2023, 12, 31)},
        {"id": "b", "ts": ts(30), "day": dt.date(2023, 1, 1)},
        {"id": "c", "ts": dt.datetime(2024, 4, 1, tzinfo=UTC), "day": dt.date(2023, 6, 1)},
    ]
    result = run(tmp_path, contract, rows)
    assert {k: [r["id"] for r in v] for k, v in read_rows(result).items()} == {
        "dataset=shop/y=2023/m=2024-03/part-f00d-b0007-0000.parquet": ["a", "b"],
        "dataset=shop/y=2023/m=2024-04/part-f00d-b0007-0000.parquet": ["c"],
    }


def test_write_partitioned_identity_escapes_values_and_nulls_go_to_default(
    tmp_path: Path,
) -> None:
    # GIVEN identity partition values with path-special characters, an empty string and a null
    contract = make_contract([{"name": "region", "column": "region"}])
    values = ["eu/west", "a=b", "50%", "new\nline", "", None, "..", "München"]
    rows = [{"id": str(i), "region": v} for i, v in enumerate(values)]
    # WHEN written
    result = run(tmp_path, contract, rows)
    # THEN every key is one safe segment per partition, and the column is not inside the file
    dirs = {o.key.split("/")[1]: o for o in result.objects}
    assert set(dirs) == {
        "region=eu%2Fwest",
        "region=a%3Db",
        "region=50%25",
        "region=new%0Aline",
        f"region={HIVE_NULL}",
        "region=%2E%2E",
        "region=München",
    }
    null_rows = pq.read_table(dirs[f"region={HIVE_NULL}"].local_path)
    assert null_rows.column("id").to_pylist() == ["4", "5"]
    assert "region" not in null_rows.column_names
    assert "region" not in output_schema(contract).names


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain-Value_1.x", "plain-Value_1.x"),
        ("a/b", "a%2Fb"),
        ("%", "%25"),
        ("\t", "%09"),
        ("", HIVE_NULL),
        (".", "%2E"),
        ("é", "é"),
        ("a:b?c#", "a%3Ab%3Fc%23"),
    ],
)
def test_escape_partition_value_escapes_path_special_characters(value: str, expected: str) -> None:
    assert escape_partition_value(value) == expected


def test_write_partitioned_same_input_twice_gives_identical_keys_and_bytes(
    tmp_path: Path,
) -> None:
    contract = make_contract(DAY)
    rows = [{"id": f"r{i}", "ts": ts(1 + i % 5, i % 24), "qty": i} for i in range(500)]

    first = run(tmp_path, contract, rows, out="one", row_group_rows=64, max_open_writers=2)
    second = run(tmp_path, contract, rows, out="two", row_group_rows=64, max_open_writers=2)
    assert len(first.objects) >= 5
    assert _digest(first) == _digest(second)


def test_write_partitioned_many_partitions_small_writer_bound_keeps_every_row(
    tmp_path: Path,
) -> None:
    # GIVEN 20 days interleaved row by row, at most 3 open files and tiny buffers
    contract = make_contract(DAY)
    rows = [{"id": f"r{i}", "ts": ts(1 + i % 20), "qty": i} for i in range(400)]
    # WHEN written
    result = run(tmp_path, contract, rows, max_open_writers=3, row_group_rows=5)
    # THEN every row is written exactly once, in input order per day, across numbered files
    by_day: dict[str, list[int]] = {}
    for obj in result.objects:
        day = obj.key.split("/")[1]
        by_day.setdefault(day, []).extend(
            r["qty"] for r in pq.read_table(obj.local_path).to_pylist()
        )
    assert len(by_day) == 20
    for day, quantities in by_day.items():
        d = int(day[-2:])
        assert quantities == [i for i in range(400) if 1 + i % 20 == d]
    assert result.rows == 400
    # reopened partitions continue numbering: 0000, 0001, ... without gaps
    for day in by_day:
        names = sorted(o.key.rsplit("-", 1)[1] for o in result.objects if f"/{day}/" in o.key)
        assert names == [f"{n:04d}.parquet" for n in range(len(names))]
    assert len(result.objects) > 20


def test_write_partitioned_rolls_over_at_max_rows_per_file(tmp_path: Path) -> None:
    contract = make_contract(DAY)
    rows = [{"id": f"r{i}", "ts": ts(1), "qty": i} for i in range(25)]
    result = run(tmp_path, contract, rows, max_rows_per_file=10, row_group_rows=4)
    assert [o.rows for o in result.objects] == [10, 10, 5]
    assert [o.key[-9:] for o in result.objects] == ["0.parquet", "1.parquet", "2.parquet"]
    assert [r["qty"] for rows_ in read_rows(result).values() for r in rows_] == list(range(25))


def test_write_partitioned_no_partition_columns_writes_under_dataset(tmp_path: Path) -> None:
    contract = make_contract([])
    result = run(tmp_path, contract, [{"id": "a"}, {"id": "b"}])
    assert [o.key for o in result.objects] == ["dataset=shop/part-f00d-b0007-0000.parquet"]


def test_write_partitioned_empty_input_writes_nothing(tmp_path: Path) -> None:
    contract = make_contract(DAY)
    result = run(tmp_path, contract, [])
    assert result == OutputResult(rows=0, objects=[])


def test_write_partitioned_day_on_string_column_rejected(tmp_path: Path) -> None:
    contract = make_contract([{"name": "dt", "column": "region", "transform": "day"}])
    with pytest.raises(ValueError, match="needs a date or timestamp"):
        run(tmp_path, contract, [{"id": "a", "region": "x"}])


def test_write_partitioned_low_cardinality_columns_only_are_dictionary_encoded(
    tmp_path: Path,
) -> None:
    contract = make_contract(DAY)
    rows = [
        {"id": f"r{i}", "region": ["eu", "us"][i % 2], "ts": ts(1), "qty": i} for i in range(1000)
    ]
    result = run(tmp_path, contract, rows)
    meta = pq.ParquetFile(result.objects[0].local_path).metadata.row_group(0)
    encodings = {
        meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)
    }
    assert "RLE_DICTIONARY" in encodings["region"]
    assert "RLE_DICTIONARY" not in encodings["id"]


def test_write_partitioned_small_input_inline_gives_same_bytes_as_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one small input written inline (the default for small files) and on the writer thread
    from sluice_shared.datapath import output

    contract = make_contract(DAY)
    rows = [{"id": f"r{i}", "ts": ts(1 + i % 5, i % 24), "qty": i} for i in range(300)]
    inline = run(tmp_path, contract, rows, out="inline", row_group_rows=16, max_open_writers=2)
    monkeypatch.setattr(output, "INLINE_WRITE_BYTES", -1)
    monkeypatch.setattr(output, "usable_cpus", lambda: 2)
    threaded = run(tmp_path, contract, rows, out="thread", row_group_rows=16, max_open_writers=2)

    # THEN both hold the same objects, byte for byte, and every row
    assert _digest(inline) == _digest(threaded)
    assert inline.rows == threaded.rows == 300


def test_write_partitioned_one_cpu_writes_on_the_callers_thread_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from sluice_shared.datapath import output

    # GIVEN an input too large to be written inline as a small file, on one CPU
    monkeypatch.setattr(output, "INLINE_WRITE_BYTES", -1)
    monkeypatch.setattr(output, "usable_cpus", lambda: 1)
    contract = make_contract(DAY)
    rows = [{"id": f"r{i}", "ts": ts(1 + i % 3, i % 24), "qty": i} for i in range(600)]
    writers: list[str] = []
    real_write = pq.ParquetWriter.write_table

    def spy(self: pq.ParquetWriter, *args: Any, **kwargs: Any) -> None:
        writers.append(threading.current_thread().name)
        real_write(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", spy)
    # WHEN it is written on one CPU, then on two CPUs with one writer thread
    one_cpu = run(tmp_path, contract, rows, out="one", row_group_rows=32)
    on_one = list(writers)
    writers.clear()
    monkeypatch.setattr(output, "usable_cpus", lambda: 2)
    monkeypatch.setattr(output, "WRITER_THREADS", 1)
    threaded = run(tmp_path, contract, rows, out="thread", row_group_rows=32)

    # THEN on one CPU every row group was encoded on the caller's thread (no writer thread to
    # take turns with), and the objects are byte for byte those of the writer thread
    assert on_one
    assert set(on_one) == {threading.current_thread().name}
    assert set(writers) == {"parquet-writer_0"}
    assert _digest(one_cpu) == _digest(threaded)
    assert one_cpu.rows == 600


def test_utc_timestamps_are_dated_as_naive_ones_other_zones_by_their_own_clock() -> None:
    import pyarrow.compute as pc

    from sluice_shared.datapath.schema import utc_as_naive

    # GIVEN instants either side of midnight UTC, as UTC, as naive and as Berlin timestamps
    micros = [0, 86_399_999_999, 86_400_000_000, -1, None]
    utc = pa.chunked_array([pa.array(micros, pa.timestamp("us", tz="UTC"))])
    berlin = pa.chunked_array([pa.array(micros, pa.timestamp("us", tz="Europe/Berlin"))])
    naive = pa.chunked_array([pa.array(micros, pa.timestamp("us"))])

    # WHEN each is prepared for its date cast
    # THEN a UTC column becomes naive with the same numbers (Arrow dates it without a zone
    # lookup, to the same UTC dates), a naive one stays as it is, Berlin keeps its zone
    assert utc_as_naive(utc).type == pa.timestamp("us")
    assert utc_as_naive(utc).cast(pa.int64()).equals(utc.cast(pa.int64()))
    assert pc.cast(utc_as_naive(utc), pa.date32()).equals(pc.cast(utc, pa.date32()))
    assert utc_as_naive(naive) is naive
    assert utc_as_naive(berlin).type == berlin.type


def test_write_partitioned_two_cpus_encode_two_partitions_at_once_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from sluice_shared.datapath import output

    # GIVEN rows of five days interleaved, written on the writer threads, on two CPUs
    monkeypatch.setattr(output, "INLINE_WRITE_BYTES", -1)
    monkeypatch.setattr(output, "usable_cpus", lambda: 2)
    contract = make_contract(DAY)
    rows = [{"id": f"r{i}", "ts": ts(1 + i % 5, i % 24), "qty": i} for i in range(3000)]
    writers: set[str] = set()
    busy: list[int] = []
    running = [0]
    lock = threading.Lock()
    two_writing = threading.Event()
    real_write = pq.ParquetWriter.write_table

    def spy(self: pq.ParquetWriter, *args: Any, **kwargs: Any) -> None:
        with lock:
            writers.add(threading.current_thread().name)
            running[0] += 1
            busy.append(running[0])
            if len(writers) > 1:
                two_writing.set()
        try:
            # the first file's rows wait (once, at most 5 s) until another file is being written
            if not two_writing.wait(5):
                two_writing.set()
            real_write(self, *args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(pq.ParquetWriter, "write_table", spy)
    # WHEN they are written with two writer threads, then with one
    two = run(tmp_path, contract, rows, out="two", row_group_rows=64)
    on_two, most_at_once = set(writers), max(busy)
    writers.clear()
    busy.clear()
    two_writing.set()
    monkeypatch.setattr(output, "WRITER_THREADS", 1)
    one = run(tmp_path, contract, rows, out="one", row_group_rows=64)

    # THEN two files were encoded at once on two threads, and the objects are byte for byte
    # those of one writer thread
    assert on_two == {"parquet-writer_0", "parquet-writer_1"}
    assert most_at_once == 2
    assert writers == {"parquet-writer_0"}
    assert max(busy) == 1
    assert _digest(two) == _digest(one)
    assert len(two.objects) == 5
    assert two.rows == one.rows == 3000


def test_write_partitioned_split_by_filter_or_by_sort_gives_the_same_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice_shared.datapath import output

    # GIVEN rows of three days and two regions, interleaved
    contract = make_contract([*DAY, {"name": "region", "column": "region"}])
    rows = [
        {"id": f"r{i}", "region": ["eu", "us"][i % 2], "ts": ts(1 + i % 3, i % 24), "qty": i}
        for i in range(500)
    ]
    # WHEN each chunk is split with a filter per partition, then with a sort
    monkeypatch.setattr(output, "FILTER_SPLIT_PARTITIONS", 64)
    filtered = run(tmp_path, contract, rows, out="filter", row_group_rows=32)
    monkeypatch.setattr(output, "FILTER_SPLIT_PARTITIONS", 0)
    sorted_ = run(tmp_path, contract, rows, out="sort", row_group_rows=32)

    # THEN the objects are the same, byte for byte
    assert _digest(filtered) == _digest(sorted_)
    assert len(filtered.objects) == 6
    assert filtered.rows == 500


def test_split_by_partition_gathers_only_the_written_columns() -> None:
    from sluice_shared.datapath.output import _split_by_partition

    # GIVEN transformed rows of three days, with `__row` and a column the files do not hold
    contract = make_contract([*DAY, {"name": "region", "column": "region"}])
    rows = [
        {"id": f"r{i}", "region": "eu", "ts": ts(1 + i % 3), "qty": i, ROW_COLUMN: i}
        for i in range(9)
    ]
    table = pa.Table.from_pylist(rows, schema=transformed_schema(contract))
    written = output_schema(contract).names
    # WHEN it is split by partition for writing
    parts = list(_split_by_partition(table, contract.partition_by, written))
    # THEN each partition's rows hold the written columns only (not `__row`, not the identity
    # partition column `region`), in input order
    assert [path for path, _ in parts] == [f"dt=2024-03-0{day}/region=eu" for day in (1, 2, 3)]
    for _, part in parts:
        assert part.column_names == written
        assert ROW_COLUMN not in part.column_names
        assert "region" not in part.column_names
    assert [part.column("id").to_pylist() for _, part in parts] == [
        [f"r{i}" for i in range(day, 9, 3)] for day in range(3)
    ]
