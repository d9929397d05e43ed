"""Sample data for the shipped datasets, with exact ground truth.

`generate("orders", path, rows=1000, bad_ratio=0.05, duplicate_ratio=0.01, seed=7)` writes a CSV
(`orders`) or JSON Lines (`sensor_readings`) file, optionally gzipped, and returns what a correct
pipeline must find in it: how many rows are bad and why (the validate stage's reason codes), how
many are exact re-sent copies of an earlier good row (quarantined later as
`duplicate_primary_key`), and how many distinct good keys remain.

Columns are built with Arrow kernels in chunks of rows, so gigabytes take seconds, and the output
depends only on the arguments (same seed, same bytes).

    python -m sluice.generate orders /tmp/orders.csv --size 2GB --bad-ratio 0.01 --dup-ratio 0.01
"""

from __future__ import annotations

import argparse
import contextlib
import gzip as gzip_module
import random
import re
import sys
import time
from array import array
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import orjson
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK_ROWS = 100_000
_BASE_DATE = date(2024, 3, 1)
_TWO_DIGITS = pa.array([f"{i:02d}".encode() for i in range(100)], pa.binary())
_SPAN_S = 3 * 86400  # timestamps fall within three days: several output partitions

ORDERS_HEADER = b"order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
ORDERS_BAD = [
    "null_not_allowed",
    "type_mismatch",
    "below_min",
    "above_max",
    "not_in_enum",
    "regex_mismatch",
    "too_long",
    "column_count",
    "invalid_utf8",
]
SENSOR_BAD = [
    "invalid_json",
    "not_an_object",
    "too_deep",
    "type_mismatch",
    "null_not_allowed",
    "not_in_enum",
    "regex_mismatch",
    "above_max",
    "invalid_utf8",
]
DATASETS = ("orders", "sensor_readings")


@dataclass
class GroundTruth:
    """What a generated file holds. `rows_bad` maps validate reason codes to row counts."""

    dataset: str
    rows_total: int
    rows_bad: dict[str, int]
    rows_duplicate: int
    expected_good_keys: int
    bytes_written: int = 0  # uncompressed bytes
    seed: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def rows_bad_total(self) -> int:
        return sum(self.rows_bad.values())

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes | str) -> GroundTruth:
        return cls(**orjson.loads(data))


# ----------------------------------------------------------------------------- building blocks


def _rand(n: int, seed: int, stream: int) -> pa.Array:
    return pc.random(n, initializer=(seed * 1_000_003 + stream) % (2**63))


def _ints(n: int, seed: int, stream: int, high: int) -> pa.Array:
    """Uniform ints in [0, high)."""
    scaled = pc.floor(pc.multiply(_rand(n, seed, stream), high))
    return pc.cast(pc.min_element_wise(scaled, high - 1), pa.int64())


def _pick(choices: list[bytes], index: pa.Array) -> pa.Array:
    return pc.take(pa.array(choices, pa.binary()), index)


def _text(values: pa.Array) -> pa.Array:
    return pc.cast(pc.cast(values, pa.string()), pa.binary())


def _padded(values: pa.Array, width: int) -> pa.Array:
    return pc.cast(pc.utf8_lpad(pc.cast(values, pa.string()), width, "0"), pa.binary())


def _join(*parts: pa.Array | bytes) -> pa.Array:
    return pc.binary_join_element_wise(*parts, b"")


def _two_digits(values: pa.Array) -> pa.Array:
    return pc.take(_TWO_DIGITS, values)


def _timestamps(seconds: pa.Array) -> pa.Array:
    """ISO 8601 UTC text of `seconds` after 2024-03-01 (strftime is ~10x slower than this)."""
    days = pc.divide(seconds, 86_400)
    in_day = pc.subtract(seconds, pc.multiply(days, 86_400))
    hours = pc.divide(in_day, 3_600)
    in_hour = pc.subtract(in_day, pc.multiply(hours, 3_600))
    minutes = pc.divide(in_hour, 60)
    secs = pc.subtract(in_hour, pc.multiply(minutes, 60))
    n_days = (pc.max(days).as_py() or 0) + 1
    dates = pa.array(
        [(_BASE_DATE + timedelta(days=d)).isoformat().encode() + b"T" for d in range(n_days)],
        pa.binary(),
    )
    return _join(
        pc.take(dates, days),
        _two_digits(hours),
        b":",
        _two_digits(minutes),
        b":",
        _two_digits(secs),
        b"Z",
    )


def _replace(column: pa.Array, mask: pa.Array, value: bytes) -> pa.Array:
    return pc.if_else(mask, pa.scalar(value, pa.binary()), column)


