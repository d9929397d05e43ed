"""Hash buckets of staged rows, so every copy of a primary key lands in the same bucket.

The hash must be identical in every process and on every machine that validates a partition of
the same file (Python's `hash()` is salted per process, Arrow's hash kernels are not exposed), so
it is computed here from the values' bytes with Arrow compute kernels only: no per-row Python.
Values are read as little-endian 64-bit words (x86-64 and arm64 Lambda are both little-endian).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

# Re-exported: it lives with the keys so the stages import it without pyarrow.
from sluice_shared.keys import bucket_count_for as bucket_count_for

if TYPE_CHECKING:
    from collections.abc import Sequence

_U64 = pa.uint64()
_PRIME = pa.scalar(0x100000001B3, _U64)  # FNV-1a 64-bit prime: mixes a word into the hash
_MIX1 = pa.scalar(0xFF51AFD7ED558CCD, _U64)  # murmur3 fmix64 constants
_MIX2 = pa.scalar(0xC4CEB9FE1A85EC53, _U64)
_SEED = 0xCBF29CE484222325  # FNV offset basis
_SHIFT = pa.scalar(33, _U64)
_PAD8 = pa.scalar(b"\x00" * 8, pa.binary())


def _fmix(h: pa.Array) -> pa.Array:
    h = pc.bit_wise_xor(h, pc.shift_right(h, _SHIFT))
    h = pc.multiply(h, _MIX1)  # unchecked multiply wraps modulo 2**64, as the mix requires
    h = pc.bit_wise_xor(h, pc.shift_right(h, _SHIFT))
    h = pc.multiply(h, _MIX2)
    return pc.bit_wise_xor(h, pc.shift_right(h, _SHIFT))


def _combine(h: pa.Array, word: pa.Array) -> pa.Array:
    return pc.multiply(pc.bit_wise_xor(h, word), _PRIME)


def _words_of_binary(values: pa.Array, h: pa.Array) -> pa.Array:
    """Fold the bytes of each binary value into `h`, eight bytes (one word) at a time; a value's
    last word is padded with zero bytes, and a value shorter than a word's start (or null)
    contributes a zero word there."""
    lengths = pc.fill_null(pc.binary_length(values), 0)
    longest = pc.max(lengths).as_py() or 0
    h = _combine(h, pc.cast(lengths, _U64))
    if not longest:
        return h
    shortest = pc.min(lengths).as_py() or 0
    # Every value followed by eight zero bytes, once: then each word is one slice (and a cast),
    # not a slice, a join and a slice of its own.
    padded = pc.binary_join_element_wise(values, _PAD8, b"")
    if padded.null_count:
        padded = pc.fill_null(padded, _PAD8)
    for start in range(0, longest, 8):
        piece = pc.binary_slice(padded, start, start + 8)
        if shortest < start:  # values that end before this word: a zero word, as for a null
            piece = pc.if_else(pc.less(lengths, start), _PAD8, piece)
        h = _combine(h, _as_words(piece))
    return h


def _as_words(piece: pa.Array) -> pa.Array:
    """Binary values of eight bytes each (`binary_slice` pieces: at most eight, so eight each
    when they add up to 8 per value) as little-endian uint64 words. A kernel's fresh output
    holds them back to back from an aligned start: its data buffer is then viewed as the
    words, with no cast to fixed-size binary (which copies them; 17% of the string folding's
    CPU); any other layout is cast."""
    n = len(piece)
    offsets, data = piece.buffers()[1], piece.buffers()[2]
    first = int.from_bytes(offsets.slice(4 * piece.offset, 4).to_pybytes(), "little")
    last = int.from_bytes(offsets.slice(4 * (piece.offset + n), 4).to_pybytes(), "little")
    if data is not None and last - first == 8 * n and first % 8 == 0:
        return pa.Array.from_buffers(_U64, n, [None, data.slice(first, 8 * n)])
    fixed = piece.cast(pa.binary(8))
    return pa.Array.from_buffers(_U64, n, [None, fixed.buffers()[1]], fixed.offset)


def _fold_column(column: pa.Array, h: pa.Array) -> pa.Array:
    t = column.type
    null_flag = pc.cast(pc.is_null(column), _U64)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        h = _words_of_binary(column.cast(pa.binary()), h)
    else:
        if pa.types.is_floating(t):
            # -0.0 and 0.0 are equal keys; normalise before taking the bits.
            column = pc.add(column.cast(pa.float64()), pa.scalar(0.0))
            word = column.view(pa.int64())
        elif pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
            word = column.view(pa.int64() if t.bit_width == 64 else pa.int32()).cast(pa.int64())
        else:
            word = column.cast(pa.int64())
        word = pc.fill_null(word, 0).view(_U64)
        h = _combine(h, word)
    return _combine(h, null_flag)


def assign_buckets(
    batch: pa.RecordBatch, key_columns: Sequence[str], bucket_count: int
) -> pa.Array:
    """The bucket (uint64, 0 <= b < bucket_count) of each row of `batch`.

    Rows with equal values in `key_columns` (compared as typed values, nulls equal) get the same
    bucket in any process. With no key columns or one bucket every row is in bucket 0.
    Raises ValueError when bucket_count < 1 and KeyError for an unknown column.
    """
    if bucket_count < 1:
        raise ValueError("bucket_count must be at least 1")
    n = batch.num_rows
    if bucket_count == 1 or not key_columns:
        return pa.nulls(n, _U64).fill_null(0)
    h = pa.nulls(n, _U64).fill_null(_SEED)
    for name in key_columns:
        idx = batch.schema.get_field_index(name)
        if idx < 0:
            raise KeyError(name)
        h = _fold_column(batch.column(idx), h)
    return pc.modulo(_fmix(h), pa.scalar(bucket_count, _U64))
