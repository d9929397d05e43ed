"""Bounded reading of a raw object: decompression with limits, and blocks cut on record ends.

A *record* is one CSV record (RFC 4180: a newline inside a quoted field does not end it; a quote
inside a field is written doubled, so quote parity tells whether a newline is inside quotes) or
one JSON line. The byte-range splitter (`split.py`) uses the same rule, so a split never moves a
record boundary. Memory is bounded by the block size plus `max_record_bytes`, for any file size.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
READ_BYTES = 1 << 20  # compressed bytes read per step from a gzip object
OVERSIZE_HEAD_BYTES = 64 * 1024  # how much of a skipped oversized record is kept for quarantine


class SourceError(Exception):
    """The object's bytes cannot be read as a whole (corrupt or over a file-level limit)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Block:
    """Whole records: `data` starts at absolute offset `offset` of the decompressed stream.

    `quotes`, when the cutter made it (it finds record ends with it): `data` with every byte but
    the quote character and "\\n" deleted, so the parser need not make it again.
    """

    data: bytes
    offset: int
    quotes: bytes | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class OversizeRecord:
    """A record longer than `max_record_bytes`, skipped without holding it in memory."""

    offset: int
    size: int
    head: bytes


def is_gzip(src: Path, key: str, compression: str) -> bool:
    """Whether to gunzip `src`: the contract says so, or "auto" and the key/bytes look gzipped."""
    if compression == "gzip":
        return True
    if compression == "none":
        return False
    if key.endswith(".gz") or src.name.endswith(".gz"):
        return True
    with src.open("rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def read_plain(fh: BinaryIO, start: int, end: int | None, block_bytes: int) -> Iterator[bytes]:
    """Bytes [start, end) of an uncompressed file, `block_bytes` at a time."""
    fh.seek(start)
    remaining = None if end is None else end - start
    while remaining is None or remaining > 0:
        want = block_bytes if remaining is None else min(block_bytes, remaining)
        chunk = fh.read(want)
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


def read_gzip(
    fh: BinaryIO, compressed_size: int, max_ratio: float, max_bytes: int, block_bytes: int
) -> Iterator[bytes]:
    """Decompressed bytes of a gzip file (all members), at most `block_bytes` per chunk.

    Raises SourceError `corrupt_gzip` for bad or truncated data and
    `decompression_ratio_exceeded` / `file_too_large` as soon as the output passes the limit,
    before decompressing further (a zip bomb never expands in memory or on disk).
    """
    limit = min(max_bytes, int(max_ratio * max(compressed_size, 1)))
    produced = 0
    decomp = zlib.decompressobj(wbits=31)
    in_member = False
    pending = b""
    try:
        while True:
            if not pending:
                pending = fh.read(READ_BYTES)
                if not pending:
                    break
            out = decomp.decompress(pending, block_bytes)
            pending = decomp.unconsumed_tail
            in_member = not decomp.eof
            if decomp.eof:
                rest = decomp.unused_data + pending
                decomp = zlib.decompressobj(wbits=31)
                # Zero padding after the last member is common; anything else starts a member.
                pending = rest if rest.strip(b"\x00") else b""
            if out:
                produced += len(out)
                if produced > limit:
                    if produced > max_bytes:
                        raise SourceError(
                            "file_too_large",
                            f"decompressed size exceeds the limit of {max_bytes} bytes",
                        )
                    raise SourceError(
                        "decompression_ratio_exceeded",
                        f"gzip expands beyond {max_ratio:g}x its {compressed_size} bytes; "
                        f"stopped after {produced} bytes",
                    )
                yield out
        if in_member:
            out = decomp.flush()
            in_member = not decomp.eof
            if out:
                produced += len(out)
                yield out
    except zlib.error as exc:
        raise SourceError("corrupt_gzip", f"gzip data is corrupt: {exc}") from None
    if in_member:
        # The stream ended inside a member: an interrupted upload or a cut-off copy.
        raise SourceError("corrupt_gzip", "gzip data is truncated (no end-of-stream marker)")


def last_record_end(buf: bytes, quote: bytes | None) -> int:
    """Length of the longest prefix of `buf` made of whole records (0 when none ends in it).

    `buf` must start at a record start. With a quote character, a newline ends a record only when
    the quotes before it (since the start of `buf`) are balanced.
    """
    p = buf.rfind(b"\n")
    if p < 0 or quote is None:
        return p + 1
    odd = buf.count(quote, 0, p) & 1
    while odd:
        q = buf.rfind(b"\n", 0, p)
        if q < 0:
            return 0
        odd ^= buf.count(quote, q, p) & 1
        p = q
    return p + 1


def first_record_end(buf: bytes, quote: bytes | None, odd: int) -> tuple[int, int]:
    """(end, parity): the first record end in `buf` given the quote parity `odd` at its start.

    end is the index after the terminating newline, or -1 when no record ends in `buf`; parity
    is the quote parity at the end of `buf` in that case (to carry into the next chunk).
    """
    pos = 0
    while True:
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if quote is not None:
                odd ^= buf.count(quote, pos) & 1
            return -1, odd
        if quote is not None:
            odd ^= buf.count(quote, pos, nl) & 1
        if not odd:
            return nl + 1, 0
        pos = nl + 1


def quote_skeleton(data: bytes, quote: bytes) -> bytes:
    """`data` with every byte but `quote` and "\\n" deleted: one C pass, from which the quote
    parity of every line follows (`_quotes_per_line`)."""
    return data.translate(None, _all_but(quote + b"\n"))


def _last_record_end_in(
    head_quotes: bytes, chunk: bytes, chunk_quotes: bytes, quote: bytes
) -> tuple[int, int]:
    """(`last_record_end(head + chunk, quote) - len(head)`, the same cut in `chunk_quotes`) when
    that record end is in `chunk`, else (-1, -1); without joining them. `head` must start at a
    record start; `*_quotes` are the `quote_skeleton`s of `head` and `chunk`, which hold the same
    newlines in the same order: quotes are counted in them, not in the whole chunk."""
    p = chunk.rfind(b"\n")
    q = chunk_quotes.rfind(b"\n")
    if p < 0:
        return -1, -1
    odd = (head_quotes.count(quote) + chunk_quotes.count(quote, 0, q)) & 1
    while odd:
        p_before = chunk.rfind(b"\n", 0, p)
        q_before = chunk_quotes.rfind(b"\n", 0, q)
        if p_before < 0:
            return -1, -1
        odd ^= chunk_quotes.count(quote, q_before, q) & 1
        p, q = p_before, q_before
    return p + 1, q + 1


def iter_blocks(
    chunks: Iterator[bytes],
    *,
    offset: int,
    quote: bytes | None,
    block_bytes: int,
    max_record_bytes: int,
) -> Iterator[Block | OversizeRecord]:
    """Re-cut a byte stream (starting at a record start, absolute `offset`) into whole records.

    Yields Blocks of roughly `block_bytes`, and an OversizeRecord (never held whole in memory)
    for each record longer than `max_record_bytes` that does not end inside the current buffer.
    A last record without a trailing newline is a record.
    """
    buf = b""
    buf_quotes = b""  # quote_skeleton(buf, quote), kept along with buf when there is a quote
    for chunk in chunks:
        chunk_quotes = b"" if quote is None else quote_skeleton(chunk, quote)
        if len(buf) + len(chunk) >= block_bytes:
            # Usually the block ends in the new chunk: copy it out once (joined to the start
            # of a record left from the previous chunk), not into a buffer and then out again.
            if quote is None:
                end, quotes_end = chunk.rfind(b"\n") + 1 or -1, 0
            else:
                end, quotes_end = _last_record_end_in(buf_quotes, chunk, chunk_quotes, quote)
            if end >= 0:
                data = b"".join((buf, memoryview(chunk)[:end])) if buf else chunk[:end]
                quotes = None if quote is None else buf_quotes + chunk_quotes[:quotes_end]
                yield Block(data, offset, quotes)
                offset += len(data)
                buf = chunk[end:]
                buf_quotes = chunk_quotes[quotes_end:]
                continue
        buf = buf + chunk if buf else chunk
        buf_quotes += chunk_quotes
        if len(buf) < block_bytes:
            continue
        cut = last_record_end(buf, quote)
        if cut > 0:
            yield Block(buf[:cut], offset)
            offset += cut
            buf = buf[cut:]
            buf_quotes = b"" if quote is None else quote_skeleton(buf, quote)
        elif len(buf) > max_record_bytes:
            # No record ends in a buffer already over the limit: skip to the record's end
            # chunk by chunk, keeping only its head for the quarantine record.
            head = buf[:OVERSIZE_HEAD_BYTES]
            size = len(buf)
            _, odd = first_record_end(buf, quote, 0)
            buf = b""
            for more in chunks:
                end, odd = first_record_end(more, quote, odd)
                if end >= 0:
                    size += end
                    buf = more[end:]
                    break
                size += len(more)
            buf_quotes = b"" if quote is None else quote_skeleton(buf, quote)
            yield OversizeRecord(offset, size, head)
            offset += size
    if buf:
        cut = last_record_end(buf, quote)
        if len(buf) - cut > max_record_bytes:
            if cut:
                yield Block(buf[:cut], offset)
            yield OversizeRecord(offset + cut, len(buf) - cut, buf[cut : cut + OVERSIZE_HEAD_BYTES])
        else:
            yield Block(buf, offset, None if quote is None else buf_quotes)


@dataclass(frozen=True, slots=True)
class RecordBounds:
    """Where each record of a block starts and ends (relative to the block), blanks left out."""

    starts: pa.Int64Array
    ends: pa.Int64Array

    def __len__(self) -> int:
        return len(self.starts)


def as_binary_array(data: bytes) -> pa.Array:
    """A one-value large_binary array over `data`, without copying it."""
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    return pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])


