"""Parsing blocks of whole records (CSV or JSON Lines) into raw column values.

The good path is one pyarrow reader call per block; Python runs per record only for a block
that pyarrow cannot read as a whole (a malformed record, a mixed-type JSON value, invalid UTF-8,
an oversized record) and then only to find and set aside the records at fault.

Structural reason codes set here: `invalid_utf8`, `record_too_large`, `column_count`
(CSV), `invalid_json`, `not_an_object`, `too_deep`, `type_mismatch` (JSONL: a JSON value of the
wrong JSON type, e.g. the string "12" for an int64 column — JSON carries types, so they are
checked, never coerced).
"""

from __future__ import annotations

import bisect
import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson

from contracts.datasets import ColumnType, DatasetContract
from sluice_shared.datapath.blocks import (
    RecordBounds,
    arange,
    as_binary_array,
    record_bounds,
    split_lines,
)
from sluice_shared.datapath.schema import one_array

if TYPE_CHECKING:
    from collections.abc import Sequence

INVALID_UTF8 = "invalid_utf8"
RECORD_TOO_LARGE = "record_too_large"
COLUMN_COUNT = "column_count"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
TOO_DEEP = "too_deep"
TYPE_MISMATCH = "type_mismatch"


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record set aside before its values could be checked."""

    index: int  # record index within the block
    code: str
    reason: str
    column: str | None = None


@dataclass(slots=True)
class ParsedBlock:
    """Raw values of the parsed records of one block.

    `columns` maps each contract column to one value per parsed record; `rows` holds the block
    record index of each parsed record (ascending); `bad` lists the records set aside.
    """

    bounds: RecordBounds
    columns: dict[str, pa.Array]
    rows: pa.Int64Array
    bad: list[BadRecord] = field(default_factory=list)
    max_record_bytes: int = 0  # longest parsed record (lets callers skip field-size checks)


def _index_array(indices: Sequence[int]) -> pa.Int64Array:
    if isinstance(indices, range) and indices.start == 0 and indices.step == 1:
        return arange(len(indices))
    return pa.array(indices, pa.int64())


# Up to this share of a block's rows (1 in 64), a row mask is built from its indices in Python
# (~0.1 us per index); beyond it, with one hash lookup per row (`is_in` over `arange`, ~8 ns per
# row: 0.4 ms for 50k rows, which a block paid for every mask of a few bad rows).
_FEW_INDICES = 64


def index_mask(n: int, indices: pa.Int64Array | Sequence[int]) -> pa.BooleanArray:
    """A mask of `n` rows, True at `indices` (each in [0, n), repeats allowed)."""
    if len(indices) * _FEW_INDICES > n:
        values = indices if isinstance(indices, pa.Array) else pa.array(indices, pa.int64())
        return pc.is_in(arange(n), value_set=values)
    bits = bytearray((n + 7) >> 3)
    for i in int64_view(indices) if isinstance(indices, pa.Array) else indices:
        bits[i >> 3] |= 1 << (i & 7)  # Arrow's bitmaps are least significant bit first
    return pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(bits)])


_UTF8_WINDOW = 1 << 16


def _first_invalid_utf8(
    data: bytes, starts: Sequence[int], ends: _LineEnds | Sequence[int]
) -> dict[int, int]:
    """Record index -> offset (in `data`) of its first invalid UTF-8 byte.

    Decodes forward in bounded windows from one error to the next (skipping the rest of the
    faulty record), so the block is decoded about once however many records are faulty.
    """
    view = memoryview(data)
    found: dict[int, int] = {}
    pos = 0
    size = len(data)
    while pos < size:
        stop = min(size, pos + _UTF8_WINDOW)
        try:
            _, consumed = codecs.utf_8_decode(view[pos:stop], "strict", stop == size)
        except UnicodeDecodeError as exc:
            bad_at = pos + exc.start
            index = bisect.bisect_right(starts, bad_at) - 1
            found[index] = bad_at
            pos = max(ends[index], pos + 1)
            continue
        # A window may end inside a character: the decoder leaves those bytes for the next one.
        pos += consumed if consumed else 1
    return found


class _LineEnds:
    """Line i ends where line i + 1 starts (the last one at the end of the block)."""

    def __init__(self, starts: Sequence[int], size: int) -> None:
        self.starts = starts
        self.size = size

    def __getitem__(self, i: int) -> int:
        return self.starts[i + 1] if i + 1 < len(self.starts) else self.size


class _BlockBytes:
    """One block split into lines once, with its UTF-8 faults found once: both record cuts
    (lines, then quote parity) are screened from these facts."""

    def __init__(self, data: bytes, skeleton: tuple[bytes, bytes] | None = None) -> None:
        self.data = data
        self.split = split_lines(data, skeleton)
        try:
            _as_text(data)
            self.utf8_ok = True
        except pa.ArrowInvalid:
            self.utf8_ok = False
        self._faults: list[int] | None = None

    def utf8_faults(self) -> list[int]:
        """Ascending offsets of the first invalid UTF-8 byte of each line holding one.

        Decoding restarts after every "\\n" (an ASCII byte ends any character), so the first
        fault of a record spanning several lines is the first fault among its lines.
        """
        if self._faults is None:
            if self.utf8_ok:
                self._faults = []
            else:
                starts = int64_view(self.split.starts)
                ends = _LineEnds(starts, len(self.data))
                self._faults = sorted(_first_invalid_utf8(self.data, starts, ends).values())
        return self._faults


@dataclass(slots=True)
class _Screened:
    """A block with the records set aside by `_screen` left out."""

    data: bytes  # the whole block
    kept: pa.Int64Array  # block record index of each remaining record, ascending
    bad: list[BadRecord]
    longest: int  # longest remaining record
    dropped: list[tuple[int, int]]  # the byte ranges of the block left out, merged
    _clean: bytes | None = None

    @property
    def clean(self) -> bytes:
        """The block without the `dropped` ranges, copied once when first asked for (a CSV
        cut that is never read, or whose read is taken from another cut, never copies)."""
        if self._clean is None:
            self._clean = _without(self.data, self.dropped)
        return self._clean


def _screen(
    block: _BlockBytes, bounds: RecordBounds, base_offset: int, max_record_bytes: int
) -> _Screened:
    """Set aside records with invalid UTF-8 or over the size limit."""
    lengths = pc.subtract(bounds.ends, bounds.starts)
    n = len(bounds)
    longest = (pc.max(lengths).as_py() or 0) if n else 0
    if block.utf8_ok and longest <= max_record_bytes:
        return _Screened(block.data, arange(n), [], longest, [])
    starts = int64_view(bounds.starts)
    ends = int64_view(bounds.ends)
    bad: dict[int, BadRecord] = {}
    if longest > max_record_bytes:
        too_large = pc.indices_nonzero(pc.greater(lengths, max_record_bytes)).to_pylist()
        for i in too_large:
            size = ends[i] - starts[i]
            bad[i] = BadRecord(
                i,
                RECORD_TOO_LARGE,
                f"record of {size} bytes exceeds the limit of {max_record_bytes} bytes",
            )
        longest = pc.max(pc.filter(lengths, pc.less_equal(lengths, max_record_bytes))).as_py()
    for at in block.utf8_faults():
        i = bisect.bisect_right(starts, at) - 1
        if i not in bad:
            bad[i] = BadRecord(i, INVALID_UTF8, f"invalid UTF-8 at byte offset {base_offset + at}")
    excluded = sorted(bad)
    dropped = _dropped_ranges(block.data, starts, excluded)
    kept = pc.filter(arange(n), pc.invert(index_mask(n, excluded)))
    return _Screened(block.data, kept, [bad[i] for i in excluded], longest or 0, dropped)


def int64_view(values: pa.Int64Array) -> Sequence[int]:
    """The values of a null-free int64 array as a read-only sequence, without converting them
    (`to_pylist` costs ~20 ns per value; a block has ~50k records and a handful of lookups)."""
    if values.null_count:
        raise ValueError("an int64 view needs an array without nulls")
    words = memoryview(values.buffers()[1]).cast("q")
    return words[values.offset : values.offset + len(values)]


def _dropped_ranges(
    data: bytes, starts: Sequence[int], excluded: list[int]
) -> list[tuple[int, int]]:
    """The byte ranges (merged) of the records at the (sorted) indices `excluded`. A record runs
    to the next record's start (blank lines after it go with it); blank lines before the first
    record go too (as `_drop_records` does)."""
    n = len(starts)
    dropped: list[tuple[int, int]] = []
    if excluded and starts[0] > 0:
        dropped.append((0, starts[0]))
    for i in excluded:
        start = starts[i]
        end = starts[i + 1] if i + 1 < n else len(data)
        if dropped and dropped[-1][1] == start:
            dropped[-1] = (dropped[-1][0], end)
        else:
            dropped.append((start, end))
    return dropped


def _without(data: bytes, dropped: list[tuple[int, int]]) -> bytes:
    """`data` without the (sorted, merged) byte ranges `dropped`."""
    if not dropped:
        return data
    view = memoryview(data)  # slices of a view are not copies: the join copies once
    parts: list[memoryview] = []
    previous = 0
    for start, end in dropped:
        parts.append(view[previous:start])
        previous = end
    parts.append(view[previous:])
    return b"".join(parts)


def _drop_records(
    data: bytes, starts: list[int], ends: list[int], excluded: list[int]
) -> tuple[bytes, list[int]]:
    """`data` without the records at the (sorted) indices `excluded`, and the kept indices."""
    n = len(starts)
    if not excluded:
        return data, list(range(n))
    parts: list[bytes] = []
    kept: list[int] = []
    previous = 0
    for i in excluded:
        if previous < i:
            parts.append(data[starts[previous] : starts[i]])
            kept.extend(range(previous, i))
        previous = i + 1
    if previous < n:
        parts.append(data[starts[previous] :])
        kept.extend(range(previous, n))
    return b"".join(parts), kept


def _as_text(data: bytes) -> pa.Array:
    return as_binary_array(data).cast(pa.large_string())


# --------------------------------------------------------------------------------------- CSV


def _csv_read(
    data: bytes, names: list[str], delimiter: str, quote: str, newlines: bool
) -> tuple[pa.Table, list[tuple[int, int]]]:
    invalid: list[tuple[int, int]] = []

    def on_invalid(row: Any) -> str:
        invalid.append((row.number, row.actual_columns))
        return "skip"

    table = pcsv.read_csv(
        pa.BufferReader(data),
        read_options=pcsv.ReadOptions(
            column_names=names, use_threads=False, block_size=len(data) + 1
        ),
        parse_options=pcsv.ParseOptions(
            delimiter=delimiter,
            quote_char=quote,
            newlines_in_values=newlines,
            invalid_row_handler=on_invalid,
        ),
        convert_options=pcsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=False,
        ),
    )
    return table, invalid


def _csv_columns_one_by_one(
    data: bytes,
    bounds: RecordBounds,
    kept: Sequence[int],
    names: list[str],
    delimiter: str,
    quote: str,
) -> tuple[dict[str, list[str]], list[int], list[BadRecord]]:
    """Parse each record with the csv module: the slow path for blocks pyarrow mis-reads."""
    starts = bounds.starts.to_pylist()
    ends = bounds.ends.to_pylist()
    values: dict[str, list[str]] = {n: [] for n in names}
    rows: list[int] = []
    bad: list[BadRecord] = []
    for i in kept:
        text = data[starts[i] : ends[i]].decode("utf-8")
        try:
            fields = next(csv.reader(io.StringIO(text), delimiter=delimiter, quotechar=quote))
        except (csv.Error, StopIteration) as exc:
            bad.append(BadRecord(i, COLUMN_COUNT, f"malformed CSV record: {exc}"))
            continue
        if len(fields) != len(names):
            bad.append(
                BadRecord(i, COLUMN_COUNT, f"expected {len(names)} fields, found {len(fields)}")
            )
            continue
        rows.append(i)
        for n, v in zip(names, fields, strict=True):
            values[n].append(v)
    return values, rows, bad


def parse_csv_block(
    data: bytes,
    base_offset: int,
    contract: DatasetContract,
    *,
    max_record_bytes: int,
    quotes: bytes | None = None,
) -> ParsedBlock:
    """Parse a block of whole CSV records (no header) into string columns.

    `base_offset` is the absolute offset of `data` (used in reasons). Column order is the
    contract's. Never raises for bad content: faulty records come back in `bad`.

    Records are first taken to be lines (cheap); when pyarrow finds fewer rows than lines, some
    quoted value holds a newline and the records are re-cut by quote parity (the rule the block
    cutter and the byte-range splitter use). The block is split into lines and checked for
    UTF-8 once; when both cuts set aside the same bytes, the parsed table is kept and only the
    cut changes: the block is parsed once either way. `quotes`: the block's `quote_skeleton`
    when the block cutter made it (`Block.quotes`), so it is not made twice.
    """
    quote = contract.format.quote_char.encode()
    block = _BlockBytes(data, None if quotes is None else (quote, quotes))
    lines = block.split.bounds(None)
    attempt = _CsvAttempt(block, lines, base_offset, contract, max_record_bytes)
    if not _lines_cannot_be_rows(block, attempt, quote):
        attempt.read()
        parsed = attempt.result()
        if parsed is not None:
            return parsed
    records = block.split.bounds(quote)
    retry = _CsvAttempt(block, records, base_offset, contract, max_record_bytes, previous=attempt)
    retry.read()
    parsed = retry.result(exact=True)
    if parsed is None:  # cannot happen: the exact pass always decides
        raise AssertionError("CSV block left undecided")
    return parsed


_WITNESSES = 3  # lines tried as proof that the line cut cannot match pyarrow's rows


def _lines_cannot_be_rows(block: _BlockBytes, lines: _CsvAttempt, quote: bytes) -> bool:
    """Whether pyarrow's rows of the line cut's bytes are sure to be fewer than its lines, so
    reading them (to find that out) can be skipped.

    Without "\\r" in the block, pyarrow ends rows only at "\\n" and skips blank lines, so it
    finds one row per kept line exactly when no row runs over a non-blank kept line. A kept
    line that pyarrow, reading it alone, leaves inside a quoted value, with a non-blank kept
    line after it, proves one does: if every line before it was one row, it starts a row (the
    same reader on the same bytes from the same state) and swallows the start of the next one.
    Lines with an odd number of quotes are the candidates; when none proves it, the line cut
    is read as before.
    """
    data = block.data
    if b"\r" in data or quote not in data:
        return False
    counts = block.split.quote_counts(quote)
    odd = pc.indices_nonzero(pc.bit_wise_and(counts, 1))
    if not len(odd):
        return False
    starts = int64_view(block.split.starts)
    lengths = int64_view(block.split.lengths)
    dropped = lines.screened.dropped
    dropped_starts = [start for start, _ in dropped]
    tried = 0
    for i in int64_view(odd):
        start = starts[i]
        k = bisect.bisect_right(dropped_starts, start) - 1
        if k >= 0 and start < dropped[k][1]:
            continue  # set aside by the screen: not in the bytes pyarrow would read
        end = start + lengths[i] + 1
        if not _text_follows(data, end, dropped):
            # Swallowing only blank lines (or nothing) leaves the row count as it was.
            return False
        line = data[start:end]
        if _ends_inside_quotes(line, lines.names, lines.fmt.delimiter, lines.fmt.quote_char):
            return True
        tried += 1
        if tried == _WITNESSES:
            return False
    return False


def _text_follows(data: bytes, pos: int, dropped: list[tuple[int, int]]) -> bool:
    """Whether a byte other than "\\n" follows `pos` in `data` outside the `dropped` ranges."""
    for start, end in [*dropped, (len(data), len(data))]:
        if end <= pos:
            continue
        if start > pos and data.count(b"\n", pos, start) < start - pos:
            return True
        pos = max(pos, end)
    return False


def _ends_inside_quotes(line: bytes, names: list[str], delimiter: str, quote: str) -> bool:
    """Whether pyarrow, reading `line` (ending in "\\n") from a row start, is still inside a
    quoted value at its newline: then a record after it is swallowed into the same row."""
    if not line.endswith(b"\n"):
        return False
    try:
        table, invalid = _csv_read(line + b"x\n", names, delimiter, quote, newlines=True)
    except pa.ArrowInvalid:
        return False
    return bool(table.num_rows + len(invalid) < 2)


class _CsvAttempt:
    """One parse of a CSV block under one record cut (screened, then read by pyarrow).

    With `previous` (an attempt under another cut) that set aside the same bytes, its pyarrow
    result is reused: the reader sees identical bytes, so it would return the same table.
    """

    def __init__(
        self,
        block: _BlockBytes,
        bounds: RecordBounds,
        base_offset: int,
        contract: DatasetContract,
        max_record_bytes: int,
        previous: _CsvAttempt | None = None,
    ) -> None:
        fmt = contract.format
        self.data = block.data
        self.bounds = bounds
        self.fmt = fmt
        self.names = [c.name for c in contract.columns]
        self.screened = _screen(block, bounds, base_offset, max_record_bytes)
        self.kept = self.screened.kept
        self.table: pa.Table | None = None
        self.invalid: list[tuple[int, int]] = []
        self.was_read = False
        self.previous = previous

    def read(self) -> None:
        """Read the screened bytes with pyarrow (or take `previous`'s read of the same bytes)."""
        previous = self.previous
        self.was_read = True
        if (
            previous is not None
            and previous.was_read
            and previous.screened.dropped == self.screened.dropped
        ):
            self.table, self.invalid = previous.table, previous.invalid
        elif len(self.kept):
            clean = self.screened.clean
            fmt = self.fmt
            try:
                self.table, self.invalid = _csv_read(
                    clean,
                    self.names,
                    fmt.delimiter,
                    fmt.quote_char,
                    newlines=fmt.quote_char.encode() in clean,
                )
            except pa.ArrowInvalid:
                self.table = None

    def result(self, *, exact: bool = False) -> ParsedBlock | None:
        """The parsed block; None (unless `exact`) when pyarrow's rows disagree with the cut."""
        names = self.names
        kept = self.kept
        n = len(kept)
        bad = list(self.screened.bad)
        longest = self.screened.longest
        if n == 0:
            empty = {name: pa.array([], pa.string()) for name in names}
            return ParsedBlock(self.bounds, empty, _index_array([]), bad, 0)
        table = self.table
        if table is not None and table.num_rows + len(self.invalid) == n:
            columns = {name: one_array(table.column(name)) for name in names}
            if not self.invalid:
                return ParsedBlock(self.bounds, columns, kept, bad, longest)
            skipped = sorted(number - 1 for number, _ in self.invalid)
            for number, found in self.invalid:
                bad.append(
                    BadRecord(
                        kept[number - 1].as_py(),
                        COLUMN_COUNT,
                        f"expected {len(names)} fields, found {found}",
                    )
                )
            dropped = index_mask(n, skipped)
            rows = pc.filter(kept, pc.invert(dropped))
            bad.sort(key=lambda b: b.index)
            return ParsedBlock(self.bounds, columns, rows, bad, longest)
        if not exact:
            return None
        # pyarrow split the records differently (stray quotes): decide record by record.
        values, rows, more_bad = _csv_columns_one_by_one(
            self.data,
            self.bounds,
            kept.to_pylist(),
            names,
            self.fmt.delimiter,
            self.fmt.quote_char,
        )
        bad = sorted(bad + more_bad, key=lambda b: b.index)
        columns = {name: pa.array(values[name], pa.string()) for name in names}
        return ParsedBlock(self.bounds, columns, _index_array(rows), bad, longest)


# ------------------------------------------------------------------------------------- JSONL

_JSON_ARROW = {
    ColumnType.INT64: pa.int64(),
    ColumnType.FLOAT64: pa.float64(),
    ColumnType.BOOL: pa.bool_(),
}


def _json_depth(value: Any) -> int:
    depth = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            depth = max(depth, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            depth = max(depth, level)
            stack.extend((v, level + 1) for v in item)
    return depth


_JSON_TYPES: dict[ColumnType, tuple[type, ...]] = {
    ColumnType.INT64: (int,),  # exact types: a JSON true is a bool, never an int
    ColumnType.FLOAT64: (int, float),
    ColumnType.BOOL: (bool,),
}


def _json_one_by_one(
    data: bytes,
    bounds: RecordBounds,
    kept: list[int],
    contract: DatasetContract,
    max_depth: int,
) -> tuple[dict[str, pa.Array], list[int], list[BadRecord]]:
    """Parse each line with orjson: the path for blocks pyarrow cannot read whole."""
    starts = bounds.starts.to_pylist()
    ends = bounds.ends.to_pylist()
    objs: list[dict[str, Any]] = []
    rows: list[int] = []
    bad: dict[int, BadRecord] = {}
    loads = orjson.loads
    for i in kept:
        line = data[starts[i] : ends[i]]
        try:
            obj = loads(line)
        except orjson.JSONDecodeError as exc:
            message = str(exc)
            if "recursion" in message.lower():
                bad[i] = BadRecord(i, TOO_DEEP, f"JSON nesting exceeds {max_depth} levels")
            else:
                bad[i] = BadRecord(i, INVALID_JSON, f"invalid JSON: {message}")
            continue
        if type(obj) is not dict:
            bad[i] = BadRecord(i, NOT_AN_OBJECT, f"a JSON {type(obj).__name__} is not an object")
            continue
        if line.count(b"{") + line.count(b"[") > max_depth:
            depth = _json_depth(obj)
            if depth > max_depth:
                bad[i] = BadRecord(
                    i, TOO_DEEP, f"JSON nesting of {depth} levels exceeds {max_depth}"
                )
                continue
        objs.append(obj)
        rows.append(i)
    # Column by column (list comprehensions, not a loop per value); the first column in
    # contract order with a wrong JSON type names the row's reason.
    wrong_rows: set[int] = set()
    values: dict[str, list[Any]] = {}
    for spec in contract.columns:
        key = spec.source or spec.name
        column = [o.get(key) for o in objs]
        allowed = _JSON_TYPES.get(spec.type, (str,))
        wrong = [j for j, v in enumerate(column) if v is not None and type(v) not in allowed]
        for j in wrong:
            if j not in wrong_rows:
                wrong_rows.add(j)
                value = column[j]
                bad[rows[j]] = BadRecord(
                    rows[j],
                    TYPE_MISMATCH,
                    f"{spec.name}: JSON {_json_kind(value)} {_short(value)} is not a valid "
                    f"{spec.type.value}",
                    spec.name,
                )
            column[j] = None
        values[spec.name] = column
    columns = {
        spec.name: pa.array(values[spec.name], _JSON_ARROW.get(spec.type, pa.string()))
        for spec in contract.columns
    }
    if wrong_rows:
        keep = pa.array([j not in wrong_rows for j in range(len(rows))], pa.bool_())
        columns = {name: pc.filter(col, keep) for name, col in columns.items()}
        rows = [r for j, r in enumerate(rows) if j not in wrong_rows]
    return columns, rows, [bad[i] for i in sorted(bad)]


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


_ROW_IN_ERROR = re.compile(r" in row (\d+)")


def _read_json(data: bytes, schema: pa.Schema) -> pa.Table:
    return pjson.read_json(
        pa.BufferReader(data),
        read_options=pjson.ReadOptions(use_threads=False, block_size=len(data) + 1),
        parse_options=pjson.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="ignore"
        ),
    )


def _json_runs(
    clean: bytes, starts: list[int], first: int, stop: int, schema: pa.Schema
) -> tuple[list[tuple[int, pa.Table]], list[int]]:
    """Read records [first, stop) of `clean` with pyarrow, setting aside the records it rejects.

    pyarrow's JSON reader fails a whole call on one bad value but names the row; the rows
    before it are good, so they are re-read as one piece and reading resumes after the bad
    row. Every byte is read at most twice however many rows are bad. Returns (first record of
    each piece, its table) and the records set aside for the exact one-by-one path.
    """
    pieces: list[tuple[int, pa.Table]] = []
    aside: list[int] = []
    pos = first
    while pos < stop:
        end = starts[stop] if stop < len(starts) else len(clean)
        try:
            table = _read_json(clean[starts[pos] : end], schema)
        except pa.ArrowInvalid as exc:
            match = _ROW_IN_ERROR.search(str(exc))
            row = int(match.group(1)) if match else -1
            if not 0 <= row < stop - pos:
                aside.extend(range(pos, stop))
                break
            if row:
                try:
                    prefix = _read_json(clean[starts[pos] : starts[pos + row]], schema)
                except pa.ArrowInvalid:
                    prefix = None
                if prefix is not None and prefix.num_rows == row:
                    pieces.append((pos, prefix))
                else:
                    aside.extend(range(pos, pos + row))
            aside.append(pos + row)
            pos += row + 1
            continue
        if table.num_rows == stop - pos:
            pieces.append((pos, table))
        else:
            # pyarrow saw a different number of values (two objects on one line, say).
            aside.extend(range(pos, stop))
        break
    return pieces, aside


def _record_array(clean: bytes, n: int) -> pa.Array:
    """The `n` records of a screened JSONL block as a binary array (blank lines left out)."""
    lines = pc.split_pattern(as_binary_array(clean), b"\n").flatten()
    if clean.endswith(b"\n"):
        lines = lines.slice(0, len(lines) - 1)
    lengths = pc.binary_length(lines)
    blank = pc.or_(pc.equal(lengths, 0), pc.equal(lines, b"\r"))
    records = pc.filter(lines, pc.invert(blank)) if pc.any(blank).as_py() else lines
    if len(records) != n:  # cannot happen: the same split made the bounds
        raise AssertionError("record split of screened block disagrees")
    return records


def _deep_candidates(clean: bytes, records: pa.Array | None, n: int, max_depth: int) -> list[int]:
    """Records that may nest deeper than `max_depth` (they hold more brackets than that).

    A record deeper than D holds at least D+1 opening brackets and every other object at least
    one, so a block with fewer than n + D brackets in total has none: the common case costs two
    byte counts.
    """
    if clean.count(b"{") + clean.count(b"[") < n + max_depth:
        return []
    if records is None:
        records = _record_array(clean, n)
    brackets = pc.add(pc.count_substring(records, b"{"), pc.count_substring(records, b"["))
    return list(pc.indices_nonzero(pc.greater(brackets, max_depth)).to_pylist())


_WRONG_START = {
    ColumnType.INT64: r"(?:[^-0-9n\s]|-?[0-9]+[.eE])",  # not a number or null; or not integral
    ColumnType.FLOAT64: r"[^-0-9n\s]",
    ColumnType.BOOL: r"[^tfn\s]",
}


@cache
def _suspect_pattern(keys: tuple[tuple[str, ColumnType], ...]) -> str:
    """An RE2 pattern matching lines that pyarrow's reader would reject, or may.

    A line not shaped like an object, or a contract key followed by a value of the wrong JSON
    type. A match only sends the line to the exact (orjson) path, so false alarms cost time,
    never correctness; a miss is caught when pyarrow rejects the rest.
    """
    alternatives = [r"^\s*[^{\s]", r"[^}\s]\s*$"]
    for name, kind in keys:
        key = re.escape(name)
        wrong = _WRONG_START.get(kind, r"[^\"n\s]")
        alternatives.append(f'"{key}"\\s*:\\s*{wrong}')
    return "|".join(alternatives)


def _suspects(records: pa.Array, contract: DatasetContract) -> list[int]:
    keys = tuple((c.source or c.name, c.type) for c in contract.columns)
    matched = pc.match_substring_regex(records, _suspect_pattern(keys))
    return list(pc.indices_nonzero(matched).to_pylist())


def parse_jsonl_block(
    data: bytes,
    base_offset: int,
    contract: DatasetContract,
    *,
    max_record_bytes: int,
    max_depth: int,
) -> ParsedBlock:
    """Parse a block of whole JSON lines into raw columns (typed for int64/float64/bool).

    Keys not named by the contract are ignored; a missing key or JSON null is null. Never raises
    for bad content: faulty records come back in `bad`.
    """
    specs = contract.columns
    block = _BlockBytes(data)
    bounds = block.split.bounds(None)
    screened = _screen(block, bounds, base_offset, max_record_bytes)
    clean, kept, bad, longest = screened.clean, screened.kept, screened.bad, screened.longest
    n = len(kept)
    schema = pa.schema([(s.source or s.name, _JSON_ARROW.get(s.type, pa.string())) for s in specs])
    if n == 0:
        empty = {s.name: pa.array([], _JSON_ARROW.get(s.type, pa.string())) for s in specs}
        return ParsedBlock(bounds, empty, _index_array([]), bad, 0)
    deep = _deep_candidates(clean, None, n, max_depth)
    if not deep:
        try:
            table = _read_json(clean, schema)
        except pa.ArrowInvalid:
            table = None
        if table is not None and table.num_rows == n:
            columns = {s.name: one_array(table.column(s.source or s.name)) for s in specs}
            return ParsedBlock(bounds, columns, kept, bad, longest)
    # Slow path. Indices j below number the records of `clean` (record j is kept[j]): set
    # aside suspects, read the rest in one call (in runs around any bad record pyarrow still
    # finds), and read the set-aside records one by one with orjson.
    kept_list = kept.to_pylist()
    records = _record_array(clean, n)
    aside = sorted(set(deep) | set(_suspects(records, contract)))
    clean_bounds = record_bounds(clean, None)
    starts = clean_bounds.starts.to_pylist()
    rest, rest_index = _drop_records(clean, starts, clean_bounds.ends.to_pylist(), aside)
    pieces: list[tuple[int, pa.Table]] = []
    if rest_index:
        rest_starts = record_bounds(rest, None).starts.to_pylist()
        found, more = _json_runs(rest, rest_starts, 0, len(rest_index), schema)
        pieces = found
        aside = sorted(aside + [rest_index[k] for k in more])
    slow_columns, slow_rows, more_bad = _json_one_by_one(
        data, bounds, [kept_list[j] for j in aside], contract, max_depth
    )
    bad = sorted(bad + more_bad, key=lambda b: b.index)
    row_parts = [pa.array(slow_rows, pa.int64())]
    column_parts: dict[str, list[pa.Array]] = {s.name: [slow_columns[s.name]] for s in specs}
    rows_of_rest = pa.array([kept_list[j] for j in rest_index], pa.int64())
    for first, table in pieces:
        row_parts.append(rows_of_rest.slice(first, table.num_rows))
        for s in specs:
            column_parts[s.name].append(one_array(table.column(s.source or s.name)))
    rows = pa.concat_arrays(row_parts)
    order = pc.sort_indices(rows)
    columns = {
        name: pc.take(pa.concat_arrays(parts), order) for name, parts in column_parts.items()
    }
    return ParsedBlock(bounds, columns, pc.take(rows, order), bad, longest)
