"""Hash buckets: every copy of a key lands in the same bucket, in every process."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sluice_shared.datapath.buckets import assign_buckets, bucket_count_for

MiB = 2**20


@pytest.mark.parametrize(
    ("size", "expected"),
    [(0, 1), (1, 1), (512 * MiB, 1), (512 * MiB + 1, 2), (2048 * MiB, 4), (2049 * MiB, 5)],
)
def test_bucket_count_for_rounds_up_per_target(size: int, expected: int) -> None:
    assert bucket_count_for(size) == expected


def test_bucket_count_for_custom_target() -> None:
    assert bucket_count_for(100, target_bytes=30) == 4
    with pytest.raises(ValueError, match="target_bytes"):
        bucket_count_for(100, target_bytes=0)


def _keys() -> pa.RecordBatch:
    return pa.record_batch(
        {
            "id": pa.array(["ORD-1", "ORD-2", "ORD-1", None, "", "é" * 9, "ORD-2"]),
            "n": pa.array([1, 2, 1, 3, None, 5, 2], pa.int64()),
        }
    )


SCRIPT = """
import pyarrow as pa
from sluice_shared.datapath.buckets import assign_buckets
batch = pa.record_batch({
    "id": pa.array(["ORD-1", "ORD-2", "ORD-1", None, "", "é" * 9, "ORD-2"]),
    "n": pa.array([1, 2, 1, 3, None, 5, 2], pa.int64()),
})
print(assign_buckets(batch, ["id", "n"], 7).to_pylist())
"""


def test_assign_buckets_same_in_another_process() -> None:
    # GIVEN a fresh interpreter (Python's own hash() would be salted differently there)
    here = assign_buckets(_keys(), ["id", "n"], 7).to_pylist()
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    # THEN it computes the same buckets
    assert out.stdout.strip() == str(here)


def test_assign_buckets_equal_keys_share_a_bucket() -> None:
    buckets = assign_buckets(_keys(), ["id", "n"], 7).to_pylist()
    assert buckets[0] == buckets[2]
    assert buckets[1] == buckets[6]
    assert all(0 <= b < 7 for b in buckets)


def test_assign_buckets_compares_typed_values() -> None:
    # The same instant written two ways is one key once typed.
    ts = pa.array(
        [datetime(2024, 3, 1, 12, tzinfo=UTC), datetime(2024, 3, 1, 12, tzinfo=UTC)],
        pa.timestamp("us", tz="UTC"),
    )
    floats = pa.array([0.0, -0.0], pa.float64())
    batch = pa.record_batch({"ts": ts, "x": floats})
    buckets = assign_buckets(batch, ["ts", "x"], 16).to_pylist()
    assert buckets[0] == buckets[1]


def test_assign_buckets_spreads_keys_evenly() -> None:
    ids = pa.array([f"ORD-{i:010d}" for i in range(40_000)])
    counts = pc.value_counts(assign_buckets(pa.record_batch({"id": ids}), ["id"], 8))
    sizes = counts.field("counts").to_pylist()
    assert len(sizes) == 8
    assert max(sizes) < 1.1 * 5_000
    assert min(sizes) > 0.9 * 5_000


def test_assign_buckets_one_bucket_or_no_key_is_all_zero() -> None:
    assert set(assign_buckets(_keys(), ["id"], 1).to_pylist()) == {0}
    assert set(assign_buckets(_keys(), [], 5).to_pylist()) == {0}


def test_assign_buckets_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="bucket_count"):
        assign_buckets(_keys(), ["id"], 0)
    with pytest.raises(KeyError):
        assign_buckets(_keys(), ["missing"], 3)


def _words_as_written_in_the_format(values: pa.Array) -> list[list[int]]:
    """Each value's words as the hash reads them, built byte by byte in Python: its bytes in
    little-endian 64-bit words, the last padded with zero bytes, then zero words up to the
    longest value's (a null has no bytes)."""
    raw = [v.encode() if v is not None else b"" for v in values.to_pylist()]
    count = (max(map(len, raw), default=0) + 7) // 8
    return [
        [int.from_bytes(v[8 * k : 8 * k + 8].ljust(8, b"\x00"), "little") for k in range(count)]
        for v in raw
    ]


def test_assign_buckets_string_words_are_the_values_bytes_in_zero_padded_words() -> None:
    # GIVEN strings of every length around the word size, multi-byte characters, empty values
    # and nulls, in a sliced array (a column of a batch cut from a bigger one)
    import random

    from sluice_shared.datapath import buckets

    rng = random.Random(7)
    for _ in range(60):
        values = [
            None
            if rng.random() < 0.1
            else "".join(rng.choice("aZ0-é€") for _ in range(rng.choice([0, 1, 7, 8, 9, 17, 40])))
            for _ in range(rng.randrange(2, 40))
        ]
        column = pa.array(["pad", *values, "pad"], pa.string()).slice(1, len(values))
        seed = pa.nulls(len(values), pa.uint64()).fill_null(0)
        # WHEN the words are folded into the hash, and the same words built in Python are
        expected = seed
        lengths = pc.fill_null(pc.binary_length(column), 0).cast(pa.uint64())
        expected = buckets._combine(expected, lengths)
        words = _words_as_written_in_the_format(column)
        for k in range(len(words[0])):
            expected = buckets._combine(expected, pa.array([w[k] for w in words], pa.uint64()))
        # THEN both give the same hashes
        folded = buckets._words_of_binary(column.cast(pa.binary()), seed)
        assert folded.to_pylist() == expected.to_pylist()


def test_as_words_views_back_to_back_words_and_casts_any_other_layout() -> None:
    from sluice_shared.datapath.buckets import _as_words

    words = [b"abcdefgh", b"12345678", b"ABCDEFGH"]
    expected = [int.from_bytes(w, "little") for w in words]
    # GIVEN eight-byte values back to back (sliced too), and the same values at an odd start
    back_to_back = pa.array([b"zzzzzzzz", *words], pa.binary()).slice(1)
    data = b"xyz" + b"".join(words)
    odd_start = pa.Array.from_buffers(
        pa.binary(),
        3,
        [None, pa.array([3, 11, 19, 27], pa.int32()).buffers()[1], pa.py_buffer(data)],
    )
    # WHEN they are read as words
    viewed, cast = _as_words(back_to_back), _as_words(odd_start)
    # THEN both give the words; the aligned ones are the values' own bytes (no copy)
    assert viewed.to_pylist() == cast.to_pylist() == expected
    assert viewed.buffers()[1].address == back_to_back.buffers()[2].address + 8
    assert cast.buffers()[1].address != odd_start.buffers()[2].address + 3
