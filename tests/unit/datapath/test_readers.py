"""Reading raw bytes: gzip with limits, blocks cut on record ends, record bounds."""

from __future__ import annotations

import gzip
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice_shared.datapath.blocks import (
    Block,
    OversizeRecord,
    SourceError,
    first_record_end,
    iter_blocks,
    last_record_end,
    quote_skeleton,
    read_gzip,
    record_bounds,
    split_lines,
)


def _records(data: bytes, quote: bytes | None) -> list[bytes]:
    bounds = record_bounds(data, quote)
    return [
        data[s:e] for s, e in zip(bounds.starts.to_pylist(), bounds.ends.to_pylist(), strict=True)
    ]


def test_record_bounds_quoted_newline_stays_in_record() -> None:
    data = b'a,b\n"x\ny",2\n3,"4\r\n\r\n5"\n6,7'
    assert _records(data, b'"') == [b"a,b\n", b'"x\ny",2\n', b'3,"4\r\n\r\n5"\n', b"6,7"]


def test_record_bounds_blank_lines_are_not_records() -> None:
    data = b"\na\n\r\n\nb\r\n\n"
    assert _records(data, None) == [b"a\n", b"b\r\n"]


def test_record_bounds_blank_lines_between_quoted_records_are_not_records() -> None:
    data = b'"x\n\r\ny",1\n\r\n\n2,"\r"\n\r\n3\n'
    assert _records(data, b'"') == [b'"x\n\r\ny",1\n', b'2,"\r"\n', b"3\n"]


def test_last_record_end_skips_newline_inside_open_quote() -> None:
    buf = b'1,2\n3,"open\nstill open'
    assert last_record_end(buf, b'"') == 4
    assert last_record_end(buf, None) == len(b'1,2\n3,"open\n')
    assert last_record_end(b"no newline", b'"') == 0


def test_first_record_end_carries_parity_across_chunks() -> None:
    end, odd = first_record_end(b'a,"b\nc', b'"', 0)
    assert (end, odd) == (-1, 1)
    end, odd = first_record_end(b'd"\ne\n', b'"', odd)
    assert (end, odd) == (3, 0)


def test_iter_blocks_cuts_only_on_record_ends_and_keeps_offsets() -> None:
    data = b'h\n"a\nb",1\n' + b"x,2\n" * 50 + b"last"
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    items = list(
        iter_blocks(iter(chunks), offset=100, quote=b'"', block_bytes=16, max_record_bytes=1000)
    )
    assert all(isinstance(i, Block) for i in items)
    blocks = [i for i in items if isinstance(i, Block)]
    assert b"".join(b.data for b in blocks) == data
    position = 100
    for block in blocks:
        assert block.offset == position
        position += len(block.data)
        assert block.data.endswith(b"\n") or block is blocks[-1]


def test_iter_blocks_oversized_record_is_skipped_without_buffering_it() -> None:
    big = b'"' + b"y" * 5000 + b'\n"' + b",1\n"
    data = b"a,1\n" + big + b"b,2\n"
    chunks = [data[i : i + 256] for i in range(0, len(data), 256)]
    items = list(
        iter_blocks(iter(chunks), offset=0, quote=b'"', block_bytes=64, max_record_bytes=1000)
    )
    oversize = [i for i in items if isinstance(i, OversizeRecord)]
    assert len(oversize) == 1
    assert oversize[0].offset == 4
    assert oversize[0].size == len(big)
    rest = b"".join(i.data for i in items if isinstance(i, Block))
    assert rest == b"a,1\nb,2\n"


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def test_read_gzip_multi_member_stream_is_read_whole() -> None:
    payload = _gz(b"one\n") + _gz(b"two\n")
    out = b"".join(read_gzip(io.BytesIO(payload), len(payload), 100.0, 10**9, 1 << 20))
    assert out == b"one\ntwo\n"


def test_read_gzip_corrupt_data_raises_corrupt_gzip() -> None:
    payload = bytearray(_gz(b"hello world\n" * 100))
    payload[20:30] = b"\x00" * 10
    with pytest.raises(SourceError) as caught:
        b"".join(read_gzip(io.BytesIO(bytes(payload)), len(payload), 100.0, 10**9, 1 << 20))
    assert caught.value.code == "corrupt_gzip"


def test_read_gzip_truncated_stream_raises_corrupt_gzip() -> None:
    payload = _gz(b"hello world\n" * 100)[:-12]
    with pytest.raises(SourceError) as caught:
        b"".join(read_gzip(io.BytesIO(payload), len(payload), 100.0, 10**9, 1 << 20))
    assert caught.value.code == "corrupt_gzip"


def test_read_gzip_bomb_stops_at_ratio_before_expanding() -> None:
    payload = _gz(b"\x00" * 50_000_000)
    produced: list[int] = []

    def drain() -> None:
        for chunk in read_gzip(io.BytesIO(payload), len(payload), 10.0, 10**12, 64 * 1024):
            produced.append(len(chunk))

    with pytest.raises(SourceError) as caught:
        drain()
    assert caught.value.code == "decompression_ratio_exceeded"
    # Stopped within one output chunk of the limit, not after 50 MB.
    assert sum(produced) <= 10 * len(payload) + 64 * 1024


