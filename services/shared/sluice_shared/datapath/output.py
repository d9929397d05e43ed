"""Write transformed rows as Hive-partitioned Parquet, deterministically and in flat memory.

Key of each object (relative to the processed bucket):
`dataset=<name>/<p1>=<v1>/.../part-<file_id>-b<bucket:04d>-<n:04d>.parquet`, where `n` counts the
files of one partition directory written by this call. The same input always gives the same keys
with the same rows in the same order: rows keep their input order (`__row` order) within a
partition, and every decision (flushes, file roll-overs, writer evictions) depends only on the
input.

Why it looks like this (DESIGN 5a, measured on this box):
- one ParquetWriter per output partition with bounded row buffers kept a 2 GB input flat, where
  `pyarrow.dataset.write_dataset` grew to 1.8 GB;
- Parquet encoding costs more than parsing, so with two CPUs background threads write while
  the caller's thread reads and partitions the next rows (pyarrow releases the GIL while
  encoding), two threads encoding two partitions' files at once; on one CPU the caller writes;
- dictionary encoding of high-cardinality columns doubled write time, so only columns that look
  low-cardinality in the first rows are dictionary-encoded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice_shared.datapath.ahead import BackgroundWriter, read_ahead, usable_cpus
from sluice_shared.datapath.schema import ROW_COLUMN, utc_as_naive
from sluice_shared.datapath.transform import transformed_schema

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from contracts.datasets import DatasetContract, PartitionSpec

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
# Characters Hive escapes in partition values (FileUtils.escapePathName), as %XX.
_HIVE_ESCAPED = frozenset("\"#%'*/:=?\\{[]^")
ROW_GROUP_ROWS = 32_768  # a partition's buffer is written (one row group) at this many rows
MAX_BUFFERED_ROWS = 65_536  # all partitions' buffers together; the biggest is flushed beyond
MAX_OPEN_WRITERS = 32
# A chunk spanning at most this many partitions is split with one filter per partition, else
# with one sort (a filter per partition reads the whole chunk each time).
FILTER_SPLIT_PARTITIONS = 4
DICTIONARY_MAX_RATIO = 0.05  # dictionary-encode a column with at most this share of distinct values
_WRITE_QUEUE_DEPTH = 2  # row groups waiting for a writer thread (bounds memory, keeps overlap)
# Writer threads on a process with two or more CPUs (`usable_cpus`: a Lambda function from
# 3,538 MB): Parquet encoding is most of this stage's CPU and releases the GIL, so two files
# (partitions) are encoded at once. A file's row groups are still written in order, by one
# thread at a time, so the objects are byte for byte those of one writer thread.
WRITER_THREADS = 2
# Inputs up to this size are written on the caller's thread: no writer thread for a small file
# (nor on one CPU, whatever the size).
INLINE_WRITE_BYTES = 1 * 2**20


@dataclass(frozen=True)
class OutputObject:
    """One Parquet file written: its key (relative to the bucket), row count, size, local path."""

    key: str
    rows: int
    bytes: int
    local_path: Path


@dataclass(frozen=True)
class OutputResult:
    """Every object `write_partitioned` wrote, sorted by key, and the total row count."""

    rows: int
    objects: list[OutputObject]


def _hive_dropped_columns(contract: DatasetContract) -> set[str]:
    # A Hive reader rebuilds an identity partition column from the path; the same column inside the
    # file would clash with it. Transformed partitions (dt from order_ts) keep their source column.
    return {
        p.column for p in contract.partition_by if p.transform == "identity" and p.name == p.column
    }


def output_schema(contract: DatasetContract) -> pa.Schema:
    """The schema of the written Parquet files: the transformed columns without `__row` and
    without identity partition columns whose value is in the path."""
    dropped = _hive_dropped_columns(contract) | {ROW_COLUMN}
    return pa.schema([f for f in transformed_schema(contract) if f.name not in dropped])


def escape_partition_value(value: str) -> str:
    """A partition value made safe for a key segment: Hive's %XX escaping of path-special and
    non-printable characters; empty, `.` and `..` cannot name a directory of their own."""
    if value == "":
        return HIVE_NULL
    out = []
    for ch in value:
        if ch in _HIVE_ESCAPED or not ch.isprintable():
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    escaped = "".join(out)
    if escaped in (".", ".."):
        escaped = escaped.replace(".", "%2E")
    return escaped


def _label(value: Any, transform: str) -> str:
    if value is None:
        return HIVE_NULL
    if transform == "identity":
        if isinstance(value, dt.datetime):
            return escape_partition_value(value.isoformat())
        if isinstance(value, bool):
            return "true" if value else "false"
        return escape_partition_value(str(value))
    day: dt.date = value
    if transform == "day":
        return day.strftime("%Y-%m-%d")
    if transform == "month":
        return day.strftime("%Y-%m")
    return day.strftime("%Y")


def _partition_ids(table: pa.Table, spec: PartitionSpec) -> tuple[pa.Array, list[str]]:
    """Per row, an index into the returned list of escaped partition values for `spec`."""
    values = table.column(spec.column)
    if spec.transform != "identity":
        if pa.types.is_timestamp(values.type):
            # the UTC calendar date: timestamps are stored as UTC
            values = pc.cast(utc_as_naive(values), pa.date32())
        elif not pa.types.is_date(values.type):
            raise ValueError(
                f"partition {spec.name!r}: {spec.transform} needs a date or timestamp column"
            )
    encoded = pc.dictionary_encode(values).combine_chunks()
    labels: list[str] = []
    label_ids: dict[str, int] = {}
    mapping: list[int] = []
    # months and years merge several distinct days into one label
    for value in [*encoded.dictionary.to_pylist(), None]:
        label = _label(value, spec.transform)
        mapping.append(label_ids.setdefault(label, len(label_ids)))
        if len(labels) < len(label_ids):
            labels.append(label)
    null_slot = len(encoded.dictionary)
    indices = pc.fill_null(encoded.indices, null_slot)
    return pc.take(pa.array(mapping, pa.int64()), indices), labels


def _split_by_partition(
    table: pa.Table, specs: Sequence[PartitionSpec], columns: Sequence[str]
) -> Iterator[tuple[str, pa.Table]]:
    """(partition path, rows of that partition in input order, of `columns` only) for each
    partition in `table`. Only the columns written are gathered (not `__row`, nor an identity
    partition column whose value is in the path)."""
    rows = table.select(columns)
    if not specs:
        yield "", rows
        return
    combined: pa.Array | None = None
    all_labels: list[list[str]] = []
    for spec in specs:
        ids, labels = _partition_ids(table, spec)
        all_labels.append(labels)
        combined = ids if combined is None else pc.add(pc.multiply(combined, len(labels)), ids)
    assert combined is not None
    table = rows

    def path_of(code: int) -> str:
        parts = []
        for spec, labels in zip(reversed(specs), reversed(all_labels), strict=True):
            code, index = divmod(code, len(labels))
            parts.append(f"{spec.name}={labels[index]}")
        return "/".join(reversed(parts))

    first = combined[0].as_py()
    if pc.all(pc.equal(combined, first)).as_py():
        yield path_of(first), table
        return
    codes = pc.unique(combined)
    if len(codes) <= FILTER_SPLIT_PARTITIONS:
        # A few partitions (days of an hourly export): one filter each costs less than sorting
        # the chunk and gathering it; rows keep their input order either way.
        for code in sorted(codes.to_pylist()):
            yield path_of(code), table.filter(pc.equal(combined, code))
        return
    order = pc.sort_indices(combined)  # stable: rows keep their input order within a partition
    runs = pc.run_end_encode(combined.take(order))
    start = 0
    for end, code in zip(runs.run_ends.to_pylist(), runs.values.to_pylist(), strict=True):
        # One take per partition, not slices of one sorted copy: a buffered slice would keep the
        # whole chunk alive until that partition flushes (with many partitions: every chunk).
        yield path_of(code), table.take(order.slice(start, end - start))
        start = end


@dataclass
class _Partition:
    path: str
    next_n: int = 0
    buffer: list[pa.Table] = field(default_factory=list)
    buffered: int = 0
    open_key: str | None = None
    open_rows: int = 0


class _PartitionedWriter:
    def __init__(
        self,
        contract: DatasetContract,
        out_dir: Path,
        *,
        file_id: str,
        bucket: int,
        max_rows_per_file: int,
        max_open_writers: int,
        row_group_rows: int,
        inline_writes: bool = False,
    ) -> None:
        self.contract = contract
        self.schema = output_schema(contract)
        self.out_dir = out_dir
        self.prefix = f"dataset={contract.name}"
        self.file_id = file_id
        self.bucket = bucket
        self.max_rows_per_file = max_rows_per_file
        self.max_open_writers = max_open_writers
        self.row_group_rows = row_group_rows
        self.partitions: dict[str, _Partition] = {}
        self.open: OrderedDict[str, _Partition] = OrderedDict()  # least recently used first
        self.buffered = 0
        self.dictionary_columns: list[str] | None = None
        self.files: dict[str, pq.ParquetWriter] = {}  # touched by the writer thread only
        self.file_rows: dict[str, int] = {}
        cpus = usable_cpus()
        threads = max(1, min(WRITER_THREADS, cpus))
        # On one CPU a writer thread only takes turns with the caller's (switching and GIL
        # hand-offs cost ~7% of the stage's CPU on 1M orders rows), so the caller writes.
        self.background = BackgroundWriter(
            threads=threads,
            depth=_WRITE_QUEUE_DEPTH,
            inline=inline_writes or cpus < 2,
            name="parquet-writer",
        )

    def choose_dictionary_columns(self, table: pa.Table) -> None:
        chosen = []
        for name in self.schema.names:
            column = table.column(name)
            if pa.types.is_boolean(column.type) or len(column) == 0:
                continue
            distinct = pc.count_distinct(column, mode="all").as_py()
            if distinct <= max(1, DICTIONARY_MAX_RATIO * len(column)):
                chosen.append(name)
        self.dictionary_columns = chosen

    def add(self, table: pa.Table) -> None:
        if self.dictionary_columns is None:
            self.choose_dictionary_columns(table)
        for path, rows in _split_by_partition(table, self.contract.partition_by, self.schema.names):
            part = self.partitions.get(path)
            if part is None:
                part = self.partitions[path] = _Partition(path)
            part.buffer.append(rows)
            part.buffered += rows.num_rows
            self.buffered += rows.num_rows
            if part.buffered >= self.row_group_rows:
                self.flush(part)
        while self.buffered > MAX_BUFFERED_ROWS:
            self.flush(max(self.partitions.values(), key=lambda p: p.buffered))

    def flush(self, part: _Partition) -> None:
        if not part.buffered:
            return
        rows = pa.concat_tables(part.buffer).cast(self.schema)
        self.buffered -= part.buffered
        part.buffer, part.buffered = [], 0
        start = 0
        while start < rows.num_rows:
            if part.open_key is None or part.open_rows >= self.max_rows_per_file:
                self.start_file(part)
            assert part.open_key is not None
            self.open.move_to_end(part.path)
            take = min(rows.num_rows - start, self.max_rows_per_file - part.open_rows)
            self.background.submit(
                part.open_key, self._write_job(part.open_key, rows.slice(start, take))
            )
            part.open_rows += take
            start += take

    def start_file(self, part: _Partition) -> None:
        if part.open_key is not None:
            self.close_file(part)
        while len(self.open) >= self.max_open_writers:
            _, oldest = self.open.popitem(last=False)
            self.flush_and_close(oldest)
        directory = f"{self.prefix}/{part.path}" if part.path else self.prefix
        name = f"part-{self.file_id}-b{self.bucket:04d}-{part.next_n:04d}.parquet"
        part.next_n += 1
        part.open_key = f"{directory}/{name}"
        part.open_rows = 0
        self.open[part.path] = part
        self.background.submit(part.open_key, self._open_job(part.open_key))

    def flush_and_close(self, part: _Partition) -> None:
        # An evicted partition's buffered rows go into the file being closed when they fit, so
        # eviction does not leave them for a small extra file.
        fits = part.open_rows + part.buffered <= self.max_rows_per_file
        if part.buffered and part.open_key is not None and fits:
            rows = pa.concat_tables(part.buffer).cast(self.schema)
            self.buffered -= part.buffered
            part.buffer, part.buffered = [], 0
            self.background.submit(part.open_key, self._write_job(part.open_key, rows))
            part.open_rows += rows.num_rows
        self.close_file(part)

    def close_file(self, part: _Partition) -> None:
        if part.open_key is not None:
            self.background.submit(part.open_key, self._close_job(part.open_key))
            part.open_key = None
            self.open.pop(part.path, None)

    def _open_job(self, key: str) -> Callable[[], None]:
        def job() -> None:
            path = self.out_dir / key
            path.parent.mkdir(parents=True, exist_ok=True)
            self.files[key] = pq.ParquetWriter(
                str(path),
                self.schema,
                compression="zstd",
                use_dictionary=self.dictionary_columns or False,
                write_statistics=True,
            )
            self.file_rows[key] = 0

        return job

    def _write_job(self, key: str, rows: pa.Table) -> Callable[[], None]:
        def job() -> None:
            self.files[key].write_table(rows, row_group_size=self.row_group_rows)
            self.file_rows[key] += rows.num_rows

        return job

    def _close_job(self, key: str) -> Callable[[], None]:
        def job() -> None:
            self.files.pop(key).close()

        return job

    def finish(self) -> OutputResult:
        for path in sorted(self.partitions):
            part = self.partitions[path]
            if part.buffered:
                self.flush(part)
        for part in list(self.open.values()):
            self.close_file(part)
        self.background.finish()
        objects = []
        for key in sorted(self.file_rows):
            local = self.out_dir / key
            objects.append(
                OutputObject(
                    key=key, rows=self.file_rows[key], bytes=local.stat().st_size, local_path=local
                )
            )
        return OutputResult(rows=sum(o.rows for o in objects), objects=objects)

    def abort(self) -> None:
        # the original error is the one worth raising
        with contextlib.suppress(Exception):
            self.background.finish()
        for writer in self.files.values():
            writer.close()
        self.files.clear()


def _read_tables(inputs: Sequence[Path], row_group_rows: int) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for path in inputs:
        with pa.ipc.open_stream(pa.OSFile(str(path), "rb")) as reader:
            for batch in reader:
                pending.append(batch)
                pending_rows += batch.num_rows
                if pending_rows >= row_group_rows:
                    yield pa.Table.from_batches(pending)
                    pending, pending_rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def write_partitioned(
    inputs: Sequence[Path],
    contract: DatasetContract,
    out_dir: Path,
    *,
    file_id: str,
    bucket: int,
    max_rows_per_file: int = 2_000_000,
    max_open_writers: int = MAX_OPEN_WRITERS,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> OutputResult:
    """Write transformed staged rows (Arrow IPC streams, `transformed_schema`) as Hive-partitioned
    Parquet (zstd) under `out_dir`, one directory per partition of `contract.partition_by`.

    At most `max_open_writers` files are open at once (the least recently used is closed; a
    partition written again later continues with the next `n`); a file holds at most
    `max_rows_per_file` rows. Returns every object written, sorted by key. Raises ValueError when
    a day/month/year partition column is not a date or timestamp.
    """
    if max_rows_per_file < 1 or max_open_writers < 1 or row_group_rows < 1:
        raise ValueError("max_rows_per_file, max_open_writers and row_group_rows must be >= 1")
    writer = _PartitionedWriter(
        contract,
        out_dir,
        file_id=file_id,
        bucket=bucket,
        max_rows_per_file=max_rows_per_file,
        max_open_writers=max_open_writers,
        row_group_rows=row_group_rows,
        inline_writes=sum(path.stat().st_size for path in inputs) <= INLINE_WRITE_BYTES,
    )
    try:
        for table in read_ahead(_read_tables(inputs, row_group_rows)):
            writer.add(table)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise
    finally:
        # A warm Lambda runs the next file in this process: hand freed pages back now (Arrow's
        # default mimalloc pool keeps them otherwise, and the next stage's peak adds to them).
        pa.default_memory_pool().release_unused()
