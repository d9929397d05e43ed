"""Cutting one large CSV/JSONL object into byte ranges on record ends, reading only near the cuts.

Plan must not download a 2 GB object to cut it: for each cut target it reads one window of
bytes after the target with a ranged GET and finds the first record end there.

- **JSON Lines** cannot hold a raw newline inside a record: the first newline after the target
  ends a record.
- **CSV** can (a quoted field may contain newlines), and whether the target is inside quotes
  depends on every quote before it. Instead of scanning from the start, the planner *speculates*
  on both quote parities at the target and keeps the one whose quotes sit where CSV allows them
  (an opening quote starts a field, a closing quote ends one) and which finds a record end inside
  the window. The wrong parity turns every quote around, which breaks that rule at its first
  quote unless fields start with a quote or delimiter character. When the evidence does not
  single out one parity (no record end, both or neither consistent), that cut falls back to an
  exact sequential quote-parity scan from the previous cut (where parity is known to be even),
  reading that partition's bytes once; the plan's note counts such cuts.
  The window is at least twice the record limit (`SLUICE_MAX_RECORD_BYTES`), so a window of a
  file whose records respect the limit always holds a record end under the true parity.
- **gzip** has no record boundaries a reader can seek to: the object is one whole-file range.

The rule for a record end is the one `sluice_shared.datapath` uses to cut its blocks (quote
parity, `first_record_end`), so each range reads exactly the records a whole-file read would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sluice_shared.datapath.blocks import GZIP_MAGIC, first_record_end
from sluice_shared.datapath.split import ByteRange

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from contracts.datasets import DatasetContract

# Quotes examined past a candidate cut before a parity is believed.
QUOTE_EVIDENCE = 8


@dataclass(frozen=True)
class CutPlan:
    """The ranges of one object, how they were found, and how many bytes planning read."""

    ranges: list[ByteRange]
    note: str
    bytes_read: int
    sequential_cuts: int = 0


class _Reader:
    def __init__(self, read: Callable[[int, int], Awaitable[bytes]], size: int) -> None:
        self._read = read
        self.size = size
        self.bytes_read = 0

    async def __call__(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if end <= start:
            return b""
        data = await self._read(start, end)
        self.bytes_read += len(data)
        return data


def looks_gzip(contract: DatasetContract, key: str, head: bytes) -> bool:
    """Whether the object is gzip: the contract says so, or "auto" and the key/magic say so."""
    compression = contract.format.compression
    if compression == "gzip":
        return True
    if compression == "none":
        return False
    return key.endswith(".gz") or head.startswith(GZIP_MAGIC)


@dataclass(frozen=True)
class _Guess:
    violations: int
    cut: int  # offset after the record end in the window, -1 when none


def _speculate(
    data: bytes, first: int, inside: int, quote: bytes, delimiter: bytes, pattern: re.Pattern[bytes]
) -> _Guess:
    """Scan `data` from index `first` assuming quote state `inside` there."""
    allowed_before = {delimiter[0], ord("\n"), ord("\r"), quote[0]}
    allowed_after = allowed_before
    violations = 0
    cut = -1
    quotes = 0
    q = quote[0]
    for match in pattern.finditer(data, first):
        j = match.start()
        if data[j] != q:
            if not inside and cut < 0:
                cut = j + 1
                if quotes >= QUOTE_EVIDENCE:
                    break
            continue
        quotes += 1
        if inside:
            if j + 1 < len(data) and data[j + 1] not in allowed_after:
                violations += 1
            inside = 0
        else:
            if j > 0 and data[j - 1] not in allowed_before:
                violations += 1
            inside = 1
        if violations:
            break
        if cut >= 0 and quotes >= QUOTE_EVIDENCE:
            break
    return _Guess(violations, cut)


async def _sequential_cut(read: _Reader, known: int, target: int, quote: bytes, step: int) -> int:
    """The first record end at or after `target`, by a parity scan from `known` (a record start).

    Returns -1 when the object ends inside a record.
    """
    odd = 0
    pos = known
    while pos < target:
        chunk = await read(pos, min(target, pos + step))
        odd ^= chunk.count(quote) & 1
        pos += len(chunk)
    while pos < read.size:
        chunk = await read(pos, pos + step)
        end, odd = first_record_end(chunk, quote, odd)
        if end >= 0:
            return pos + end
        pos += len(chunk)
    return -1


async def _line_end(read: _Reader, target: int, step: int) -> int:
    pos = target
    while pos < read.size:
        chunk = await read(pos, pos + step)
        nl = chunk.find(b"\n")
        if nl >= 0:
            return pos + nl + 1
        pos += len(chunk)
    return -1


async def _csv_header_end(read: _Reader, quote: bytes, step: int) -> int:
    pos = odd = 0
    while pos < read.size:
        chunk = await read(pos, pos + step)
        end, odd = first_record_end(chunk, quote, odd)
        if end >= 0:
            return pos + end
        pos += len(chunk)
    return read.size


def _ranges(cuts: list[int], size: int) -> list[ByteRange]:
    bounds = [0, *cuts, size]
    return [ByteRange(i, bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


async def plan_cuts(
    read: Callable[[int, int], Awaitable[bytes]],
    size: int,
    contract: DatasetContract,
    *,
    key: str,
    target_bytes: int,
    window_bytes: int,
) -> CutPlan:
    """Byte ranges of about `target_bytes` covering an object of `size` bytes, cut on record ends.

    `read(start, end)` returns bytes `[start, end)` of the object (a ranged GET). Ranges are
    contiguous, numbered from 0 and cover every byte once; for a CSV with a header, range 0 holds
    the header and at least one record. Raises ValueError for a non-positive target or window.
    """
    if target_bytes < 1 or window_bytes < 2:
        raise ValueError("target_bytes and window_bytes must be positive")
    reader = _Reader(read, size)
    whole = [ByteRange(0, 0, size)]
    head = await reader(0, 2)
    if looks_gzip(contract, key, head):
        note = "gzip object: one whole-file partition (a compressed stream cannot be cut)"
        return CutPlan(whole, note, reader.bytes_read)
    if size <= target_bytes:
        return CutPlan(whole, f"{size} bytes fit one partition", reader.bytes_read)

    if contract.format.kind == "jsonl":
        cuts: list[int] = []
        target = target_bytes
        while target < size:
            cut = await _line_end(reader, target, window_bytes)
            if cut < 0 or cut >= size:
                break
            cuts.append(cut)
            target = cut + target_bytes
        note = f"{len(cuts) + 1} partitions cut after newlines (JSON Lines)"
        return CutPlan(_ranges(cuts, size), note, reader.bytes_read)

    quote = contract.format.quote_char.encode()
    delimiter = contract.format.delimiter.encode()
    pattern = re.compile(re.escape(quote) + b"|\n")
    target = target_bytes
    if contract.format.header:
        target = max(target, await _csv_header_end(reader, quote, window_bytes) + 1)
    cuts = []
    sequential = 0
    last = 0
    while target < size:
        # One byte before the target tells whether a quote right at the target opens a field.
        window = await reader(target - 1, target + window_bytes)
        guesses = [_speculate(window, 1, h, quote, delimiter, pattern) for h in (0, 1)]
        plausible = [g for g in guesses if g.violations == 0 and g.cut >= 0]
        if len(plausible) == 1:
            cut = target - 1 + plausible[0].cut
        else:
            sequential += 1
            cut = await _sequential_cut(reader, last, target, quote, window_bytes)
        if cut < 0 or cut >= size:
            break
        cuts.append(cut)
        last = cut
        target = cut + target_bytes
    note = (
        f"{len(cuts) + 1} partitions cut on CSV record ends by ranged reads of "
        f"{reader.bytes_read} of {size} bytes"
    )
    if sequential:
        note += f"; {sequential} cut(s) needed a sequential quote scan from the previous cut"
    return CutPlan(_ranges(cuts, size), note, reader.bytes_read, sequential)
