"""`ObjectStore` over S3 (aioboto3): streamed downloads, multipart uploads, bounded reads."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from sluice_shared.aws.errors import error_code, translating
from sluice_shared.errors import InputLimitExceeded, TransientError
from sluice_shared.ports import ObjectInfo, ObjectNotFoundError
from sluice_shared.retry import aws_retry, with_retry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from tenacity import AsyncRetrying
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

MIB = 1024 * 1024
DEFAULT_CHUNK_BYTES = 1 * MIB  # download buffer: memory per download stays at about this
MULTIPART_THRESHOLD = 8 * MIB  # files above this are uploaded in parts
# Local reads/writes up to this (and one download chunk) run on the event loop, not a thread.
SMALL_IO_BYTES = 1 * MIB
MAX_PARTS = 10_000  # S3's limit on parts per upload
DELETE_BATCH = 1000  # S3's limit on keys per DeleteObjects


def _unquote(etag: str | None) -> str:
    return (etag or "").strip('"')


def part_size_for(size: int, minimum: int = MULTIPART_THRESHOLD) -> int:
    """The part size for a multipart upload of `size` bytes: `minimum`, grown in whole MiB when
    the file would otherwise need more than 10 000 parts."""
    needed = math.ceil(size / MAX_PARTS)
    return max(minimum, math.ceil(needed / MIB) * MIB)


class S3ObjectStore:
    """The S3 implementation of `sluice_shared.ports.ObjectStore`.

    Args:
        client: an open aioboto3 S3 client (owned by the caller, see `open_aws_deps`).
        retry: builds the retry policy per operation (default `aws_retry`).
        chunk_bytes: download buffer size.
        part_bytes: multipart threshold and minimum part size (S3 needs >= 5 MiB).
    """

    def __init__(
        self,
        client: S3Client,
        *,
        retry: Callable[[], AsyncRetrying] = aws_retry,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        part_bytes: int = MULTIPART_THRESHOLD,
    ) -> None:
        if part_bytes < 5 * MIB:
            raise ValueError("S3 parts must be at least 5 MiB")
        self._client = client
        self._retry = retry
        self._chunk = chunk_bytes
        self._part = part_bytes

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        """See `ObjectStore.head`."""

        async def call() -> ObjectInfo:
            with translating():
                response = await self._client.head_object(Bucket=bucket, Key=key)
            return ObjectInfo(
                key=key,
                size=int(response["ContentLength"]),
                etag=_unquote(response.get("ETag")),
                last_modified=response["LastModified"],
                version_id=response.get("VersionId"),
                content_type=response.get("ContentType"),
            )

        return await with_retry(call, self._retry)

    async def download_to(
        self,
        bucket: str,
        key: str,
        path: Path,
        *,
        version_id: str | None = None,
        byte_range: tuple[int, int] | None = None,
        etag: str | None = None,
    ) -> int:
        """See `ObjectStore.download_to`. Memory use is one chunk, whatever the object size.
        `etag` is sent as `If-Match`: S3 answers 412 for another object under the key."""
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id is not None:
            request["VersionId"] = version_id
        if etag is not None:
            request["IfMatch"] = f'"{etag.strip(chr(34))}"'
        if byte_range is not None:
            start, end = byte_range
            if start < 0 or end < start:
                raise ValueError(f"invalid byte range [{start}, {end})")
            if start == end:
                await asyncio.to_thread(path.write_bytes, b"")
                return 0
            # HTTP ranges are inclusive; ours are half-open like Python slices.
            request["Range"] = f"bytes={start}-{end - 1}"

        async def call() -> int:
            try:
                response = await self._client.get_object(**request)
            except ClientError as error:
                if etag is not None and error_code(error) == "PreconditionFailed":
                    raise ObjectNotFoundError(
                        f"s3://{bucket}/{key} no longer holds the object with ETag {etag}"
                    ) from error
                with translating():
                    raise
            with translating():
                body = response["Body"]
                async with body:
                    size = int(response.get("ContentLength", SMALL_IO_BYTES + 1))
                    if size <= min(self._chunk, SMALL_IO_BYTES):
                        # A small object: one read and a page-cache write on the loop cost
                        # less than the thread hops that keep big files off it.
                        data = await body.read()
                        path.write_bytes(data)  # noqa: ASYNC240 - small, see above
                        return len(data)
                    return await self._stream_to(body, path)

        return await with_retry(call, self._retry)

    async def _stream_to(self, body: Any, path: Path) -> int:
        handle: IO[bytes] = await asyncio.to_thread(path.open, "wb")
        try:
            written = 0
            async for chunk in body.iter_chunks(self._chunk):
                await asyncio.to_thread(handle.write, chunk)
                written += len(chunk)
            return written
        finally:
            await asyncio.to_thread(handle.close)

    async def upload_file(
        self, path: Path, bucket: str, key: str, *, content_type: str | None = None
    ) -> None:
        """See `ObjectStore.upload_file`. Memory use is one part (8 MiB by default)."""
        size = path.stat().st_size  # noqa: ASYNC240 - one stat costs less than a thread hop
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        if size <= self._part:
            # Small files are read on the loop: cheaper than a thread hop, and brief.
            data = (
                path.read_bytes()  # noqa: ASYNC240 - small, see above
                if size <= SMALL_IO_BYTES
                else await asyncio.to_thread(path.read_bytes)
            )
            await self.put_bytes(bucket, key, data, content_type=content_type)
            return
        part_size = part_size_for(size, self._part)

        async def create() -> str:
            with translating():
                created = await self._client.create_multipart_upload(
                    Bucket=bucket, Key=key, **extra
                )
            return created["UploadId"]

        upload_id = await with_retry(create, self._retry)
        try:
            parts = await self._upload_parts(path, bucket, key, upload_id, part_size)

            async def complete() -> None:
                with translating():
                    await self._client.complete_multipart_upload(
                        Bucket=bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": cast("list[CompletedPartTypeDef]", parts)},
                    )

            await with_retry(complete, self._retry)
        except BaseException:
            await self._abort(bucket, key, upload_id)
            raise

    async def _upload_parts(
        self, path: Path, bucket: str, key: str, upload_id: str, part_size: int
    ) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        handle: IO[bytes] = await asyncio.to_thread(path.open, "rb")
        try:
            number = 1
            while True:
                data = await asyncio.to_thread(handle.read, part_size)
                if not data:
                    return parts

                async def send(data: bytes = data, number: int = number) -> str:
                    with translating():
                        sent = await self._client.upload_part(
                            Bucket=bucket,
                            Key=key,
                            UploadId=upload_id,
                            PartNumber=number,
                            Body=data,
                        )
                    return sent["ETag"]

                parts.append({"PartNumber": number, "ETag": await with_retry(send, self._retry)})
                number += 1
        finally:
            await asyncio.to_thread(handle.close)

    async def _abort(self, bucket: str, key: str, upload_id: str) -> None:
        # Best effort: an orphaned upload costs storage until the bucket's lifecycle rule
        # (AbortIncompleteMultipartUpload) removes it; the original error matters more.
        try:
            with translating():
                await self._client.abort_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id
                )
        except Exception:
            pass

    async def put_bytes(
        self, bucket: str, key: str, data: bytes, *, content_type: str | None = None
    ) -> None:
        """See `ObjectStore.put_bytes`."""
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}

        async def call() -> None:
            with translating():
                await self._client.put_object(Bucket=bucket, Key=key, Body=data, **extra)

        await with_retry(call, self._retry)

    async def put_bytes_if_absent(
        self, bucket: str, key: str, data: bytes, *, content_type: str | None = None
    ) -> bool:
        """See `ObjectStore.put_bytes_if_absent` (`If-None-Match: *`). A phantom write retried
        answers "exists": the object is then the caller's own."""
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}

        async def call() -> bool:
            try:
                await self._client.put_object(
                    Bucket=bucket, Key=key, Body=data, IfNoneMatch="*", **extra
                )
            except ClientError as error:
                code = error_code(error)
                if code == "PreconditionFailed":
                    return False
                if code == "ConditionalRequestConflict":  # a concurrent conditional write
                    raise TransientError(str(error), code="conditional_conflict") from error
                with translating():
                    raise
            return True

        return await with_retry(call, self._retry)

    async def get_bytes(self, bucket: str, key: str, *, max_bytes: int) -> bytes:
        """See `ObjectStore.get_bytes`. Never reads more than `max_bytes + 1` bytes."""

        async def call() -> bytes:
            with translating():
                response = await self._client.get_object(Bucket=bucket, Key=key)
                body = response["Body"]
                async with body:
                    length = int(response.get("ContentLength", 0))
                    if length > max_bytes:
                        raise _too_large(bucket, key, length, max_bytes)
                    buffer = bytearray()
                    async for chunk in body.iter_chunks(self._chunk):
                        buffer += chunk
                        if len(buffer) > max_bytes:
                            raise _too_large(bucket, key, len(buffer), max_bytes)
            return bytes(buffer)

        return await with_retry(call, self._retry)

    async def list_keys(self, bucket: str, prefix: str) -> AsyncIterator[ObjectInfo]:
        """See `ObjectStore.list_keys`. Each page request is retried on its own."""
        token: str | None = None
        while True:
            request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            if token is not None:
                request["ContinuationToken"] = token

            async def call(request: dict[str, Any] = request) -> dict[str, Any]:
                with translating():
                    page = await self._client.list_objects_v2(**request)
                return dict(page)

            page = await with_retry(call, self._retry)
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    key=item["Key"],
                    size=int(item.get("Size", 0)),
                    etag=_unquote(item.get("ETag")),
                    last_modified=item.get("LastModified") or datetime.now(UTC),
                )
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        """See `ObjectStore.delete_prefix`. Keys are deleted in batches of 1000 as they are
        listed; keys S3 reports as not deleted are retried (DeleteObjects is idempotent)."""
        deleted = 0
        batch: list[str] = []
        async for info in self.list_keys(bucket, prefix):
            batch.append(info.key)
            if len(batch) == DELETE_BATCH:
                deleted += await self._delete_batch(bucket, batch)
                batch = []
        if batch:
            deleted += await self._delete_batch(bucket, batch)
        return deleted

    async def _delete_batch(self, bucket: str, keys: list[str]) -> int:
        pending = list(keys)
        async for attempt in self._retry():
            with attempt:
                with translating():
                    response = await self._client.delete_objects(
                        Bucket=bucket,
                        Delete={"Objects": [{"Key": k} for k in pending], "Quiet": True},
                    )
                errors = response.get("Errors", [])
                if errors:
                    pending = [str(e.get("Key")) for e in errors]
                    codes = sorted({str(e.get("Code")) for e in errors})
                    raise TransientError(f"{len(errors)} keys not deleted ({', '.join(codes)})")
        return len(keys)


def _too_large(bucket: str, key: str, size: int, limit: int) -> InputLimitExceeded:
    return InputLimitExceeded(
        f"s3://{bucket}/{key} is at least {size} bytes, above the {limit}-byte limit",
        code="object_too_large",
    )
