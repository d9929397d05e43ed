"""S3ObjectStore against a moto server."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from types_aiobotocore_s3.client import S3Client

from sluice_shared.aws.s3 import MIB, S3ObjectStore
from sluice_shared.errors import InputLimitExceeded
from sluice_shared.ports import ObjectNotFoundError

BUCKET = "sluice-raw"
DATA = bytes(range(256)) * 40  # 10 240 bytes, every offset distinguishable


@pytest.fixture
async def store(s3: S3Client) -> S3ObjectStore:
    await s3.create_bucket(Bucket=BUCKET)
    await s3.put_object(Bucket=BUCKET, Key="orders/a.csv", Body=DATA, ContentType="text/csv")
    # A small chunk so a 10 KB download really is streamed in pieces.
    return S3ObjectStore(s3, chunk_bytes=1024)


async def test_s3_head_returns_size_etag_and_type(store: S3ObjectStore) -> None:
    info = await store.head(BUCKET, "orders/a.csv")

    assert (info.key, info.size, info.content_type) == ("orders/a.csv", len(DATA), "text/csv")
    assert info.etag == hashlib.md5(DATA, usedforsecurity=False).hexdigest()  # unquoted


async def test_s3_head_missing_key_is_object_not_found(store: S3ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError):
        await store.head(BUCKET, "orders/missing.csv")


async def test_s3_download_to_whole_object_streams_to_disk(
    store: S3ObjectStore, tmp_path: Path
) -> None:
    target = tmp_path / "a.csv"

    written = await store.download_to(BUCKET, "orders/a.csv", target)

    assert written == len(DATA)
    assert target.read_bytes() == DATA


async def test_s3_download_to_object_within_one_chunk_writes_whole_object(
    s3: S3Client, tmp_path: Path
) -> None:
    await s3.create_bucket(Bucket=BUCKET)
    await s3.put_object(Bucket=BUCKET, Key="orders/small.csv", Body=DATA)
    store = S3ObjectStore(s3, chunk_bytes=len(DATA))
    target = tmp_path / "small.csv"
    target.write_bytes(b"stale bytes of a longer earlier file " * 1000)

    written = await store.download_to(BUCKET, "orders/small.csv", target)

    assert written == len(DATA)
    assert target.read_bytes() == DATA


async def test_s3_download_to_missing_key_is_object_not_found(
    store: S3ObjectStore, tmp_path: Path
) -> None:
    with pytest.raises(ObjectNotFoundError):
        await store.download_to(BUCKET, "orders/missing.csv", tmp_path / "missing.csv")


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [
        ((0, 1), DATA[0:1]),
        ((1000, 5000), DATA[1000:5000]),
        ((10_000, 20_000), DATA[10_000:]),  # past the end: S3 returns what exists
        ((500, 500), b""),
    ],
    ids=["first-byte", "middle", "past-the-end", "empty"],
)
async def test_s3_download_to_byte_range_is_half_open(
    store: S3ObjectStore, tmp_path: Path, byte_range: tuple[int, int], expected: bytes
) -> None:
    target = tmp_path / "part"
    target.write_bytes(b"stale content from an earlier attempt")

    written = await store.download_to(BUCKET, "orders/a.csv", target, byte_range=byte_range)

    assert written == len(expected)
    assert target.read_bytes() == expected


async def test_s3_download_to_reversed_range_is_rejected(
    store: S3ObjectStore, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="range"):
        await store.download_to(BUCKET, "orders/a.csv", tmp_path / "x", byte_range=(5, 2))


async def test_s3_download_to_specific_version(s3: S3Client, tmp_path: Path) -> None:
    # GIVEN a versioned bucket with two versions of one key
    await s3.create_bucket(Bucket="versioned")
    await s3.put_bucket_versioning(
        Bucket="versioned", VersioningConfiguration={"Status": "Enabled"}
    )
    first = await s3.put_object(Bucket="versioned", Key="k", Body=b"first")
    await s3.put_object(Bucket="versioned", Key="k", Body=b"second")
    store = S3ObjectStore(s3)

    # WHEN the first version is downloaded by id
    written = await store.download_to(
        "versioned", "k", tmp_path / "k", version_id=first["VersionId"]
    )

    # THEN its bytes come back, not the latest
    assert (tmp_path / "k").read_bytes() == b"first"
    assert written == 5


async def test_s3_upload_file_above_threshold_goes_in_parts(
    store: S3ObjectStore, s3: S3Client, tmp_path: Path
) -> None:
    # GIVEN a file just above the 8 MiB multipart threshold
    source = tmp_path / "big.bin"
    payload = os.urandom(8 * MIB + 4096)
    source.write_bytes(payload)

    # WHEN it is uploaded
    await store.upload_file(source, BUCKET, "stage/big.bin", content_type="application/x")

    # THEN S3 holds the same bytes, assembled from two parts (multipart ETags end in -<parts>)
    info = await store.head(BUCKET, "stage/big.bin")
    assert info.size == len(payload)
    assert info.etag.endswith("-2")
    assert info.content_type == "application/x"
    copy = tmp_path / "copy.bin"
    await store.download_to(BUCKET, "stage/big.bin", copy)
    assert copy.read_bytes() == payload
    uploads = await s3.list_multipart_uploads(Bucket=BUCKET)
    assert uploads.get("Uploads", []) == []


async def test_s3_upload_file_small_is_single_put(store: S3ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "small.txt"
    source.write_bytes(b"hello")

    await store.upload_file(source, BUCKET, "stage/small.txt")

    info = await store.head(BUCKET, "stage/small.txt")
    assert (info.size, "-" in info.etag) == (5, False)


async def test_s3_get_bytes_within_limit_returns_object(store: S3ObjectStore) -> None:
    await store.put_bytes(BUCKET, "_manifests/m.json", b'{"a": 1}', content_type="application/json")

    assert await store.get_bytes(BUCKET, "_manifests/m.json", max_bytes=8) == b'{"a": 1}'


async def test_s3_get_bytes_above_limit_raises_input_limit(store: S3ObjectStore) -> None:
    with pytest.raises(InputLimitExceeded) as caught:
        await store.get_bytes(BUCKET, "orders/a.csv", max_bytes=len(DATA) - 1)

    assert caught.value.code == "object_too_large"


async def test_s3_get_bytes_missing_key_is_object_not_found(store: S3ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError):
        await store.get_bytes(BUCKET, "nope", max_bytes=10)


async def test_s3_list_keys_and_delete_prefix_touch_only_the_prefix(store: S3ObjectStore) -> None:
    for n in range(5):
        await store.put_bytes(BUCKET, f"stage/f1/p{n}.arrow", b"x" * n)
    await store.put_bytes(BUCKET, "stage/f2/p0.arrow", b"keep")

    listed = [info async for info in store.list_keys(BUCKET, "stage/f1/")]
    deleted = await store.delete_prefix(BUCKET, "stage/f1/")

    assert [i.key for i in listed] == [f"stage/f1/p{n}.arrow" for n in range(5)]
    assert [i.size for i in listed] == [0, 1, 2, 3, 4]
    assert deleted == 5
    assert [i.key async for i in store.list_keys(BUCKET, "stage/")] == ["stage/f2/p0.arrow"]
