"""Plan's record cuts from ranged reads equal the exact sequential quote-parity planner's, while
reading only windows near the cuts."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from contracts.datasets import load_contract
from sluice.generate import generate
from sluice_batch.cuts import plan_cuts
from sluice_shared.datapath.split import plan_byte_ranges


def reader(data: bytes, log: list[tuple[int, int]] | None = None):  # type: ignore[no-untyped-def]
    async def read(start: int, end: int) -> bytes:
        if log is not None:
            log.append((start, end))
        return data[start:end]

    return read


AMBIGUOUS_NOTES = ['","', '""""', '"\n"', '",\n,"']


def tricky_csv(rows: int, seed: int, *, ambiguous: bool = True) -> bytes:
    """Orders whose notes are quoted, hold newlines, delimiters, doubled quotes, or (ambiguous)
    start with a quote or a delimiter: the cases where a wrong parity guess looks plausible."""
    rng = random.Random(seed)
    notes = [
        "",
        "plain",
        '"multi\nline, note"',
        '"says ""hi"""',
        '"a\n\nb"',
        *(AMBIGUOUS_NOTES if ambiguous else []),
    ]
    lines = ["order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note"]
    for i in range(rows):
        note = rng.choice(notes)
        lines.append(f"ORD-{i:06d},c{i},2024-03-01T10:00:00Z,SKU-{i % 7},1,2.5,EUR,DE,{note}")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("target", [700, 4096, 10_000])
async def test_plan_cuts_csv_quoted_newlines_equal_sequential_planner(
    tmp_path: Path, seed: int, target: int
) -> None:
    # GIVEN a CSV full of quoted fields with newlines, delimiters and doubled quotes
    data = tricky_csv(2000, seed)
    src = tmp_path / "orders.csv"
    src.write_bytes(data)
    contract = load_contract("orders")
    # WHEN plan cuts it from ranged reads
    plan = await plan_cuts(
        reader(data), len(data), contract, key="x.csv", target_bytes=target, window_bytes=2048
    )
    # THEN the ranges are exactly those of the full quote-parity scan
    expected, _ = plan_byte_ranges(src, contract, target_bytes=target)
    assert plan.ranges == expected
    assert len(plan.ranges) > 1


async def test_plan_cuts_reads_only_windows_near_the_cuts() -> None:
    # GIVEN a 1.2 MB CSV with quoted multi-line notes (none starting with a quote or delimiter)
    data = tricky_csv(20_000, 4, ambiguous=False)
    log: list[tuple[int, int]] = []
    # WHEN it is cut into ~100 KB partitions with 4 KB windows
    plan = await plan_cuts(
        reader(data, log),
        len(data),
        load_contract("orders"),
        key="x.csv",
        target_bytes=100_000,
        window_bytes=4096,
    )
    # THEN every read is one small window and the total is a small fraction of the object
    assert len(plan.ranges) >= 10
    assert all(end - start <= 4097 for start, end in log)
    assert plan.bytes_read < len(data) // 10
    assert plan.sequential_cuts == 0


async def test_plan_cuts_ambiguous_window_falls_back_to_sequential_scan(tmp_path: Path) -> None:
    # GIVEN a CSV whose every note is `","` (a quoted delimiter: both parities look plausible)
    header = "order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
    body = "".join(f'ORD-{i:06d},c,2024-03-01T10:00:00Z,S,1,2.5,EUR,DE,","\n' for i in range(3000))
    data = (header + body).encode()
    src = tmp_path / "amb.csv"
    src.write_bytes(data)
    contract = load_contract("orders")
    # WHEN plan cuts it
    plan = await plan_cuts(
        reader(data), len(data), contract, key="a.csv", target_bytes=20_000, window_bytes=1024
    )
    # THEN the cuts are still exact, and the note says how they were found
    assert plan.ranges == plan_byte_ranges(src, contract, target_bytes=20_000)[0]
    assert all(data[r.end - 1 : r.end] == b"\n" for r in plan.ranges)


async def test_plan_cuts_jsonl_cut_after_newlines(tmp_path: Path) -> None:
    # GIVEN a JSON Lines file
    src = tmp_path / "s.jsonl"
    generate("sensor_readings", src, rows=3000, seed=2)
    data = src.read_bytes()
    contract = load_contract("sensor_readings")
    # WHEN plan cuts it
    plan = await plan_cuts(
        reader(data), len(data), contract, key="s.jsonl", target_bytes=30_000, window_bytes=4096
    )
    # THEN it matches the sequential planner and every range ends a line
    assert plan.ranges == plan_byte_ranges(src, contract, target_bytes=30_000)[0]
    assert len(plan.ranges) > 3
    assert all(data[r.end - 1 : r.end] == b"\n" for r in plan.ranges)


async def test_plan_cuts_gzip_object_is_one_whole_partition() -> None:
    # GIVEN a gzip CSV far above the partition target
    data = gzip.compress(tricky_csv(5000, 5))
    # WHEN plan cuts it
    plan = await plan_cuts(
        reader(data),
        len(data),
        load_contract("orders"),
        key="orders.csv.gz",
        target_bytes=1000,
        window_bytes=4096,
    )
    # THEN it is one range over the whole object, and the note says why
    assert [(r.start, r.end) for r in plan.ranges] == [(0, len(data))]
    assert "gzip" in plan.note


async def test_plan_cuts_header_stays_with_a_record() -> None:
    # GIVEN a CSV whose header alone is longer than the target
    data = tricky_csv(50, 6)
    # WHEN plan cuts it with a tiny target
    plan = await plan_cuts(
        reader(data),
        len(data),
        load_contract("orders"),
        key="o.csv",
        target_bytes=10,
        window_bytes=256,
    )
    # THEN range 0 holds the header and at least one record
    first = data[plan.ranges[0].start : plan.ranges[0].end]
    assert first.count(b"\n") >= 2
    assert plan.ranges[-1].end == len(data)
