"""Transform one hash bucket of validated rows: dedupe, derived columns, lookup joins, casts, drop.

Input: the validated Arrow IPC stream files of ONE bucket from every partition, in partition order
(schema `staged_schema(contract)`). Because validate hashes the primary key into buckets, every copy
of a key is in this bucket, so deduping one bucket at a time dedupes the whole file.

Memory stays bounded by 4 bytes per row of the bucket, never the rows themselves:
- pass 1 reads only the primary-key columns, hashes them (32 bits per row) and keeps the hashes
  that repeat;
- pass 2 looks at the real keys of just the rows with a repeating hash: a row whose key was seen
  before loses to that earlier copy (the first occurrence by `__row`, i.e. by position in the
  file, wins), and a hash collision between different keys drops nothing;
- the same pass streams record batches, quarantines the losers and transforms the rest, writing an
  Arrow IPC stream (the output stage orders by `__row`, so it is kept; `__offset` is not).

Rows whose value cannot be cast (a contract cast or a derived column's `type`) are quarantined with
`cast_failed` and a reason naming the value, so `rows_in == rows_out + rows_quarantined` always
holds. Whether the file as a whole is still acceptable (`max_bad_ratio`, policy `fail`) is the
caller's judgement, over validate's and transform's quarantines together.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from contracts.datasets import DatasetCatalog, DatasetContract
from sluice_shared.datapath.ahead import map_ahead, usable_cpus
from sluice_shared.datapath.buckets import assign_buckets
from sluice_shared.datapath.derive import compute_derived, derived_type
from sluice_shared.datapath.quarantine import QuarantineWriter, encode_record
from sluice_shared.datapath.schema import (
    OFFSET_COLUMN,
    PARTITION_SHIFT,
    ROW_COLUMN,
    arrow_type,
    contract_schema,
    one_array,
    utc_as_naive,
)
from sluice_shared.errors import PoisonInputError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from contracts.datasets import DerivedColumn, LookupJoin

DUPLICATE_PRIMARY_KEY = "duplicate_primary_key"
CAST_FAILED = "cast_failed"
_ROW_MASK = (1 << PARTITION_SHIFT) - 1
# A cast_failed reason shows the offending value up to this many characters.
MAX_VALUE_CHARS = 64
# Small validated batches (one per bucket per read block) are merged up to this many rows before
# transforming: per-batch overhead in Python dominates below a few thousand rows.
CHUNK_ROWS = 65_536
# Threads working on a bucket on a process with two or more CPUs (`usable_cpus`: a Lambda
# function from 3,538 MB): pass 1 hashes two batches of keys at once and sorts two slices of
# the hash space at once; pass 2 splits off the duplicates of two chunks and transforms them
# at once on two pool threads while the caller reads and dedupes the next chunk and writes the
# prepared ones in input order (Arrow's kernels and IPC reader and writer release the GIL).
# Rows, quarantine records and their order are those of one thread; pass 2 holds two chunks
# more.
TRANSFORM_THREADS = 2
# Inputs up to this size are transformed on the caller's thread: starting threads costs more
# than they gain on a small file (the common case on the real-time path).
INLINE_BYTES = 1 * 2**20


def transform_threads(input_bytes: int) -> int:
    """`TRANSFORM_THREADS`, at most the CPUs this process may run on; 1 (all on the caller's
    thread, as on a one-vCPU function) for inputs of at most `INLINE_BYTES`."""
    if input_bytes <= INLINE_BYTES:
        return 1
    return max(1, min(TRANSFORM_THREADS, usable_cpus()))


class LookupTableError(PoisonInputError):
    """A contract's lookup table is unusable: missing, lacking columns, or with duplicate keys."""

    code = "invalid_lookup_table"


@dataclass(frozen=True)
class TransformResult:
    """What `transform_bucket` did. `rows_in == rows_out + rows_quarantined`."""

    rows_in: int
    rows_out: int
    rows_quarantined: int
    staged: Path | None  # None when no row survived (nothing written)
    quarantine_path: Path | None  # None when nothing was quarantined (or policy `skip`)
    reasons: dict[str, int]


