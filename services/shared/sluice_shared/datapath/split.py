"""Cutting one large CSV/JSONL object into byte ranges that each hold whole records.

A batch run validates the ranges in parallel (`validate_file(..., byte_range=...)`), so a cut
must fall exactly on a record end, or a record would be lost or read twice. JSON Lines cannot
hold a raw newline inside a record, so any newline is a record end. A CSV quoted field can, so
the CSV planner scans the whole object tracking quote parity (RFC 4180: a quote inside a quoted
field is doubled, so parity tells whether a newline is inside quotes) — the same rule the
reader uses to cut its blocks. Where no safe cut exists (gzip, unbalanced quotes) the plan is
one range and the returned note says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from sluice_shared.datapath.blocks import first_record_end, is_gzip

if TYPE_CHECKING:
    from pathlib import Path

    from contracts.datasets import DatasetContract

SCAN_BYTES = 8 << 20


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, end) of the object, validated as partition `partition`."""

    partition: int
    start: int
    end: int


def _skip_blank_lines(fh: BinaryIO, cuts: list[int], size: int) -> list[int]:
    """Move each cut past blank lines, so no range holds only blank lines (which are no
    records); cuts that reach the end of the object are dropped, and so is a first cut with
    only blank lines before it (the leading blanks join the next range)."""
    moved: list[int] = []
    for cut in cuts:
        pos = cut
        while pos < size:
            fh.seek(pos)
            window = fh.read(1 << 16)
            rest = window.lstrip(b"\r\n")
            # Stop at the last newline before the first non-blank byte: that line is a record.
            if rest:
                blank = window[: len(window) - len(rest)]
                pos += blank.rfind(b"\n") + 1
                break
            pos += len(window)
        if pos < size and (not moved or pos > moved[-1]):
            moved.append(pos)
    if moved and _only_blank_lines(fh, moved[0]):
        moved.pop(0)
    return moved


def _only_blank_lines(fh: BinaryIO, end: int) -> bool:
    """Whether bytes [0, end) are only newlines, read in small windows up to the first other
    byte (reading the whole first range at once would hold it in memory: ~210 MB of a 421 MB
    file cut in two)."""
    fh.seek(0)
    pos = 0
    while pos < end:
        window = fh.read(min(1 << 16, end - pos))
        if not window:
            break
        if window.lstrip(b"\r\n"):
            return False
        pos += len(window)
    return True


def _ranges(cuts: list[int], size: int) -> list[ByteRange]:
    bounds = [0, *cuts, size]
    return [ByteRange(i, bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def _header_end(fh: BinaryIO, quote: bytes) -> int:
    """Offset just after the CSV header record (the file size when it has no newline)."""
    fh.seek(0)
    odd = 0
    pos = 0
    while True:
        chunk = fh.read(1 << 20)
        if not chunk:
            return pos
        end, odd = first_record_end(chunk, quote, odd)
        if end >= 0:
            return pos + end
        pos += len(chunk)


def _csv_cuts(fh: BinaryIO, quote: bytes, first_target: int, target: int) -> tuple[list[int], bool]:
    """Record ends at or after each target, found by one sequential quote-parity scan.

    Returns the cuts and whether the quotes of the whole object are balanced.
    """
    fh.seek(0)
    cuts: list[int] = []
    next_target = first_target
    pos = 0
    odd = 0  # quote parity at `pos`
    while True:
        chunk = fh.read(SCAN_BYTES)
        if not chunk:
            break
        size = len(chunk)
        known = 0  # parity `odd_here` is known at chunk[known]
        odd_here = odd
        while next_target < pos + size:
            j = max(next_target - pos, known)
            odd_here ^= chunk.count(quote, known, j) & 1
            known = j
            cut = -1
            while True:
                nl = chunk.find(b"\n", known)
                if nl < 0:
                    break
                odd_here ^= chunk.count(quote, known, nl) & 1
                known = nl + 1
                if not odd_here:
                    cut = pos + known
                    break
            if cut < 0:
                next_target = pos + size  # keep looking from the next chunk's start
                break
            cuts.append(cut)
            next_target = cut + target
        odd = odd_here ^ (chunk.count(quote, known) & 1)
        pos += size
    return cuts, odd == 0


def _line_cuts(fh: BinaryIO, size: int, target: int) -> list[int]:
    """The first newline end at or after each target (JSON Lines: every newline ends a record)."""
    cuts: list[int] = []
    next_target = target
    while next_target < size:
        fh.seek(next_target)
        pos = next_target
        cut = -1
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            nl = chunk.find(b"\n")
            if nl >= 0:
                cut = pos + nl + 1
                break
            pos += len(chunk)
        if cut < 0:
            break
        cuts.append(cut)
        next_target = cut + target
    return cuts


def plan_byte_ranges(
    src: Path, contract: DatasetContract, *, target_bytes: int
) -> tuple[list[ByteRange], str]:
    """Byte ranges of about `target_bytes` covering `src`, each cut on a record end.

    Ranges are contiguous, in order, numbered from 0, and cover every byte exactly once. For a
    CSV with a header, range 0 holds the header and at least one record after it. Returns the
    ranges and a note saying how they were cut (or why there is only one). Raises ValueError
    when target_bytes < 1.
    """
    if target_bytes < 1:
        raise ValueError("target_bytes must be positive")
    size = src.stat().st_size
    whole = [ByteRange(0, 0, size)]
    if is_gzip(src, "", contract.format.compression):
        return whole, "gzip object: one range (a compressed stream has no record boundaries)"
    if size <= target_bytes:
        return whole, f"{size} bytes fit one range of {target_bytes} bytes"
    with src.open("rb") as fh:
        if contract.format.kind == "jsonl":
            cuts = _skip_blank_lines(fh, _line_cuts(fh, size, target_bytes), size)
            note = f"{len(cuts) + 1} ranges cut after newlines (JSON Lines)"
            return _ranges(cuts, size), note
        quote = contract.format.quote_char.encode()
        first_target = target_bytes
        if contract.format.header:
            # Range 0 must hold a data record besides the header, or it would be header-only.
            first_target = max(first_target, _header_end(fh, quote) + 1)
        cuts, balanced = _csv_cuts(fh, quote, first_target, target_bytes)
        if not balanced:
            return whole, "unbalanced CSV quotes: one range (no cut is provably between records)"
        cuts = _skip_blank_lines(fh, cuts, size)
    note = f"{len(cuts) + 1} ranges cut on record ends (quote-aware scan of {size} bytes)"
    return _ranges(cuts, size), note