def _spoil(
    columns: list[pa.Array], masks: dict[str, pa.Array], defects: dict[str, tuple[int, bytes]]
) -> list[pa.Array]:
    """`columns` with each defect's bad value written into its column on the rows its reason's
    mask marks (defects whose reason has no mask in this chunk are skipped)."""
    spoiled = list(columns)
    for reason, (index, value) in defects.items():
        if reason in masks:
            spoiled[index] = _replace(spoiled[index], masks[reason], value)
    return spoiled


@dataclass
class _Layout:
    """Which rows of a chunk are bad (and why) and which are duplicates (and of what)."""

    masks: dict[str, pa.Array]
    source: pa.Array | None  # row -> row whose line it carries (duplicates), None when none
    bad_counts: dict[str, int]
    duplicates: int


def _layout(
    n: int,
    first_row: int,
    bad_ratio: float,
    dup_ratio: float,
    seed: int,
    chunk: int,
    codes: list[str],
) -> _Layout:
    # Exact counts over the whole file: each chunk contributes the increase of floor(ratio * rows).
    def share(ratio: float) -> int:
        return int((first_row + n) * ratio) - int(first_row * ratio)

    rng = random.Random(seed * 7_919 + chunk)
    n_bad = min(share(bad_ratio), n)
    n_dup = min(share(dup_ratio), n - n_bad)
    picked = rng.sample(range(n), n_bad + n_dup)
    bad = picked[:n_bad]
    dups = sorted(picked[n_bad:])
    taken = set(picked)
    by_code: dict[str, list[int]] = {c: [] for c in codes}
    for k, row in enumerate(bad):
        by_code[codes[(first_row + k) % len(codes)]].append(row)
    # One byte per row naming its bad reason (0 = good): the masks are then Arrow comparisons.
    kinds = bytearray(n)
    for k, code in enumerate(codes, start=1):
        for row in by_code[code]:
            kinds[row] = k
    kind_array = pa.Array.from_buffers(pa.uint8(), n, [None, pa.py_buffer(bytes(kinds))])
    masks = {
        code: pc.equal(kind_array, pa.scalar(k, pa.uint8()))
        for k, code in enumerate(codes, start=1)
        if by_code[code]
    }
    source = None
    n_dup_done = 0
    if dups:
        index = array("q", range(n))
        for row in dups:
            src = row - 1
            while src >= 0 and src in taken:
                src -= 1
            if src < 0:
                continue  # no earlier good row in this chunk: the row stays a plain good row
            index[row] = src
            n_dup_done += 1
        source = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(index.tobytes())])
    return _Layout(masks, source, {c: len(r) for c, r in by_code.items() if r}, n_dup_done)


# ------------------------------------------------------------------------------------ orders

_NOTES = [
    b"",
    b"",
    b"",
    b"",
    b"",
    b"gift wrap",
    b'"fragile, handle with care"',
    b'"customer says ""hi"""',
    b'"deliver to: back door\nring twice"',
]
_COUNTRIES = [b"DE", b"FR", b"ES", b"IT", b"NL", b"GB", b"US", b"CA", b"JP", b"AU", b"", b"BR"]
_CURRENCIES = [b"EUR", b"USD", b"GBP"]
# Bad rows per reason code: (index of the column spoiled, the value that breaks the contract).
_ORDERS_DEFECTS = {
    "null_not_allowed": (1, b""),
    "invalid_utf8": (1, b"CUST-\xff\xfe"),
    "type_mismatch": (2, b"2024-02-30T10:00:00Z"),
    "too_long": (3, b"SKU-" + b"X" * 30),
    "below_min": (4, b"0"),
    "above_max": (5, b"250000.5"),
    "not_in_enum": (6, b"JPY"),
    "regex_mismatch": (7, b"Germany"),
}