def test_read_gzip_output_over_file_limit_raises_file_too_large() -> None:
    payload = _gz(b"abc\n" * 10_000)
    with pytest.raises(SourceError) as caught:
        b"".join(read_gzip(io.BytesIO(payload), len(payload), 10_000.0, 1000, 512))
    assert caught.value.code == "file_too_large"


def _blocks_of_one_buffer(pieces: list[bytes], quote: bytes, block_bytes: int) -> list[Block]:
    """The blocks as cut from one growing buffer: each piece is appended, and once the buffer
    holds `block_bytes`, everything up to its last record end is a block."""
    buf = b""
    offset = 0
    blocks = []
    for piece in pieces:
        buf += piece
        if len(buf) < block_bytes:
            continue
        cut = last_record_end(buf, quote)
        if cut:
            blocks.append(Block(buf[:cut], offset))
            offset += cut
            buf = buf[cut:]
    if buf:
        blocks.append(Block(buf, offset))
    return blocks


@pytest.mark.parametrize("seed", range(40))
def test_iter_blocks_cuts_at_the_last_record_end_of_each_buffer_whatever_the_chunks(
    seed: int,
) -> None:
    # GIVEN a stream of records with quoted newlines, read in chunks of random sizes
    import random

    rng = random.Random(seed)
    records = []
    for _ in range(rng.randrange(1, 60)):
        text = "".join(rng.choice('ab,"\n') for _ in range(rng.randrange(0, 12)))
        records.append(f'{rng.randrange(100)},"{text.replace(chr(34), "")}"\n')
    data = "".join(records).encode()
    block_bytes = rng.choice([8, 16, 40, 100])
    pieces = []
    pos = 0
    while pos < len(data):
        size = rng.choice([block_bytes, block_bytes, rng.randrange(1, 2 * block_bytes)])
        pieces.append(data[pos : pos + size])
        pos += size
    # WHEN it is cut into blocks
    blocks = list(
        iter_blocks(
            iter(pieces), offset=0, quote=b'"', block_bytes=block_bytes, max_record_bytes=10**6
        )
    )
    # THEN they are the blocks of one growing buffer: the stream, in order, each ending on a
    # record end
    assert blocks == _blocks_of_one_buffer(pieces, b'"', block_bytes)
    assert b"".join(b.data for b in blocks if isinstance(b, Block)) == data
    offset = 0
    for block in blocks:
        assert isinstance(block, Block)
        assert block.offset == offset
        assert block.data.count(b'"') % 2 == 0
        assert block.data.endswith(b"\n") or offset + len(block.data) == len(data)
        offset += len(block.data)


@settings(max_examples=80, deadline=None)
@given(data=st.binary(max_size=60).map(lambda b: b.replace(b"x", b"\n")))
def test_split_lines_starts_and_lengths_are_those_of_bytes_split(data: bytes) -> None:
    parts = data.split(b"\n")
    if data.endswith(b"\n"):
        parts.pop()
    starts, pos = [], 0
    for part in parts:
        starts.append(pos)
        pos += len(part) + 1
    split = split_lines(data)
    assert split.starts.to_pylist() == starts
    assert split.lengths.to_pylist() == [len(p) for p in parts]
    assert split.lines.to_pylist() == parts


@pytest.mark.parametrize("seed", range(30))
def test_iter_blocks_hands_each_block_the_quote_skeleton_of_its_bytes(seed: int) -> None:
    # GIVEN records with quoted newlines, doubled quotes and some over the record limit, read
    # in chunks of random sizes
    import random

    rng = random.Random(seed)
    records = []
    for _ in range(rng.randrange(1, 80)):
        kind = rng.randrange(4)
        if kind == 0:
            records.append(b'7,"' + b"x" * rng.randrange(20, 90) + b'"\n')
        elif kind == 1:
            records.append(b'1,"a ""q"" \nb"\n')
        else:
            records.append(f"{rng.randrange(100)},{'ab' * rng.randrange(4)}\n".encode())
    data = b"".join(records)
    block_bytes = rng.choice([16, 40, 100])
    pieces = []
    pos = 0
    while pos < len(data):
        size = rng.choice([block_bytes, rng.randrange(1, 2 * block_bytes)])
        pieces.append(data[pos : pos + size])
        pos += size
    # WHEN it is cut into blocks
    items = list(
        iter_blocks(
            iter(pieces), offset=0, quote=b'"', block_bytes=block_bytes, max_record_bytes=50
        )
    )
    # THEN a block that carries a skeleton carries its own bytes' (and most blocks carry one)
    blocks = [item for item in items if isinstance(item, Block)]
    carried = [block for block in blocks if block.quotes is not None]
    assert len(carried) * 2 >= len(blocks)
    for block in carried:
        assert block.quotes == quote_skeleton(block.data, b'"')
    # AND without a quote character (JSON lines) there is none
    lines = list(
        iter_blocks(
            iter(pieces), offset=0, quote=None, block_bytes=block_bytes, max_record_bytes=50
        )
    )
    assert all(item.quotes is None for item in lines if isinstance(item, Block))
