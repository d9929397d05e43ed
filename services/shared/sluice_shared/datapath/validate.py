"""Validate a raw CSV/JSONL object (optionally gzip) against its data contract, streaming.

The object is read in bounded blocks cut on record ends; each block is parsed by pyarrow, checked
with vectorised kernels (`checks.py`), its bad rows appended to the partition's quarantine file
and its valid rows appended, typed, to Arrow IPC stream files, one per hash bucket of the primary
key. Memory stays flat for any file size.

File-level rejections (reason codes): `key_too_long`, `file_too_large`, `corrupt_gzip`,
`decompression_ratio_exceeded`, `empty_file`, `no_data_rows`, `header_mismatch`,
`bad_rows_not_allowed` (policy "fail"), `bad_row_ratio_exceeded`. A rejected file stages
nothing (any staged file is removed) and counts every row as quarantined; its quarantine file,
if any bad row was seen, is kept as evidence.

The bad-row ratio is judged per call: for a file split into byte ranges, each range is judged
on its own rows, and the caller reconciling the ranges judges the whole file. Under policy
"fail" reading stops at the first bad row, so `rows_in` then counts the rows read so far.

Rows: numbered from 1 within the partition (a CSV header and blank lines are not rows); CSV
values are compared and typed exactly as written (no trimming); null markers are exact matches
from the contract (per column, else per dataset; JSONL: applied to JSON strings, and JSON null
or a missing key is null). JSON values must already have the column's JSON type (the string
"12" is a `type_mismatch` for an int64 column; a JSON integer is fine for a float64 column).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import itertools
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from sluice_shared.datapath import checks
from sluice_shared.datapath.ahead import BackgroundWriter, usable_cpus
from sluice_shared.datapath.blocks import (
    UTF8_BOM,
    Block,
    OversizeRecord,
    SourceError,
    first_record_end,
    is_gzip,
    iter_blocks,
    read_gzip,
    read_plain,
)
from sluice_shared.datapath.buckets import assign_buckets
from sluice_shared.datapath.quarantine import QuarantineRecord, QuarantineWriter, encode_record
from sluice_shared.datapath.readers import (
    RECORD_TOO_LARGE,
    ParsedBlock,
    int64_view,
    parse_csv_block,
    parse_jsonl_block,
)
from sluice_shared.datapath.schema import PARTITION_SHIFT, staged_schema

if TYPE_CHECKING:
    from collections.abc import Iterator

    from contracts.datasets import DatasetContract
    from sluice_shared.limits import Limits

# Measured with 1M orders rows (84 MB) on the 2-core dev box, CPU seconds: 1 MiB blocks 1.16,
# 2 MiB 1.15, 4 MiB 1.09, 8 MiB 1.07, 16 MiB 1.13. 4 MiB keeps memory small at no real cost.
BLOCK_BYTES = 4 << 20
# Staged IPC body compression. Same 1M rows, CPU / staged bytes: none 1.45 s / 110 MB, lz4
# 1.55 s / 60 MB, zstd 1.60 s / 35 MB. On a 200 MB file, peak RSS: none 230 MB, lz4 256 MB,
# zstd 303 MB with threaded compression (242 MB without, but then the second core idles). lz4
# halves the bytes staged through S3 and keeps the peak well under the 300 MB budget.
STAGED_COMPRESSION: str | None = "lz4"
# On one CPU a batch's buffers are compressed on Arrow's CPU pool; on two, on the staging
# threads (`STAGE_QUEUE_DEPTH`).
STAGED_WRITE_THREADS = True
# Blocks parsed and checked at once on a process with two or more CPUs (`usable_cpus`: a Lambda
# function from 3,538 MB). pyarrow's CSV reader and compute kernels release the GIL, so a
# second thread parses and checks the next block while this one stages and quarantines the
# current; blocks are still staged and quarantined in file order, so the output is the same.
CHECK_THREADS = 2
# The block size when blocks are checked on threads. 5M orders rows (421 MB, one bucket), two
# CPUs, validate alone in a fresh process, whole-process medians of alternating runs
# (2026-12-07): 3 MiB against 2 MiB (8 pairs) 2.98 s / 204 MB peak RSS against 3.21 s / 176 MB;
# 4 MiB against 3 MiB (6 pairs) 3.02 s / 221 MB against 3.02 s / 203 MB.
THREADED_BLOCK_BYTES = 3 << 20
# Staged batches handed to the staging threads and not yet written. On two CPUs the thread that
# stages blocks in file order used to wait for each batch's compression on Arrow's pool, and
# the check threads for it: writing behind took validate of those 5M rows from 3.51 to 3.21 s
# (2 MiB blocks, medians of 8 paired runs) and its peak RSS from 191 to 175 MB.
STAGE_QUEUE_DEPTH = 2
# Plain inputs up to this size are checked on the caller's thread: they are one block, and
# starting threads for a small file (the common case on the real-time path) costs more than
# nothing.
INLINE_BYTES = 1 << 20


def check_threads(input_bytes: int | None = None) -> int:
    """Threads that parse and check blocks: `CHECK_THREADS`, at most the CPUs this process may
    run on (1 = all on the caller's thread, as on a one-vCPU function, and for plain inputs of
    `input_bytes` up to `INLINE_BYTES`; None = not known, e.g. gzip)."""
    if input_bytes is not None and input_bytes <= INLINE_BYTES:
        return 1
    return max(1, min(CHECK_THREADS, usable_cpus()))


@dataclass(frozen=True)
class FileRejection:
    """Why a whole file was rejected: a stable `reason_code` and a sentence for people."""

    reason_code: str
    reason: str


@dataclass(frozen=True)
class ValidateResult:
    """What validating one file (or one byte range of it) produced.

    rows_in = rows_valid + rows_quarantined. `bytes_in` counts decompressed bytes read.
    `staged` maps each non-empty bucket to its Arrow IPC stream file; `quarantine_path` is the
    partition's quarantine JSONL, or None when nothing was written there.
    """

    rows_in: int
    rows_valid: int
    rows_quarantined: int
    bytes_in: int
    reasons: dict[str, int]
    staged: dict[int, Path]
    quarantine_path: Path | None
    rejection: FileRejection | None


class _Rejected(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.rejection = FileRejection(code, reason)


class _Stager:
    """One Arrow IPC stream writer per non-empty bucket, opened on its first row.

    With `write_behind` (blocks checked on threads) each bucket's batches are compressed and
    written on writer threads, in the order given, at most `STAGE_QUEUE_DEPTH` + 1 at a time:
    the thread that stages blocks in file order only hands them over, and goes on to the next
    block while they are written."""

    def __init__(
        self,
        out_dir: Path,
        partition: int,
        schema: pa.Schema,
        bucket_count: int,
        key_columns: list[str],
    ) -> None:
        self.out_dir = out_dir
        self.partition = partition
        self.schema = schema
        self.bucket_count = bucket_count
        self.key_columns = key_columns
        self.paths: dict[int, Path] = {}
        self._writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        self._options = pa.ipc.IpcWriteOptions(
            compression=STAGED_COMPRESSION, use_threads=STAGED_WRITE_THREADS
        )
        self._behind = BackgroundWriter(inline=True)

    def write_behind(self, threads: int) -> None:
        """From now on, compress and write on `threads` threads of their own (the files of two
        buckets at once; each file's batches in order), not on the caller's or Arrow's pool."""
        self._behind = BackgroundWriter(
            threads=min(threads, self.bucket_count), depth=STAGE_QUEUE_DEPTH, name="sluice-stage"
        )
        self._options = pa.ipc.IpcWriteOptions(compression=STAGED_COMPRESSION, use_threads=False)

    def _writer(self, bucket: int) -> pa.ipc.RecordBatchStreamWriter:
        writer = self._writers.get(bucket)
        if writer is None:
            path = self.out_dir / f"p{self.partition:05d}-b{bucket:04d}.arrow"
            writer = pa.ipc.new_stream(str(path), self.schema, options=self._options)
            self._writers[bucket] = writer
            self.paths[bucket] = path
        return writer

    def write(self, batch: pa.RecordBatch, buckets: pa.Array | None = None) -> None:
        """Append `batch` to its buckets' files (`buckets`: each row's, when already known)."""
        if batch.num_rows == 0:
            return
        if self.bucket_count == 1:
            self._write(0, batch)
            return
        if buckets is None:
            buckets = assign_buckets(batch, self.key_columns, self.bucket_count)
        for bucket in pc.unique(buckets).to_pylist():
            part = batch.filter(pc.equal(buckets, pa.scalar(bucket, buckets.type)))
            self._write(int(bucket), part)

    def _write(self, bucket: int, part: pa.RecordBatch) -> None:
        self._writer(bucket)  # opened here: only this thread changes the dicts
        self._behind.submit(str(bucket), functools.partial(self._append, bucket, part))

    def _append(self, bucket: int, part: pa.RecordBatch) -> None:
        self._writers[bucket].write_batch(part)

    def close(self) -> None:
        """Write what is handed over and close every file; raises a write's error."""
        try:
            self._behind.finish()
        finally:
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()

    def discard(self) -> None:
        with contextlib.suppress(Exception):  # the error that made the file go is the one raised
            self.close()
        for path in self.paths.values():
            path.unlink(missing_ok=True)
        self.paths.clear()


@dataclass
class _Counts:
    rows_in: int = 0
    rows_valid: int = 0
    bytes_in: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A parsed block, its checks (None when it holds no record) and its bad-row mask, and its
    valid rows ready to stage: their block record indices, typed columns (contract order),
    absolute byte offsets and buckets (None with one bucket)."""

    parsed: ParsedBlock
    checked: checks.CheckedBlock | None
    bad_mask: pa.BooleanArray | None
    rows: pa.Array | None = None
    columns: list[pa.Array] = field(default_factory=list)
    offsets: pa.Array | None = None
    buckets: pa.Array | None = None


def _raw_text(data: bytes) -> str:
    return data.rstrip(b"\r\n").decode("utf-8", "backslashreplace")


class _FileValidator:
    def __init__(
        self,
        src: Path,
        contract: DatasetContract,
        out_dir: Path,
        limits: Limits,
        key: str,
        bucket_count: int,
        partition: int,
        byte_range: tuple[int, int] | None,
    ) -> None:
        self.src = src
        self.contract = contract
        self.limits = limits
        self.key = key
        self.partition = partition
        self.byte_range = byte_range
        self.counts = _Counts()
        self.is_csv = contract.format.kind == "csv"
        self.names = [c.name for c in contract.columns]
        self.schema = staged_schema(contract)
        self.typed_schema = pa.schema([self.schema.field(name) for name in self.names])
        self.quarantine = QuarantineWriter(
            out_dir / f"p{partition:05d}.quarantine.jsonl",
            keep_raw=contract.quarantine.policy != "skip",
        )
        self.stager = _Stager(
            out_dir, partition, self.schema, bucket_count, list(contract.primary_key)
        )
        self.row_base = 0  # rows of this partition before the current block
        self.fail_fast = contract.quarantine.policy == "fail"
        self.threads = 1  # decided by `run`, from the input's size
        self.block_bytes = BLOCK_BYTES

    # ------------------------------------------------------------------ reading

    def _plain_bytes(self) -> int | None:
        """Bytes this call reads from a plain (not gzip) object; None for gzip."""
        if is_gzip(self.src, self.key, self.contract.format.compression):
            return None
        start, end = self.byte_range or (0, self.src.stat().st_size)
        return end - start

    def _chunks(self) -> Iterator[bytes]:
        size = self.src.stat().st_size
        gz = is_gzip(self.src, self.key, self.contract.format.compression)
        with self.src.open("rb") as fh:
            if gz:
                if self.byte_range is not None and self.byte_range != (0, size):
                    raise ValueError("a gzip object cannot be read by byte range")
                stream = read_gzip(
                    fh,
                    size,
                    self.limits.max_decompression_ratio,
                    self.limits.max_file_bytes,
                    self.block_bytes,
                )
            else:
                start, end = self.byte_range or (0, size)
                stream = read_plain(fh, start, end, self.block_bytes)
            for chunk in stream:
                self.counts.bytes_in += len(chunk)
                yield chunk

    def _blocks(self) -> Iterator[Block | OversizeRecord]:
        start = self.byte_range[0] if self.byte_range else 0
        chunks = self._chunks()
        if start == 0:
            first = b""
            for chunk in chunks:
                first += chunk
                if len(first) >= len(UTF8_BOM):
                    break
            if first.startswith(UTF8_BOM):
                first = first[len(UTF8_BOM) :]
                start = len(UTF8_BOM)
            chunks = _prepend(first, chunks)
        quote = self.contract.format.quote_char.encode() if self.is_csv else None
        return iter_blocks(
            chunks,
            offset=start,
            quote=quote,
            block_bytes=self.block_bytes,
            max_record_bytes=self.limits.max_record_bytes,
        )

    # ------------------------------------------------------------------ checks

    def _check_header(self, blocks: Iterator[Block | OversizeRecord]) -> Block | None:
        """Consume the header record; return the rest of its block (None when nothing follows)."""
        first = next(blocks, None)
        if first is None:
            raise _Rejected("empty_file", "the file is empty")
        if isinstance(first, OversizeRecord):
            raise _Rejected(
                "header_mismatch",
                f"the header record is larger than {self.limits.max_record_bytes} bytes",
            )
        quote = self.contract.format.quote_char.encode()
        end, _ = first_record_end(first.data, quote, 0)
        end = len(first.data) if end < 0 else end
        raw = first.data[:end]
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise _Rejected("header_mismatch", "the header is not valid UTF-8") from None
        if not text.strip():
            raise _Rejected("empty_file", "the file has no header and no rows")
        fmt = self.contract.format
        try:
            header = next(
                csv.reader(io.StringIO(text), delimiter=fmt.delimiter, quotechar=fmt.quote_char)
            )
        except csv.Error as bad:
            # e.g. a bare CR inside the header record (found by fuzzing): reject, never crash.
            raise _Rejected("header_mismatch", f"the header is not a CSV record: {bad}") from None
        if header != self.names:
            raise _Rejected("header_mismatch", self._header_problem(header))
        rest = first.data[end:]
        return Block(rest, first.offset + end) if rest else None

    def _header_problem(self, header: list[str]) -> str:
        expected = set(self.names)
        found = set(header)
        missing = [n for n in self.names if n not in found]
        unexpected = [n for n in header if n not in expected]
        parts = []
        if missing:
            parts.append("missing columns: " + ", ".join(missing))
        if unexpected:
            parts.append("unexpected columns: " + ", ".join(unexpected))
        if len(header) == 1 and len(self.names) > 1:
            for other in (";", "\t", "|", ","):
                if other != self.contract.format.delimiter and other in header[0]:
                    parts.append(
                        f"the header looks {other!r}-delimited, the contract says "
                        f"{self.contract.format.delimiter!r}"
                    )
                    break
        if not parts:
            if len(header) != len(set(header)):
                parts.append("duplicate column names")
            else:
                parts.append(
                    "columns are in a different order than the contract: " + ", ".join(self.names)
                )
        return "header does not match the contract: " + "; ".join(parts)

    def _quarantine(
        self, row_number: int, offset: int, code: str, reason: str, column: str | None, raw: str
    ) -> None:
        self.quarantine.write(
            QuarantineRecord(
                row_number=row_number,
                byte_offset=offset,
                reason_code=code,
                reason=reason,
                column=column,
                raw_record=raw,
                partition=self.partition,
            )
        )
        if self.fail_fast:
            raise _Rejected(
                "bad_rows_not_allowed",
                f"row {row_number} is invalid ({code}: {reason}) and the contract's policy is fail",
            )

    def _oversize(self, record: OversizeRecord) -> None:
        self.counts.rows_in += 1
        self.row_base += 1
        self._quarantine(
            self.row_base,
            record.offset,
            RECORD_TOO_LARGE,
            f"record of {record.size} bytes exceeds the limit of "
            f"{self.limits.max_record_bytes} bytes",
            None,
            _raw_text(record.head),
        )

    def _parse(self, block: Block) -> ParsedBlock:
        if self.is_csv:
            return parse_csv_block(
                block.data,
                block.offset,
                self.contract,
                max_record_bytes=self.limits.max_record_bytes,
                quotes=block.quotes,
            )
        return parse_jsonl_block(
            block.data,
            block.offset,
            self.contract,
            max_record_bytes=self.limits.max_record_bytes,
            max_depth=self.limits.max_json_depth,
        )

    def _check(self, block: Block) -> _Checked:
        """Parse and check one block: no state of the file is read or changed (so blocks can
        be checked on other threads)."""
        parsed = self._parse(block)
        if len(parsed.bounds) == 0:
            return _Checked(parsed, None, None)
        checked = checks.check_block(
            self.contract,
            parsed.columns,
            max_field_bytes=self.limits.max_field_bytes,
            check_field_size=parsed.max_record_bytes > self.limits.max_field_bytes,
        )
        bad_mask = checked.bad_mask(len(parsed.rows))
        # The valid rows' columns, offsets and buckets are computed here too (on a check
        # thread when there are two): only their row numbers depend on the blocks before.
        rows = parsed.rows
        columns = [checked.typed[name] for name in self.names]
        if bad_mask is not None:
            good = pc.invert(bad_mask)
            rows = pc.filter(rows, good)
            columns = [pc.filter(column, good) for column in columns]
        offsets = pc.add(pc.take(parsed.bounds.starts, rows), block.offset)
        buckets = None
        if self.stager.bucket_count > 1 and len(rows):
            keys = pa.RecordBatch.from_arrays(columns, schema=self.typed_schema)
            buckets = assign_buckets(keys, self.stager.key_columns, self.stager.bucket_count)
        return _Checked(parsed, checked, bad_mask, rows, columns, offsets, buckets)

    def _block(self, block: Block, done: _Checked | None = None) -> None:
        """Quarantine the bad rows of a checked block and stage its valid rows, in file order."""
        done = done or self._check(block)
        parsed, checked, bad_mask = done.parsed, done.checked, done.bad_mask
        n_records = len(parsed.bounds)
        if n_records == 0 or checked is None:
            return
        if parsed.bad or bad_mask is not None:
            self._quarantine_block(block, parsed, checked, bad_mask)
        rows = done.rows
        assert rows is not None
        self.counts.rows_in += n_records
        if len(rows):
            numbers = pc.add(rows, (self.partition << PARTITION_SHIFT) + self.row_base + 1)
            arrays = [*done.columns, numbers, done.offsets]
            batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
            self.stager.write(batch, done.buckets)
            self.counts.rows_valid += len(rows)
        self.row_base += n_records

    def _quarantine_block(
        self,
        block: Block,
        parsed: ParsedBlock,
        checked: checks.CheckedBlock,
        bad_mask: pa.BooleanArray | None,
    ) -> None:
        entries: list[tuple[int, str, str, str | None]] = [
            (b.index, b.code, b.reason, b.column) for b in parsed.bad
        ]
        if bad_mask is not None:
            positions = pc.indices_nonzero(bad_mask)
            indices = pc.take(parsed.rows, positions).to_pylist()
            # Each bad row's first failure: from the rows each check failed (a few per block),
            # not a value per bad row of every check.
            first: dict[int, int] = {}
            for k, f in enumerate(checked.failures):
                for position in int64_view(pc.indices_nonzero(f.mask)):
                    first.setdefault(position, k)
            values: dict[str, list[object]] = {}
            for j, (index, position) in enumerate(zip(indices, int64_view(positions), strict=True)):
                failure = checked.failures[first[position]]
                name = failure.column.name
                if name not in values:
                    values[name] = parsed.columns[name].take(positions).to_pylist()
                reason = checks.reason_text(
                    failure.code,
                    failure.column,
                    values[name][j],
                    max_field_bytes=self.limits.max_field_bytes,
                )
                entries.append((index, failure.code, reason, name))
            entries.sort(key=lambda e: e[0])
        # Offsets read through a buffer view: a pyarrow scalar per value costs ~1 us each.
        starts = int64_view(parsed.bounds.starts)
        ends = int64_view(parsed.bounds.ends)
        first_row = self.row_base + 1
        if self.fail_fast:  # stops at the first
            for index, code, reason, column in entries:
                start = starts[index]
                raw = _raw_text(block.data[start : ends[index]])
                self._quarantine(first_row + index, block.offset + start, code, reason, column, raw)
            return
        # The block's records in one write, encoded without a record object each.
        lines: list[bytes] = []
        if self.quarantine.keep_raw:
            data, offset, partition = block.data, block.offset, self.partition
            lines = [
                encode_record(
                    first_row + index,
                    partition,
                    offset + starts[index],
                    code,
                    reason,
                    column,
                    _raw_text(data[starts[index] : ends[index]]),
                )
                for index, code, reason, column in entries
            ]
        self.quarantine.write_block(Counter(entry[1] for entry in entries), lines)

    # ------------------------------------------------------------------ driver

    def run(self) -> None:
        if len(self.key) > self.limits.max_key_length:
            raise _Rejected(
                "key_too_long",
                f"object key of {len(self.key)} characters exceeds the limit of "
                f"{self.limits.max_key_length}",
            )
        size = self.src.stat().st_size
        if size > self.limits.max_file_bytes:
            raise _Rejected(
                "file_too_large",
                f"object of {size} bytes exceeds the limit of {self.limits.max_file_bytes} bytes",
            )
        self.threads = check_threads(self._plain_bytes())
        if self.threads > 1:
            self.block_bytes = min(BLOCK_BYTES, THREADED_BLOCK_BYTES)
            self.stager.write_behind(self.threads)
        try:
            self._run_blocks()
        except SourceError as exc:
            raise _Rejected(exc.code, exc.reason) from None
        self._judge()

    def _run_blocks(self) -> None:
        blocks = self._blocks()
        starts_file = self.byte_range is None or self.byte_range[0] == 0
        has_header = self.is_csv and self.contract.format.header and starts_file
        if has_header:
            rest = self._check_header(blocks)
            if rest is not None:
                if self.threads == 1:
                    self._block(rest)
                else:  # checked on the pool too, beside the next block
                    blocks = itertools.chain([rest], blocks)
        if self.threads == 1:
            for item in blocks:
                if isinstance(item, OversizeRecord):
                    self._oversize(item)
                else:
                    self._block(item)
        else:
            self._run_blocks_threaded(blocks, self.threads)
        if self.counts.rows_in == 0:
            if has_header:
                raise _Rejected("no_data_rows", "the file has a header but no data rows")
            raise _Rejected("empty_file", "the file has no records")

    def _run_blocks_threaded(self, blocks: Iterator[Block | OversizeRecord], threads: int) -> None:
        """Check up to `threads` blocks ahead on a pool while this thread finishes them in
        order: memory holds at most `threads` parsed blocks more than the sequential loop."""
        window: deque[tuple[Block | OversizeRecord, Future[_Checked] | None]] = deque()

        def finish() -> None:
            item, future = window.popleft()
            if future is None:
                assert isinstance(item, OversizeRecord)
                self._oversize(item)
            else:
                assert isinstance(item, Block)
                self._block(item, future.result())

        with ThreadPoolExecutor(threads, thread_name_prefix="sluice-check") as pool:
            try:
                for item in blocks:
                    future = (
                        None if isinstance(item, OversizeRecord) else pool.submit(self._check, item)
                    )
                    window.append((item, future))
                    if len(window) >= threads:
                        finish()
                while window:
                    finish()
            finally:
                for _, future in window:  # a rejection stops the file: drop the checks ahead
                    if future is not None:
                        future.cancel()

    def _judge(self) -> None:
        bad = self.quarantine.count
        rows = self.counts.rows_in
        limit = self.contract.quarantine.max_bad_ratio
        if bad and bad / rows > limit:
            raise _Rejected(
                "bad_row_ratio_exceeded",
                f"{bad} of {rows} rows are invalid ({bad / rows:.1%}), above the contract's "
                f"maximum of {limit:.1%}",
            )


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def validate_file(
    src: Path,
    contract: DatasetContract,
    out_dir: Path,
    *,
    limits: Limits,
    key: str = "",
    bucket_count: int = 1,
    partition: int = 0,
    byte_range: tuple[int, int] | None = None,
) -> ValidateResult:
    """Validate the local file `src` (or bytes [start, end) of it) against `contract`.

    Valid rows are staged at `out_dir/p<partition:05d>-b<bucket:04d>.arrow` (Arrow IPC stream,
    `staged_schema(contract)`: typed columns, `__row` = global_row(partition, row number),
    `__offset` = absolute byte offset of the record in the decompressed stream), hashed on the
    primary key into `bucket_count` buckets. Bad rows go to `out_dir/p<partition:05d>.quarantine
    .jsonl` (raw records omitted under policy "skip"). Rows are numbered from 1 within the
    partition; a CSV header is read only by the range starting at byte 0, other ranges take the
    column names from the contract. `key` (the object key) picks gzip by its suffix when the
    contract's compression is "auto" and is checked against `limits.max_key_length`.

    Returns a ValidateResult; a file-level problem is a `rejection` in it, not an exception.
    Raises ValueError for a byte range of a gzip file, OSError when `src` cannot be read.
    """
    if bucket_count < 1:
        raise ValueError("bucket_count must be at least 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    job = _FileValidator(src, contract, out_dir, limits, key, bucket_count, partition, byte_range)
    rejection: FileRejection | None = None
    try:
        job.run()
    except _Rejected as exc:
        rejection = exc.rejection
    except BaseException:
        job.stager.discard()
        raise
    finally:
        job.quarantine.close()
    counts = job.counts
    reasons = dict(job.quarantine.reasons)
    quarantine_path = job.quarantine.path if job.quarantine.written else None
    if rejection is not None:
        job.stager.discard()
        return ValidateResult(
            rows_in=counts.rows_in,
            rows_valid=0,
            rows_quarantined=counts.rows_in,
            bytes_in=counts.bytes_in,
            reasons=reasons,
            staged={},
            quarantine_path=quarantine_path,
            rejection=rejection,
        )
    try:
        job.stager.close()  # raises an error of a write still in flight
    except BaseException:
        job.stager.discard()
        raise
    return ValidateResult(
        rows_in=counts.rows_in,
        rows_valid=counts.rows_valid,
        rows_quarantined=job.quarantine.count,
        bytes_in=counts.bytes_in,
        reasons=reasons,
        staged=dict(job.stager.paths),
        quarantine_path=quarantine_path,
        rejection=None,
    )