def _orders_chunk(n: int, first_row: int, layout: _Layout, seed: int, chunk: int) -> pa.Array:
    s = seed * 1_000 + chunk * 16
    row = pa.array(range(first_row + 1, first_row + n + 1), pa.int64())
    order_id = _join(b"ORD-", _padded(row, 10))
    customer_id = _join(b"CUST-", _text(_ints(n, s, 1, 100_000)))
    order_ts = _timestamps(_ints(n, s, 2, _SPAN_S))
    sku = _join(b"SKU-", _padded(_ints(n, s, 3, 10_000), 5))
    quantity = _text(pc.add(_ints(n, s, 4, 20), 1))
    price = _text(pc.divide(pc.cast(_ints(n, s, 5, 50_000), pa.float64()), 100.0))
    currency = _pick(_CURRENCIES, _ints(n, s, 6, len(_CURRENCIES)))
    country = _pick(_COUNTRIES, _ints(n, s, 7, len(_COUNTRIES)))
    note = _pick(_NOTES, _ints(n, s, 8, len(_NOTES)))
    m = layout.masks
    cols = _spoil(
        [order_id, customer_id, order_ts, sku, quantity, price, currency, country, note],
        m,
        _ORDERS_DEFECTS,
    )
    lines = pc.binary_join_element_wise(*cols, b",")
    if "column_count" in m:
        lines = pc.if_else(m["column_count"], pc.binary_join_element_wise(*cols[:5], b","), lines)
    lines = _join(lines, b"\n")
    if layout.source is not None:
        lines = pc.take(lines, layout.source)
    return lines


# ------------------------------------------------------------------------------------ sensor

_DEVICES = [f"dev-{random.Random(i).getrandbits(32):08x}".encode() for i in range(64)]
_METRICS = [b"temperature", b"humidity", b"pressure"]
_SITES = [b'"berlin-1"', b'"paris-2"', b'"austin-1"', b'"tokyo-3"', b'"lisbon-9"', b"null"]
_OKS = [b"true", b"false", b"null"]
_DEEP = b'{"meta":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b","
_SENSOR_DEFECTS = {
    "null_not_allowed": (0, b"null"),
    "regex_mismatch": (0, b'"DEV-XYZ"'),
    "not_in_enum": (2, b'"wind"'),
    "type_mismatch": (3, b'"12.5"'),
    "above_max": (4, b"1.5"),
    "invalid_utf8": (5, b'"caf\xe9"'),
}


def _sensor_chunk(n: int, first_row: int, layout: _Layout, seed: int, chunk: int) -> pa.Array:
    s = seed * 1_000 + chunk * 16
    device = _join(b'"', _pick(_DEVICES, _ints(n, s, 1, len(_DEVICES))), b'"')
    # One reading per second of the file: the (device, ts, metric) key is unique by construction.
    seconds = pc.add(pa.array(range(first_row, first_row + n), pa.int64()), 0)
    ts = _join(b'"', _timestamps(pc.modulo(seconds, _SPAN_S * 100)), b'"')
    metric = _join(b'"', _pick(_METRICS, _ints(n, s, 2, len(_METRICS))), b'"')
    value = _text(
        pc.divide(pc.cast(pc.subtract(_ints(n, s, 3, 12_000), 2_000), pa.float64()), 100.0)
    )
    battery = _text(pc.divide(pc.cast(_ints(n, s, 4, 1_001), pa.float64()), 1000.0))
    battery = pc.if_else(pc.equal(_ints(n, s, 5, 10), 0), pa.scalar(b"null", pa.binary()), battery)
    site = _pick(_SITES, _ints(n, s, 6, len(_SITES)))
    ok = _pick(_OKS, _ints(n, s, 7, len(_OKS)))
    m = layout.masks
    cols = _spoil([device, ts, metric, value, battery, site, ok], m, _SENSOR_DEFECTS)
    fields = [b'{"device_id":', b',"ts":', b',"metric":', b',"value":', b',"battery":']
    fields += [b',"site":', b',"ok":']
    lines = _join(*(part for pair in zip(fields, cols, strict=True) for part in pair), b"}")
    if "too_deep" in m:
        lines = pc.if_else(m["too_deep"], _join(_DEEP, pc.binary_slice(lines, 1, 1 << 20)), lines)
    if "invalid_json" in m:
        lines = _replace(lines, m["invalid_json"], b'{"device_id": "dev-0000abcd", "ts": ')
    if "not_an_object" in m:
        lines = _replace(lines, m["not_an_object"], b'["dev-0000abcd", 1, 2]')
    lines = _join(lines, b"\n")
    if layout.source is not None:
        lines = pc.take(lines, layout.source)
    return lines


_BUILDERS: dict[str, tuple[Callable[[int, int, _Layout, int, int], pa.Array], list[str], bytes]] = {
    "orders": (_orders_chunk, ORDERS_BAD, ORDERS_HEADER),
    "sensor_readings": (_sensor_chunk, SENSOR_BAD, b""),
}


