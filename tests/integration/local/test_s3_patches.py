"""The S3 byte-copy patches (`sluice.local.s3_patches`) answer exactly what moto answers.

Each test talks to the session's moto server (in this process, on 127.0.0.1) through boto3, once
with moto as shipped and once with the patches applied, and compares status, body and headers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sluice.local import s3_patches

BUCKET = "sluice-s3-patches"
MIB = 2**20
# Headers that differ between any two requests, whatever the code answering them.
VOLATILE = {"date", "x-amzn-requestid", "x-amz-request-id", "x-amz-id-2", "connection"}
SIZE = 12 * MIB + 4321  # above moto's ~5 MB spool: the value lives in a file on disk
RANGES = [
    "bytes=0-0",
    "bytes=0-99",
    f"bytes={5 * MIB}-{6 * MIB + 17}",
    f"bytes={SIZE - 1}-{SIZE - 1}",
    f"bytes={SIZE - 10}-{SIZE + 500}",
    "bytes=100-",
    f"bytes={SIZE - 1}-",
    "bytes=-1",
    "bytes=-500",
    f"bytes=-{SIZE + 10}",
    f"bytes={SIZE}-",
    f"bytes={SIZE + 5}-{SIZE + 9}",
    "bytes=-0",
    "bytes=0-1,5-9",
    "bytes=abc",
    "bytes=9-3",
    "bytes=-",
    None,
]

Answer = tuple[Any, ...]


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def patched() -> Iterator[Callable[[], None]]:
    """`patched()` applies the patches; they are undone when the test ends."""
    undos: list[Callable[[], None]] = []
    yield lambda: undos.append(s3_patches.apply())
    for undo in reversed(undos):
        undo()


def _payload(size: int, seed: str) -> bytes:
    # Distinct bytes at every offset, so a wrong slice cannot match by accident.
    blocks = (hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def _headers(response: dict[str, Any], *drop: str) -> dict[str, str]:
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    return {k: v for k, v in headers.items() if k not in VOLATILE and k not in drop}


def _get(s3: Any, key: str, byte_range: str | None, **extra: Any) -> Answer:
    request: dict[str, Any] = {"Bucket": BUCKET, "Key": key, **extra}
    if byte_range is not None:
        request["Range"] = byte_range
    try:
        response = s3.get_object(**request)
    except ClientError as exc:
        error = exc.response["Error"]
        return ("error", exc.response["ResponseMetadata"]["HTTPStatusCode"], error.get("Code"))
    body = response["Body"].read()
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    return (status, body, _headers(response))


def _upload_parts(s3: Any, key: str, parts: list[bytes], **create: Any) -> dict[str, Any]:
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key, **create)["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        extra = {"ChecksumAlgorithm": create["ChecksumAlgorithm"]} if create else {}
        sent = s3.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=number, Body=data, **extra
        )
        done.append({"PartNumber": number, "ETag": sent["ETag"]})
    completed: dict[str, Any] = s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
    )
    return completed


def _checksums(s3: Any, key: str) -> Answer:
    attributes = s3.get_object_attributes(
        Bucket=BUCKET, Key=key, ObjectAttributes=["ETag", "Checksum", "ObjectSize", "ObjectParts"]
    )
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    fields = ("ETag", "Checksum", "ObjectSize", "ObjectParts")
    return (
        {name: attributes.get(name) for name in fields},
        _headers(head, "last-modified"),
    )


# ---------------------------------------------------------------- ranged GetObject


@pytest.mark.parametrize("layout", ["put", "multipart", "small"])
def test_get_object_patched_any_range_same_answer_as_moto(
    s3: Any, patched: Callable[[], None], layout: str
) -> None:
    data = _payload(SIZE if layout != "small" else 3000, layout)
    key = f"ranges/{layout}"
    if layout == "multipart":
        _upload_parts(s3, key, [data[: 5 * MIB], data[5 * MIB : 10 * MIB], data[10 * MIB :]])
    else:
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    ranges = [r for r in RANGES if layout != "small" or r is None or str(SIZE) not in r]
    ranges += ["bytes=2999-", "bytes=3000-", "bytes=-3001"] if layout == "small" else []

    expected = {r: _get(s3, key, r) for r in ranges}
    expected_part = _get(s3, key, None, PartNumber=1)
    patched()
    actual = {r: _get(s3, key, r) for r in ranges}

    for byte_range in ranges:
        assert actual[byte_range] == expected[byte_range], byte_range
    assert _get(s3, key, None, PartNumber=1) == expected_part
    # The comparison is with moto's real answers: a few of them, spelled out.
    assert expected[None][1] == data
    assert expected["bytes=0-99"][1] == data[:100]
    assert expected["bytes=-500"][1] == data[-500:]
    last = len(data) - 1
    assert expected["bytes=-500"][2]["content-range"] == f"bytes {last - 499}-{last}/{len(data)}"
    assert expected["bytes=-0"][:2] == ("error", 416)


def test_get_object_patched_range_with_checksum_mode_drops_checksum_like_moto(
    s3: Any, patched: Callable[[], None]
) -> None:
    data = _payload(SIZE, "checksum")
    s3.put_object(Bucket=BUCKET, Key="checksummed", Body=data, ChecksumAlgorithm="SHA256")
    checks = ["bytes=0-99", "bytes=0-", f"bytes=-{SIZE}", None]
    expected = [_get(s3, "checksummed", r, ChecksumMode="ENABLED") for r in checks]
    patched()
    actual = [_get(s3, "checksummed", r, ChecksumMode="ENABLED") for r in checks]

    assert actual == expected
    assert "x-amz-checksum-sha256" not in expected[0][2]  # a partial range: no checksum
    assert "x-amz-checksum-sha256" in expected[1][2]  # the whole object as a range: kept


def test_get_object_patched_range_does_not_read_whole_value(
    s3: Any, patched: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.s3.models import FakeKey

    data = _payload(SIZE, "reads")
    s3.put_object(Bucket=BUCKET, Key="reads", Body=data)
    original: property = FakeKey.__dict__["value"]
    whole_reads: list[str] = []

    def counting_get(key: Any) -> bytes:
        whole_reads.append(key.name)
        value: bytes = original.fget(key)  # type: ignore[misc]
        return value

    monkeypatch.setattr(FakeKey, "value", property(counting_get, original.fset))
    assert _get(s3, "reads", "bytes=0-9")[1] == data[:10]
    unpatched_reads = len(whole_reads)
    patched()
    whole_reads.clear()

    assert _get(s3, "reads", f"bytes={SIZE - 10}-")[1] == data[-10:]
    assert whole_reads == []
    assert _get(s3, "reads", None)[1] == data
    assert whole_reads == ["reads"]
    assert unpatched_reads >= 1  # moto as shipped reads the whole value for a range


def test_head_object_patched_range_same_answer_as_moto(
    s3: Any, patched: Callable[[], None]
) -> None:
    s3.put_object(Bucket=BUCKET, Key="head", Body=_payload(SIZE, "head"))

    def head(byte_range: str) -> Answer:
        try:
            response = s3.head_object(Bucket=BUCKET, Key="head", Range=byte_range)
        except ClientError as exc:
            return ("error", exc.response["ResponseMetadata"]["HTTPStatusCode"])
        return (response["ResponseMetadata"]["HTTPStatusCode"], _headers(response))

    checks = ["bytes=0-99", "bytes=-10", f"bytes={SIZE}-"]
    expected = [head(r) for r in checks]
    patched()
    assert [head(r) for r in checks] == expected


# ---------------------------------------------------------------- CompleteMultipartUpload


@pytest.mark.parametrize(
    "create",
    [
        {},
        {"ChecksumAlgorithm": "CRC32"},
        {"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"},
        {"ChecksumAlgorithm": "SHA256", "ChecksumType": "FULL_OBJECT"},
        {"ChecksumAlgorithm": "SHA1"},
        {"ChecksumAlgorithm": "SHA256"},
    ],
    ids=["default", "crc32-composite", "crc32-full", "sha256-full", "sha1", "sha256"],
)
def test_complete_multipart_patched_same_object_etag_checksum_as_moto(
    s3: Any, patched: Callable[[], None], create: dict[str, str]
) -> None:
    data = _payload(17 * MIB + 99, "multipart")
    parts = [data[: 6 * MIB], data[6 * MIB : 12 * MIB], data[12 * MIB :]]

    shipped = _upload_parts(s3, "mp/shipped", parts, **create)
    patched()
    mine = _upload_parts(s3, "mp/patched", parts, **create)

    drop = ("ResponseMetadata", "Key", "Location")
    assert {k: v for k, v in mine.items() if k not in drop} == {
        k: v for k, v in shipped.items() if k not in drop
    }
    assert _checksums(s3, "mp/patched") == _checksums(s3, "mp/shipped")
    assert _get(s3, "mp/patched", None)[1] == data
    assert _get(s3, "mp/patched", "bytes=6291450-6291460")[1] == data[6291450:6291461]
    assert shipped["ETag"].endswith('-3"')


def test_complete_multipart_patched_sends_same_notifications_as_moto(
    s3: Any, patched: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.s3 import notifications

    seen: list[tuple[str, str, int, str]] = []
    original = notifications.send_event

    def recording(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        seen.append((str(event_name), key.name, key.size, key.etag))
        original(account_id, event_name, bucket, key)

    monkeypatch.setattr(notifications, "send_event", recording)
    parts = [_payload(5 * MIB, "n1"), _payload(123, "n2")]
    _upload_parts(s3, "events", parts)
    shipped = list(seen)
    seen.clear()
    patched()
    _upload_parts(s3, "events", parts)

    assert seen == shipped
    assert {size for _, _, size, _ in shipped} == {5 * MIB + 123}


@pytest.mark.parametrize("fault", ["wrong-etag", "missing-part", "small-part", "no-parts"])
def test_complete_multipart_patched_invalid_request_same_error_as_moto(
    s3: Any, patched: Callable[[], None], fault: str
) -> None:
    def attempt(key: str) -> Answer:
        upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        done = []
        sizes = [1 * MIB, 5 * MIB] if fault == "small-part" else [5 * MIB, 10]
        for number, size in enumerate(sizes, start=1):
            sent = s3.upload_part(
                Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=number, Body=b"x" * size
            )
            done.append({"PartNumber": number, "ETag": sent["ETag"]})
        if fault == "wrong-etag":
            done[1]["ETag"] = '"0123456789abcdef0123456789abcdef"'
        elif fault == "missing-part":
            done.append({"PartNumber": 3, "ETag": done[0]["ETag"]})
        elif fault == "no-parts":
            done = []
        try:
            s3.complete_multipart_upload(
                Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
            )
        except ClientError as exc:
            exists = s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount", 0)
            return (exc.response["Error"]["Code"], exists)
        return ("completed",)

    shipped = attempt(f"fault/{fault}/shipped")
    patched()
    assert attempt(f"fault/{fault}/patched") == shipped
    assert shipped[0] != "completed"


# ---------------------------------------------------------------- PutObject and undo


def test_put_object_patched_large_and_small_values_read_back_same(
    s3: Any, patched: Callable[[], None]
) -> None:
    patched()
    for size in (0, 1, 5 * MIB - 1024, 5 * MIB - 1023, SIZE):
        data = os.urandom(size)
        sent = s3.put_object(Bucket=BUCKET, Key=f"put/{size}", Body=data)
        assert sent["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        assert _get(s3, f"put/{size}", None)[1] == data
        overwritten = data[::-1]
        s3.put_object(Bucket=BUCKET, Key=f"put/{size}", Body=overwritten)
        assert _get(s3, f"put/{size}", None)[1] == overwritten


def test_apply_undo_restores_moto_functions() -> None:
    from moto.s3.models import FakeKey, FakeMultipart
    from moto.s3.responses import S3Response

    def current() -> list[Any]:
        return [
            S3Response.__dict__["get_object"],
            S3Response.__dict__["key_response"],
            FakeMultipart.__dict__["complete"],
            FakeKey.__dict__["value"],
        ]

    shipped = current()
    undo = s3_patches.apply()
    during = current()
    undo()

    assert current() == shipped
    assert all(a is not b for a, b in zip(during, shipped, strict=True))
