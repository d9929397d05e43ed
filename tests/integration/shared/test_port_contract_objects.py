"""The `ObjectStore` port's contract, run against both implementations: the in-memory fake
(`tests.fakes.InMemoryObjectStore`) and `S3ObjectStore` on a moto server. What only S3 has
(chunked streaming, multipart uploads, object versions) is in `test_s3_object_store.py`."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import pytest
from types_aiobotocore_s3.client import S3Client

from sluice_shared.aws.s3 import S3ObjectStore
from sluice_shared.errors import InputLimitExceeded
from sluice_shared.ports import ObjectNotFoundError, ObjectStore
from tests.fakes import InMemoryObjectStore

BUCKET = "sluice-raw"
DATA = bytes(range(256)) * 40  # 10 240 bytes, every offset distinguishable


@pytest.fixture(params=["in_memory", "s3"])
def s3_or_none(request: pytest.FixtureRequest) -> S3Client | None:
    """None for the fake; a client of the per-test moto server for the adapter."""
    if request.param == "in_memory":
        return None
    client: S3Client = request.getfixturevalue("s3")
    return client


@pytest.fixture
async def store(s3_or_none: S3Client | None) -> ObjectStore:
    """A store holding `orders/a.csv` (DATA, text/csv) in BUCKET."""
    if s3_or_none is None:
        fake = InMemoryObjectStore()
        fake.put(BUCKET, "orders/a.csv", DATA, content_type="text/csv")
        return fake
    await s3_or_none.create_bucket(Bucket=BUCKET)
    await s3_or_none.put_object(
        Bucket=BUCKET, Key="orders/a.csv", Body=DATA, ContentType="text/csv"
    )
    # A small chunk so a 10 KB download really is streamed in pieces.
    return S3ObjectStore(s3_or_none, chunk_bytes=1024)


async def test_object_store_head_returns_size_unquoted_etag_and_type(store: ObjectStore) -> None:
    info = await store.head(BUCKET, "orders/a.csv")

    assert (info.key, info.size, info.content_type) == ("orders/a.csv", len(DATA), "text/csv")
    assert info.etag == hashlib.md5(DATA, usedforsecurity=False).hexdigest()
    assert isinstance(info.last_modified, datetime)
    assert info.last_modified.tzinfo is not None


async def test_object_store_missing_key_is_object_not_found_everywhere(
    store: ObjectStore, tmp_path: Path
) -> None:
    with pytest.raises(ObjectNotFoundError):
        await store.head(BUCKET, "orders/missing.csv")
    with pytest.raises(ObjectNotFoundError):
        await store.download_to(BUCKET, "orders/missing.csv", tmp_path / "missing.csv")
    with pytest.raises(ObjectNotFoundError):
        await store.get_bytes(BUCKET, "orders/missing.csv", max_bytes=10)


async def test_object_store_download_to_replaces_what_the_file_held(
    store: ObjectStore, tmp_path: Path
) -> None:
    # GIVEN a target left longer by an earlier attempt
    target = tmp_path / "a.csv"
    target.write_bytes(b"stale bytes of a longer earlier file " * 1000)

    written = await store.download_to(BUCKET, "orders/a.csv", target)

    # THEN it holds exactly the object (a retried download never appends)
    assert written == len(DATA)
    assert target.read_bytes() == DATA


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [
        ((0, 1), DATA[0:1]),
        ((1000, 5000), DATA[1000:5000]),
        ((10_000, 20_000), DATA[10_000:]),  # past the end: what exists
        ((500, 500), b""),
    ],
    ids=["first-byte", "middle", "past-the-end", "empty"],
)
async def test_object_store_download_to_byte_range_is_half_open(
    store: ObjectStore, tmp_path: Path, byte_range: tuple[int, int], expected: bytes
) -> None:
    target = tmp_path / "part"
    target.write_bytes(b"stale content from an earlier attempt")

    written = await store.download_to(BUCKET, "orders/a.csv", target, byte_range=byte_range)

    assert written == len(expected)
    assert target.read_bytes() == expected


async def test_object_store_download_to_reversed_range_is_rejected(
    store: ObjectStore, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="range"):
        await store.download_to(BUCKET, "orders/a.csv", tmp_path / "x", byte_range=(5, 2))


async def test_object_store_upload_file_roundtrips_bytes_and_type(
    store: ObjectStore, tmp_path: Path
) -> None:
    source = tmp_path / "small.txt"
    source.write_bytes(b"hello")

    await store.upload_file(source, BUCKET, "stage/small.txt", content_type="text/plain")

    info = await store.head(BUCKET, "stage/small.txt")
    assert (info.size, info.content_type) == (5, "text/plain")
    assert await store.get_bytes(BUCKET, "stage/small.txt", max_bytes=5) == b"hello"


async def test_object_store_put_bytes_overwrites_and_get_bytes_reads_within_limit(
    store: ObjectStore,
) -> None:
    await store.put_bytes(BUCKET, "_manifests/m.json", b"{}", content_type="application/json")
    await store.put_bytes(BUCKET, "_manifests/m.json", b'{"a": 1}', content_type="application/json")

    assert await store.get_bytes(BUCKET, "_manifests/m.json", max_bytes=8) == b'{"a": 1}'
    assert (await store.head(BUCKET, "_manifests/m.json")).content_type == "application/json"


async def test_object_store_get_bytes_above_limit_raises_input_limit(store: ObjectStore) -> None:
    with pytest.raises(InputLimitExceeded) as caught:
        await store.get_bytes(BUCKET, "orders/a.csv", max_bytes=len(DATA) - 1)

    assert caught.value.code == "object_too_large"


async def test_object_store_list_keys_and_delete_prefix_touch_only_the_prefix(
    store: ObjectStore,
) -> None:
    for n in (3, 0, 4, 1, 2):
        await store.put_bytes(BUCKET, f"stage/f1/p{n}.arrow", b"x" * n)
    await store.put_bytes(BUCKET, "stage/f2/p0.arrow", b"keep")

    listed = [info async for info in store.list_keys(BUCKET, "stage/f1/")]
    deleted = await store.delete_prefix(BUCKET, "stage/f1/")

    assert [i.key for i in listed] == [f"stage/f1/p{n}.arrow" for n in range(5)]
    assert [i.size for i in listed] == [0, 1, 2, 3, 4]
    assert deleted == 5
    assert [i.key async for i in store.list_keys(BUCKET, "stage/")] == ["stage/f2/p0.arrow"]
    assert [i.key async for i in store.list_keys(BUCKET, "orders/")] == ["orders/a.csv"]
    assert await store.delete_prefix(BUCKET, "stage/none/") == 0


async def test_object_store_put_bytes_if_absent_writes_once_then_refuses_without_writing(
    store: ObjectStore,
) -> None:
    first = await store.put_bytes_if_absent(BUCKET, "_manifests/m.json", b"first")
    second = await store.put_bytes_if_absent(BUCKET, "_manifests/m.json", b"second")

    assert (first, second) == (True, False)
    assert await store.get_bytes(BUCKET, "_manifests/m.json", max_bytes=100) == b"first"


async def test_object_store_download_to_etag_of_an_overwritten_object_is_not_found(
    store: ObjectStore, tmp_path: Path
) -> None:
    # GIVEN the ETag of the object a key held, and the key overwritten since (no versions)
    etag = (await store.head(BUCKET, "orders/a.csv")).etag
    assert await store.download_to(BUCKET, "orders/a.csv", tmp_path / "a", etag=etag) == len(DATA)
    await store.put_bytes(BUCKET, "orders/a.csv", b"newer bytes")
    # WHEN the old object is asked for by its ETag, THEN it is gone, and nothing was read
    with pytest.raises(ObjectNotFoundError):
        await store.download_to(BUCKET, "orders/a.csv", tmp_path / "b", etag=f'"{etag}"')
    assert not (tmp_path / "b").exists()