def transformed_schema(contract: DatasetContract) -> pa.Schema:
    """Schema of transformed staged rows: contract columns with derived and lookup columns added,
    casts applied and dropped columns removed, then `__row`.

    Raises DerivationError (a ValueError) when a derived column's arguments do not fit its op.
    """
    fields: dict[str, pa.Field] = {f.name: f for f in contract_schema(contract)}
    spec = contract.transform
    for derived in spec.derived:
        types = {name: f.type for name, f in fields.items()}
        fields[derived.name] = pa.field(derived.name, derived_type(derived, types))
    for lookup in spec.lookups:
        for column in lookup.columns:
            name = f"{lookup.prefix}{column}"
            fields[name] = pa.field(name, pa.string())
    for name, column_type in spec.casts.items():
        fields[name] = fields[name].with_type(arrow_type(column_type))
    for name in spec.drop:
        fields.pop(name, None)
    return pa.schema([*fields.values(), pa.field(ROW_COLUMN, pa.int64(), nullable=False)])


def load_lookups(
    contract: DatasetContract, catalog: DatasetCatalog | None = None
) -> dict[str, pa.Table]:
    """Read every lookup table the contract joins with, all columns as strings.

    Returns table name → table. Raises LookupTableError when a table is missing, lacks the key or
    a requested column, or has a duplicate or empty key (a left join with it would multiply rows).
    """
    catalog = catalog or DatasetCatalog()
    tables: dict[str, pa.Table] = {}
    needed: dict[str, set[str]] = {}
    keys: dict[str, str] = {}
    for lookup in contract.transform.lookups:
        needed.setdefault(lookup.table, set()).update(lookup.columns)
        if keys.setdefault(lookup.table, lookup.key) != lookup.key:
            raise LookupTableError(f"lookup table {lookup.table!r} is joined on two different keys")
    for table_name, columns in needed.items():
        path = catalog.lookup_path(contract.name, table_name)
        if not path.is_file():
            raise LookupTableError(f"lookup table {table_name!r} not found at {path}")
        table = _read_lookup_csv(path)
        key = keys[table_name]
        missing = sorted(({key} | columns) - set(table.column_names))
        if missing:
            raise LookupTableError(f"lookup table {table_name!r} has no column(s) {missing}")
        key_values = table.column(key)
        if key_values.null_count or pc.any(pc.equal(key_values, "")).as_py():
            raise LookupTableError(f"lookup table {table_name!r} has an empty {key!r}")
        distinct = pc.count_distinct(key_values).as_py()
        if distinct != table.num_rows:
            counts = pc.value_counts(key_values)
            dupes = counts.filter(pc.greater(counts.field("counts"), 1))
            sample = [d["values"] for d in dupes.to_pylist()[:5]]
            raise LookupTableError(
                f"lookup table {table_name!r} has duplicate {key!r} values {sample}: "
                "a left join would multiply rows"
            )
        tables[table_name] = table
    return tables


def _read_lookup_csv(path: Path) -> pa.Table:
    header = pacsv.read_csv(path, read_options=pacsv.ReadOptions(skip_rows_after_names=1 << 30))
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header.column_names},
            strings_can_be_null=False,
        ),
    )


# A batch's buffers are decompressed on the reading thread, not handed to Arrow's CPU pool:
# its lz4 buffers are small, and on one CPU the hand-offs cost more than they save (1M rows of
# validated orders read whole, one CPU: 0.066 -> 0.055 CPU s, ~1,500 context switches fewer;
# on two the caller's read took no longer, while the pool's threads work on other chunks).
_READ_OPTIONS = pa.ipc.IpcReadOptions(use_threads=False)


def _open_stream(
    path: Path, columns: Sequence[str] | None = None
) -> pa.ipc.RecordBatchStreamReader:
    """A reader of the IPC stream at `path`; with `columns`, only those are read (and
    decompressed): the others' buffers are skipped."""
    # Plain reads, not a memory map: mapped pages stay resident (and count as RSS) until the
    # mapping closes, so a large bucket would look, and sometimes be, as big as the file.
    source = pa.OSFile(str(path), "rb")
    if columns is None:
        return pa.ipc.open_stream(source, options=_READ_OPTIONS)
    with pa.ipc.open_stream(pa.OSFile(str(path), "rb"), options=_READ_OPTIONS) as head:
        names = head.schema.names
    missing = sorted(set(columns) - set(names))
    if missing:
        raise ValueError(f"{path}: staged file lacks column(s) {missing}")
    fields = [names.index(name) for name in columns]
    return pa.ipc.open_stream(
        source, options=pa.ipc.IpcReadOptions(included_fields=fields, use_threads=False)
    )