def generate(
    dataset: str,
    path: Path,
    *,
    rows: int | None = None,
    size_bytes: int | None = None,
    bad_ratio: float = 0.0,
    duplicate_ratio: float = 0.0,
    seed: int = 0,
    gzip: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> GroundTruth:
    """Write a sample file of `dataset` at `path`; return its ground truth.

    Give `rows` (exact row count, header excluded) or `size_bytes` (stop at the first chunk that
    reaches it). `bad_ratio`/`duplicate_ratio` are fractions of all rows (exact up to rounding);
    bad rows cycle through the dataset's reason codes. `progress(rows, bytes)` is called after
    each chunk. Raises ValueError for an unknown dataset or inconsistent arguments.
    """
    if dataset not in _BUILDERS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    if (rows is None) == (size_bytes is None):
        raise ValueError("give exactly one of rows or size_bytes")
    if not (0 <= bad_ratio <= 1 and 0 <= duplicate_ratio <= 1 and bad_ratio + duplicate_ratio <= 1):
        raise ValueError("bad_ratio and duplicate_ratio must be fractions summing to at most 1")
    build, codes, header = _BUILDERS[dataset]
    path.parent.mkdir(parents=True, exist_ok=True)
    bad: dict[str, int] = {}
    duplicates = 0
    written = 0
    done = 0
    chunk = 0
    with contextlib.ExitStack() as stack:
        out: BinaryIO = stack.enter_context(path.open("wb"))
        if gzip:
            # No name and mtime=0 in the header: the same arguments give the same bytes.
            out = cast(
                "BinaryIO",
                stack.enter_context(
                    gzip_module.GzipFile(
                        filename="", mode="wb", fileobj=out, compresslevel=6, mtime=0
                    )
                ),
            )
        if header:
            out.write(header)
            written += len(header)
        while (rows is not None and done < rows) or (
            size_bytes is not None and written < size_bytes
        ):
            n = CHUNK_ROWS if rows is None else min(CHUNK_ROWS, rows - done)
            layout = _layout(n, done, bad_ratio, duplicate_ratio, seed, chunk, codes)
            lines = build(n, done, layout, seed, chunk)
            data = _buffer_of(lines)
            out.write(data)
            written += len(data)
            for code, count in layout.bad_counts.items():
                bad[code] = bad.get(code, 0) + count
            duplicates += layout.duplicates
            done += n
            chunk += 1
            if progress is not None:
                progress(done, written)
    n_bad = sum(bad.values())
    return GroundTruth(
        dataset=dataset,
        rows_total=done,
        rows_bad=dict(sorted(bad.items())),
        rows_duplicate=duplicates,
        expected_good_keys=done - n_bad - duplicates,
        bytes_written=written,
        seed=seed,
    )


def _buffer_of(lines: pa.Array) -> memoryview:
    """The bytes of all values back to back: the values buffer itself, no copy."""
    lines = lines.cast(pa.large_binary())
    buffers = lines.buffers()
    offsets = pa.Array.from_buffers(pa.int64(), len(lines) + 1, [None, buffers[1]], 0, lines.offset)
    first = offsets[0].as_py()
    last = offsets[len(lines)].as_py()
    return memoryview(buffers[2])[first:last]


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?I?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_size(text: str) -> int:
    """'2GB' -> 2_000_000_000, '200MiB' -> 209_715_200, '1000' -> 1000."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit = match.groups()
    unit = unit.upper()
    base = 1024 if "I" in unit else 1000
    power = "BKMGT".index(unit[0]) if unit and unit[0] != "B" else 0
    return int(float(number) * base**power)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sluice.generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("path", type=Path)
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--rows", type=int)
    amount.add_argument("--size", type=parse_size, help="e.g. 200MB, 2GB, 1GiB")
    parser.add_argument("--bad-ratio", type=float, default=0.0)
    parser.add_argument("--dup-ratio", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--truth", type=Path, help="write the ground truth JSON here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    last = [started]

    def progress(done: int, written: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= 2.0:
            last[0] = now
            rate = written / (now - started) / 1e6
            print(f"  {done:,} rows, {written / 1e6:,.0f} MB ({rate:,.0f} MB/s)", file=sys.stderr)

    truth = generate(
        args.dataset,
        args.path,
        rows=args.rows,
        size_bytes=args.size,
        bad_ratio=args.bad_ratio,
        duplicate_ratio=args.dup_ratio,
        seed=args.seed,
        gzip=args.gzip,
        progress=progress,
    )
    elapsed = time.perf_counter() - started
    if args.truth:
        args.truth.write_bytes(truth.to_json() + b"\n")
    print(truth.to_json().decode())
    print(
        f"wrote {truth.rows_total:,} rows, {truth.bytes_written / 1e6:,.1f} MB in "
        f"{elapsed:.1f} s ({truth.bytes_written / 1e6 / max(elapsed, 1e-9):,.0f} MB/s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