_arange_cache: list[pa.Int64Array] = [pa.array([], pa.int64())]


def arange(n: int) -> pa.Int64Array:
    """0, 1, ..., n-1: a zero-copy slice of one cached array, grown by kernels when too short
    (a Python range costs ~30 ns per value; building it per block, ~2 ms per 50k)."""
    values = _arange_cache[0]
    if len(values) < n:
        size = max(n, 2 * len(values))
        values = pc.subtract(pc.cumulative_sum(pa.nulls(size, pa.int64()).fill_null(1)), 1)
        _arange_cache[0] = values  # one reference swap: safe to race, both values are right
    return values.slice(0, n)


@dataclass(frozen=True, slots=True)
class LineSplit:
    """A block split on "\\n" once; both record cuts (lines, quote parity) derive from it."""

    data: bytes
    lines: pa.Array  # the lines' bytes, without their "\\n"
    starts: pa.Int64Array
    lengths: pa.Int64Array
    _quotes: dict[bytes, pa.Int64Array] = field(default_factory=dict)
    skeleton: tuple[bytes, bytes] | None = None  # (quote, quote_skeleton(data, quote)) if known

    def quote_counts(self, quote: bytes) -> pa.Int64Array:
        """How many `quote` bytes each line holds."""
        counts = self._quotes.get(quote)
        if counts is None:
            known = self.skeleton
            only = known[1] if known is not None and known[0] == quote else None
            counts = self._quotes[quote] = _quotes_per_line(self.data, quote, only)
        return counts

    def bounds(self, quote: bytes | None) -> RecordBounds:
        """The records of the block: see `record_bounds`."""
        starts, lengths = self.starts, self.lengths
        opens = None
        if quote is not None and quote in self.data:
            quotes = self.quote_counts(quote)
            before = pc.subtract(pc.cumulative_sum(quotes), quotes)
            opens = pc.equal(pc.bit_wise_and(before, 1), 0)
            starts = pc.filter(starts, opens)
            lengths = pc.filter(lengths, opens)
        # A record ends where the next one (blank or not) starts.
        ends = pa.concat_arrays([starts.slice(1), pa.array([len(self.data)], pa.int64())])
        blank = pc.less_equal(lengths, 1)
        if pc.any(blank).as_py():
            # the records' first lines, only now: most blocks have no blank line to look at
            lines = self.lines if opens is None else pc.filter(self.lines, opens)
            blank = pc.or_(pc.equal(lengths, 0), pc.and_(blank, pc.equal(lines, b"\r")))
            keep = pc.invert(blank)
            return RecordBounds(pc.filter(starts, keep), pc.filter(ends, keep))
        return RecordBounds(starts, ends)