# Pass 1 keeps 32 bits of each row's key hash: 4 bytes per row of the bucket. Collisions are
# resolved by comparing the real key values of the rows whose hash repeats (pass 2), so they
# never drop a row; at 6M rows they add a few thousand rows to the ~1% that really repeat.
_HASH_SPACE = 2**32 - 1
# Pass 1 sorts its hashes in slices of about this many values, to bound the sort's memory.
_SORT_SLICE = 1 << 20
_U32 = pa.uint32()
_U8 = pa.uint8()
# The hashes are sorted by three stable counting sorts of 11, 11 and 10 bits (a radix sort):
# Arrow's `sort_indices` counts, instead of comparing, integers whose range is at most 4,096.
# Measured on 1M random hashes, one CPU: 25 ms, against 124 ms for `Array.sort()` (a
# comparison sort), which was most of pass 1.
_RADIX_DIGITS = ((0, pa.scalar(0x7FF, _U32)), (11, pa.scalar(0x7FF, _U32)), (22, None))


def _sorted_hashes(values: pa.Array) -> pa.Array:
    """`values` (uint32) in ascending order: a least-significant-digit radix sort."""
    for shift, mask in _RADIX_DIGITS:
        digit = pc.shift_right(values, pa.scalar(shift, _U32)) if shift else values
        if mask is not None:
            digit = pc.bit_wise_and(digit, mask)
        values = values.take(pc.sort_indices(digit))  # stable: the lower digits' order stays
    return values


def _key_batches(inputs: Sequence[Path], key_columns: list[str]) -> Iterator[pa.RecordBatch]:
    for path in inputs:
        with _open_stream(path, key_columns) as reader:
            for batch in reader:
                if batch.num_rows:
                    yield batch


