"""S3ObjectStore on a moto server: what only the S3 adapter has (chunked streaming, multipart
uploads, object versions). The behaviour every `ObjectStore` shares is proved for this adapter and
the fake alike in `test_port_contract_objects.py`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from types_aiobotocore_s3.client import S3Client

from sluice_shared.aws.s3 import MIB, S3ObjectStore

BUCKET = "sluice-raw"
DATA = bytes(range(256)) * 40  # 10 240 bytes, every offset distinguishable


@pytest.fixture
async def store(s3: S3Client) -> S3ObjectStore:
    await s3.create_bucket(Bucket=BUCKET)
    await s3.put_object(Bucket=BUCKET, Key="orders/a.csv", Body=DATA, ContentType="text/csv")
    # A small chunk so a 10 KB download really is streamed in pieces.
    return S3ObjectStore(s3, chunk_bytes=1024)


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