@cache
def _all_but(keep: bytes) -> bytes:
    return bytes(b for b in range(256) if b not in keep)


def _quotes_per_line(data: bytes, quote: bytes, only: bytes | None = None) -> pa.Int64Array:
    """How many `quote` bytes each line of `data` holds (lines as `split_lines` cuts them).

    Deleting every other byte but the newlines leaves one run of quotes per line; their lengths
    are the counts. One C pass over the block (`count_substring` per line costs ~3x more), or
    none when the caller has it already (`only`: `quote_skeleton(data, quote)`).
    """
    if only is None:
        only = quote_skeleton(data, quote)
    runs = pc.split_pattern(as_binary_array(only), b"\n").flatten()
    if data.endswith(b"\n"):
        runs = runs.slice(0, len(runs) - 1)
    return pc.cast(pc.binary_length(runs), pa.int64())


def split_lines(data: bytes, skeleton: tuple[bytes, bytes] | None = None) -> LineSplit:
    """Split a block of whole records on "\\n" with Arrow kernels (no per-line Python);
    `skeleton`: (quote, `quote_skeleton(data, quote)`) when known."""
    lines = pc.split_pattern(as_binary_array(data), b"\n").flatten()
    if data.endswith(b"\n"):
        lines = lines.slice(0, len(lines) - 1)
    n = len(lines)
    # The lines' offsets in the split's bytes, which are the block's without the "\n"s: line i
    # starts i bytes later in the block.
    offsets = pa.Array.from_buffers(
        pa.int64(), n + 1, [None, lines.buffers()[1]], offset=lines.offset
    )
    if n and offsets[0].as_py():
        offsets = pc.subtract(offsets, offsets[0])
    starts = pc.add(offsets.slice(0, n), arange(n))
    lengths = pc.subtract(offsets.slice(1), offsets.slice(0, n))
    return LineSplit(data, lines, starts, lengths, skeleton=skeleton)


def record_bounds(data: bytes, quote: bytes | None) -> RecordBounds:
    """Record start/end offsets of a block of whole records, computed with Arrow kernels.

    Lines are split on "\\n". With `quote` a line starts a record only when the quotes of all
    lines before it are balanced (so quoted newlines stay inside their record); with None every
    line is a record. Empty records (blank lines, "\\r" alone) are left out: the CSV and JSON
    readers skip them too. To cut the same block both ways, split it once with `split_lines`.
    """
    return split_lines(data).bounds(quote)