def _candidate_rows(
    inputs: Sequence[Path], key_columns: list[str], threads: int = 1
) -> pa.Array | None:
    """Pass 1: a mask (1 bit per row, in input order) of rows whose key hash occurs more than
    once in the bucket; None when no hash repeats.

    Holds 4 bytes per row (the hash), never the rows: only the key columns are read, one batch
    at a time (a memory map would keep every page it touched resident, and counted as RSS,
    until closed), and hashed on `threads` threads. The hashes stay in their per-batch arrays
    (concatenating them would double the peak) and are sorted slice by slice of the hash space,
    so the sort needs a fraction of that again. With `threads` > 1 that many slices (of a
    `threads`-th of the size, at least one per thread) are sorted at once, and the mask's
    parts computed that many at a time: the set of repeated hashes, and so the mask, is the
    same however the hash space is cut.
    """

    def key_hashes(batch: pa.RecordBatch) -> pa.Array:
        return assign_buckets(batch, key_columns, _HASH_SPACE).cast(_U32)

    parts = list(
        map_ahead(key_hashes, _key_batches(inputs, key_columns), threads, name="sluice-hash")
    )
    total = sum(len(part) for part in parts)
    if not parts:
        return None
    # as many values in flight as one thread sorting `_SORT_SLICE` at a time
    slices = max(1, total * threads // _SORT_SLICE, min(threads, total))
    width = _HASH_SPACE // slices + 1

    def repeated_in(index: int) -> pa.Array | None:
        """The distinct hashes of slice `index` of the hash space that occur more than once."""
        if slices == 1:
            part = pa.concat_arrays(parts)
        else:
            low = pa.scalar(index * width, _U32)
            high = pa.scalar(min((index + 1) * width, _HASH_SPACE), _U32)
            part = pa.concat_arrays(
                [p.filter(pc.and_(pc.greater_equal(p, low), pc.less(p, high))) for p in parts]
            )
        if len(part) < 2:
            return None
        ordered = _sorted_hashes(part)
        same = pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
        repeats = ordered.slice(1).filter(same)
        return pc.unique(repeats) if len(repeats) else None

    repeated = [
        found
        for found in map_ahead(repeated_in, range(slices), threads, name="sluice-hash")
        if found is not None
    ]
    if not repeated:
        return None
    value_set = pa.concat_arrays(repeated)

    def in_value_set(group: list[pa.Array]) -> pa.Array:
        return pc.is_in(pa.concat_arrays(group), value_set=value_set)

    return pa.concat_arrays(
        list(
            map_ahead(
                in_value_set, _runs_of(parts, _SORT_SLICE // threads), threads, name="sluice-hash"
            )
        )
    )


def _runs_of(parts: list[pa.Array], values: int) -> Iterator[list[pa.Array]]:
    """`parts` in order, in runs of at most `values` values (or one part): `is_in` builds its
    hash set of the repeated hashes on every call, so a call per batch of keys would build it
    once per ~25k rows (5M rows: 200 sets of ~50k values, 0.22 CPU s; in runs of 1M values
    0.09 s). A run is copied together for its call: with `_SORT_SLICE // threads` values a
    run, the copies in flight hold what one slice of the sort does, after the sort."""
    run: list[pa.Array] = []
    size = 0
    for part in parts:
        if run and size + len(part) > values:
            yield run
            run, size = [], 0
        run.append(part)
        size += len(part)
    if run:
        yield run


class _Deduper:
    """Pass 2: marks rows whose key was seen before, given the candidate rows of pass 1.

    Only candidates (rows whose hash repeats) are looked at in Python, with their real key values,
    so a hash collision between different keys keeps both rows. Relies on rows arriving in
    `__row` order (checked), so the first one seen is the first occurrence in the file. Memory:
    one entry per distinct key among the candidates.
    """

    def __init__(self, key_columns: list[str], candidates: pa.Array) -> None:
        self.key_columns = key_columns
        self.candidates = candidates
        self.offset = 0
        self.first_row: dict[tuple[Any, ...], int] = {}
        self.winner_of: dict[int, int] = {}

    def losers(self, table: pa.Table) -> pa.Array | None:
        """Mask of the rows of `table` (the next rows of the input) that repeat an earlier key,
        or None when there are none."""
        window = self.candidates.slice(self.offset, table.num_rows)
        self.offset += table.num_rows
        positions = pc.indices_nonzero(window).to_pylist()
        if not positions:
            return None
        picked = table.select([*self.key_columns, ROW_COLUMN]).take(positions)
        keys = zip(*(picked.column(k).to_pylist() for k in self.key_columns), strict=True)
        rows = picked.column(ROW_COLUMN).to_pylist()
        lost: list[int] = []
        for position, key, row in zip(positions, keys, rows, strict=True):
            if None in key:
                continue  # a null key part is never a duplicate (as with SQL UNIQUE)
            first = self.first_row.setdefault(key, row)
            if first != row:
                self.winner_of[row] = first
                lost.append(position)
        if not lost:
            return None
        # a byte per row, set at the losers: no Python object per row of the chunk
        flags = bytearray(table.num_rows)
        for position in lost:
            flags[position] = 1
        return pc.not_equal(pa.Array.from_buffers(_U8, len(flags), [None, pa.py_buffer(flags)]), 0)


def _chunks(inputs: Sequence[Path], columns: list[str]) -> Iterator[pa.Table]:
    """The inputs' rows in order, as tables of about CHUNK_ROWS rows (not copied together)."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for path in inputs:
        with _open_stream(path) as reader:
            missing = sorted(set(columns) - set(reader.schema.names))
            if missing:
                raise ValueError(f"{path}: staged file lacks column(s) {missing}")
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                pending.append(batch.select(columns))
                pending_rows += batch.num_rows
                if pending_rows >= CHUNK_ROWS:
                    yield pa.Table.from_batches(pending)
                    pending, pending_rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _check_order(table: pa.Table, last_row: int) -> int:
    """The chunk's last `__row`, after checking rows ascend (first occurrence = first seen)."""
    rows = table.column(ROW_COLUMN)
    n = len(rows)
    ascending = n < 2 or pc.all(pc.less(rows.slice(0, n - 1), rows.slice(1))).as_py()
    first = rows[0].as_py()
    if not ascending or first <= last_row:
        raise ValueError("staged inputs must be given in partition order, rows in row order")
    return int(rows[n - 1].as_py())


def _temporal_text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dates and times as Arrow writes them as text. A UTC timestamp is written as the naive
    one (the same numbers) with `Z` after it, which is what Arrow writes for it, without a
    time-zone lookup per value (10k values: 0.5 ms against 13 ms)."""
    if pa.types.is_timestamp(values.type) and values.type.tz == "UTC":
        return pc.binary_join_element_wise(pc.cast(utc_as_naive(values), pa.string()), "Z", "")
    return pc.cast(values, pa.string())


def _raw_records(bad: pa.Table) -> list[str]:
    """Each row's values as a JSON object (bookkeeping columns left out)."""
    names = [n for n in bad.column_names if n not in (ROW_COLUMN, OFFSET_COLUMN)]
    columns = []
    for name in names:
        values = bad.column(name)
        if pa.types.is_temporal(values.type):
            # one vectorised cast instead of a datetime object per value
            values = _temporal_text(values)
        columns.append(values.to_pylist())
    return [
        orjson.dumps(dict(zip(names, row, strict=True))).decode()
        for row in zip(*columns, strict=True)
    ]


class _Quarantine:
    """Quarantine records of one chunk, encoded (when kept) and counted, held in order until
    the chunks before it are written: a chunk is prepared, and its records encoded, on a pool
    thread; the caller appends them in one write (`QuarantineWriter.write_block`)."""

    def __init__(self, keep_raw: bool) -> None:
        self.keep_raw = keep_raw
        self.lines: list[bytes] = []
        self.reasons: Counter[str] = Counter()

    def rows(
        self,
        table: pa.Table,
        mask: pa.Array,
        reason_code: str,
        column: str | None,
        reason: Any,
    ) -> pa.Table:
        """Quarantine the rows of `table` where `mask` is true; return the other rows.

        `reason` is a message or a function of the row's `__row` giving one.
        """
        bad, kept = _split(table, mask)
        self.write(bad, reason_code, column, reason)
        return kept

    def write(self, bad: pa.Table, reason_code: str, column: str | None, reason: Any) -> None:
        """Quarantine every row of `bad` (see `rows`)."""
        if not bad.num_rows:
            return
        self.reasons[reason_code] += bad.num_rows
        if not self.keep_raw:
            return
        rows = bad.column(ROW_COLUMN).to_pylist()
        offsets = bad.column(OFFSET_COLUMN).to_pylist()
        reasons = [reason(r) for r in rows] if callable(reason) else [reason] * len(rows)
        self.lines.extend(
            encode_record(
                global_row & _ROW_MASK,
                global_row >> PARTITION_SHIFT,
                offset,
                reason_code,
                why,
                column,
                raw,
            )
            for global_row, offset, why, raw in zip(
                rows, offsets, reasons, _raw_records(bad), strict=True
            )
        )


def _split(table: pa.Table, mask: pa.Array) -> tuple[pa.Table, pa.Table]:
    """The rows of `table` where `mask` is true, and the other rows."""
    return table.filter(mask), table.filter(pc.invert(mask))


def _try_cast(values: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    """`values` cast to `target`, and a mask of the rows that could not be cast (None if all did).

    Arrow casts a whole array or nothing; only when that fails is each value tried alone.
    """
    if values.type == target:
        return values, None
    try:
        return pc.cast(values, target), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    cast: list[Any] = []
    failed: list[bool] = []
    for value in values:
        try:
            cast.append(pc.cast(pa.array([value.as_py()], values.type), target)[0].as_py())
            failed.append(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            cast.append(None)
            failed.append(True)
    return pa.array(cast, target), pa.array(failed, pa.bool_())


def _set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    index = table.schema.get_field_index(name)
    if index < 0:
        return table.append_column(name, values)
    return table.set_column(index, name, values)


def cast_failed_reason(column: str, value: Any, target: object) -> str:
    """The `cast_failed` reason for one value: the column, the value (its repr, cut to
    MAX_VALUE_CHARS with its full length said) and the target type."""
    shown = repr(value)
    if len(shown) > MAX_VALUE_CHARS:
        length = len(value) if isinstance(value, str | bytes) else len(shown)
        shown = f"{shown[:MAX_VALUE_CHARS]}… ({length} characters)"
    return f"{column}: value {shown} cannot be cast to {target}"


def _cast_column(
    table: pa.Table, name: str, values: pa.Array, target: pa.DataType, quarantine: _Quarantine
) -> pa.Table:
    cast, failed = _try_cast(values, target)
    table = _set_column(table, name, cast)
    if failed is not None:
        rows = table.column(ROW_COLUMN).filter(failed).to_pylist()
        bad_values = values.filter(failed).to_pylist()
        reasons = {
            row: cast_failed_reason(name, value, target)
            for row, value in zip(rows, bad_values, strict=True)
        }
        table = quarantine.rows(table, failed, CAST_FAILED, name, reasons.__getitem__)
    return table


class _LookupIndex:
    """One lookup join, prepared once: the key set and the columns to bring in."""

    def __init__(self, lookup: LookupJoin, table: pa.Table) -> None:
        self.lookup = lookup
        self.keys = table.column(lookup.key).combine_chunks()
        self.columns = [
            (f"{lookup.prefix}{c}", table.column(c).combine_chunks()) for c in lookup.columns
        ]

    def apply(self, table: pa.Table) -> pa.Table:
        on = table.column(self.lookup.column)
        if on.type != pa.string():
            on = pc.cast(on, pa.string())
        # index_in keeps the data's row order and count: null (no match, null key) → null values
        positions = pc.index_in(on, value_set=self.keys)
        for name, values in self.columns:
            table = _set_column(table, name, values.take(positions))
        return table


def _needed_derived(contract: DatasetContract) -> list[DerivedColumn]:
    """The derived columns whose value reaches the output, directly or through a later step.

    A derived column that is dropped and never used (orders' `currency_code`) is not computed.
    Casts of such a column still run, so a failing cast quarantines the row either way.
    """
    spec = contract.transform
    used = {lk.column for lk in spec.lookups} | set(spec.casts)
    needed: list[DerivedColumn] = []
    for derived in reversed(spec.derived):
        if derived.name not in spec.drop or derived.name in used or derived.type is not None:
            needed.append(derived)
            used.update(a for a in derived.args if isinstance(a, str))
    return list(reversed(needed))


def _transform_chunk(
    table: pa.Table,
    contract: DatasetContract,
    lookups: list[_LookupIndex],
    quarantine: _Quarantine,
) -> pa.Table:
    spec = contract.transform
    for derived in _needed_derived(contract):
        values = compute_derived(derived, table, table.num_rows)
        if derived.type is not None:
            table = _cast_column(table, derived.name, values, arrow_type(derived.type), quarantine)
        else:
            table = _set_column(table, derived.name, values)
    for index in lookups:
        table = index.apply(table)
    for name, column_type in spec.casts.items():
        column = one_array(table.column(name))
        table = _cast_column(table, name, column, arrow_type(column_type), quarantine)
    return table


class _Out:
    """The bucket's transformed IPC stream, opened with its first row.

    Its bodies are not compressed (validate's staged files are, with lz4). Measured on the
    transformed rows of 1M orders rows, one CPU: uncompressed 126 MB, written in 0.05 CPU s
    and read by output in 0.01; lz4 71 MB in 0.18 and 0.05; zstd 42 MB in 0.34 and 0.15. lz4
    would add ~15% to transform's and output's CPU together to save 55 MB of staging per
    1M rows: no transfer charge within a region, about seven 8 MiB parts each way fewer.
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self.sink: pa.NativeFile | None = None
        self.writer: pa.ipc.RecordBatchStreamWriter | None = None

    def conform(self, table: pa.Table) -> pa.Table:
        """`table` with the stream's columns, in its order and types (any thread)."""
        return table.select(self.schema.names).cast(self.schema)

    def write(self, table: pa.Table) -> None:
        """Append `table` (conformed) to the stream."""
        if table.num_rows == 0:
            return
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.sink = pa.OSFile(str(self.path), "wb")
            self.writer = pa.ipc.new_stream(self.sink, self.schema)
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.sink is not None:
            self.sink.close()


def transform_bucket(
    inputs: Sequence[Path],
    contract: DatasetContract,
    out_path: Path,
    *,
    lookups: Mapping[str, pa.Table],
    quarantine_path: Path,
) -> TransformResult:
    """Dedupe and transform one bucket's validated rows into one Arrow IPC stream at `out_path`.

    `inputs`: the bucket's validated IPC stream files, in partition order. `lookups`: from
    `load_lookups`. Duplicates of the primary key (when `transform.dedupe`) and rows that fail a
    cast are written to `quarantine_path` (JSONL, unless the contract's policy is `skip`).
    Returns the counts; `staged` is None when no row survived. Raises ValueError when an input
    lacks a staged column or a derived column does not fit the contract.
    """
    schema = transformed_schema(contract)
    source_columns = [*contract_schema(contract).names, ROW_COLUMN, OFFSET_COLUMN]
    key_columns = list(contract.primary_key)
    threads = transform_threads(sum(path.stat().st_size for path in inputs))
    deduper: _Deduper | None = None
    if contract.transform.dedupe and key_columns:
        candidates = _candidate_rows(inputs, key_columns, threads)
        if candidates is not None:
            deduper = _Deduper(key_columns, candidates)
    indexes = [_LookupIndex(lk, lookups[lk.table]) for lk in contract.transform.lookups]
    key_label = ",".join(key_columns)

    def duplicate_reason(global_row: int) -> str:
        # On a pool thread while the caller marks later chunks: this chunk's entries were set
        # before it was handed over, and a dict read is atomic.
        assert deduper is not None
        first = deduper.winner_of[global_row]
        return (
            f"{key_label} repeats row {first & _ROW_MASK} of partition {first >> PARTITION_SHIFT}"
        )

    rows_in = 0
    last_row = -1
    out = _Out(out_path, schema)
    keep_raw = contract.quarantine.policy != "skip"
    with QuarantineWriter(quarantine_path, keep_raw=keep_raw) as qwriter:

        def prepare(job: tuple[pa.Table, pa.Array | None]) -> tuple[_Quarantine, pa.Table]:
            """Split off a chunk's duplicates and transform the other rows: their quarantine
            records and the rows to write (on a pool thread when there are two)."""
            chunk, losers = job
            quarantine = _Quarantine(keep_raw)
            if losers is not None:
                duplicates, chunk = _split(chunk, losers)
                quarantine.write(duplicates, DUPLICATE_PRIMARY_KEY, key_label, duplicate_reason)
            table = _transform_chunk(chunk, contract, indexes, quarantine)
            return quarantine, out.conform(table)

        def jobs() -> Iterator[tuple[pa.Table, pa.Array | None]]:
            """Each chunk with its duplicates marked, in input order (on the caller's thread:
            the first copy of a key is the first one this loop sees)."""
            nonlocal rows_in, last_row
            for chunk in _chunks(inputs, source_columns):
                rows_in += chunk.num_rows
                last_row = _check_order(chunk, last_row)
                yield chunk, (deduper.losers(chunk) if deduper is not None else None)

        try:
            # Chunks are prepared `threads` at a time; their records and rows are written here,
            # chunk after chunk in input order, so the outputs are those of one thread.
            for held, table in map_ahead(prepare, jobs(), threads, name="sluice-transform"):
                qwriter.write_block(held.reasons, held.lines)
                out.write(table)
        finally:
            out.close()
        rows_quarantined = qwriter.count
        reasons = dict(qwriter.reasons)
        written = qwriter.written
    wrote = out.writer is not None
    if not wrote:
        out_path.unlink(missing_ok=True)
    # a warm Lambda runs the next bucket in this process: hand freed pages back (see output.py)
    pa.default_memory_pool().release_unused()
    return TransformResult(
        rows_in=rows_in,
        rows_out=out.rows,
        rows_quarantined=rows_quarantined,
        staged=out_path if wrote else None,
        quarantine_path=quarantine_path if written else None,
        reasons=reasons,
    )
