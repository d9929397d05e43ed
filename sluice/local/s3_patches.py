"""S3 byte-copy corrections of moto 5.2.5, for the moto embedded in the local runtime.

moto keeps every object in a `SpooledTemporaryFile` (on disk above ~5 MB) and moves whole objects
through memory far more often than a request needs. In the local runtime all of it runs on the
runtime process's CPU, which the batch workers share (2 cores), so it set how the batch path
scaled with workers. What each patch changes — never what S3 answers:

1. **Ranged GetObject read the whole object.** `S3Response.get_object` returned `key.value` (the
   whole buffer read from disk and copied) and `_handle_range_header` sliced it afterwards: each
   128 MiB range of a 2 GB object cost a 2 GB read. Now the key's bytes are read only when the
   response needs them, and a satisfiable single range reads just those bytes (under the key's
   lock). Whole-object, multi-range, unparsable and unsatisfiable ranges are answered by moto's
   own code, unchanged (416 InvalidRange, suffix ranges, `content-range`/`content-length`,
   checksums dropped for partial ranges).
2. **CompleteMultipartUpload held the object four times in memory.** `FakeMultipart.complete`
   concatenated every part into a `bytearray`, copied it again for the default full-object
   checksum, made `bytes` of both, and `FakeKey` wrote the result to a new buffer through an
   in-memory `BytesIO` first. Now the parts are streamed once into the new key's buffer while the
   same ETag (MD5 of the part MD5s, `-<count>`) and the same checksum (composite or full-object,
   same algorithm and fallbacks as `moto.s3.utils.compute_checksum`) are computed on the way.
3. **Every large write went through memory twice.** `FakeKey.value = data` wrote into the
   spooled file's `BytesIO` and, past the spool size, copied that into the disk file. Values
   larger than the spool size are now written to the disk file directly.

`apply()` returns the callable that restores moto's functions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import tempfile
import threading
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

COPY_CHUNK = 16 * 1024 * 1024  # bytes moved per read when streaming parts into a key
_consumed_lock = threading.Lock()


def apply() -> Callable[[], None]:
    """Apply the S3 patches to the moto in this process.

    Returns:
        A callable that restores moto's original functions (idempotent).
    """
    from moto.s3.models import FakeKey, FakeMultipart
    from moto.s3.responses import S3Response

    saved: list[tuple[Any, str, Any]] = [
        (S3Response, "get_object", S3Response.__dict__["get_object"]),
        (S3Response, "key_response", S3Response.__dict__["key_response"]),
        (FakeMultipart, "complete", FakeMultipart.__dict__["complete"]),
        (FakeKey, "value", FakeKey.__dict__["value"]),
    ]
    original_get_object = S3Response.__dict__["get_object"]
    original_key_response = S3Response.__dict__["key_response"]
    original_value: property = FakeKey.__dict__["value"]

    def get_object(self: Any) -> Any:
        # The response instance is per request: shadowing `_get_key` on it affects this call only.
        original_get_key = self._get_key

        def get_key(*args: Any, **kwargs: Any) -> tuple[Any, bool]:
            key, not_modified = original_get_key(*args, **kwargs)
            return _DeferredValueKey(key), not_modified

        self._get_key = get_key
        try:
            return original_get_object(self)
        finally:
            del self._get_key

    def key_response(self: Any, request: Any, full_url: str, headers: Any) -> Any:
        status, response_headers, body = original_key_response(self, request, full_url, headers)
        if isinstance(body, KeyBytes):
            body = body.read_all()  # a whole-object answer: moto's bytes, read once
        return status, response_headers, body

    def set_value(key: Any, new_value: Any) -> None:
        if isinstance(new_value, PreparedValue):
            new_value.adopt_into(key)
            return
        if isinstance(new_value, (bytes, bytearray)) and _spills(key._value_buffer, len(new_value)):
            _write_to_disk(key, new_value)
            return
        assert original_value.fset is not None
        original_value.fset(key, new_value)

    # setattr: moto's own annotations do not admit replacements, which is the point here.
    setattr(S3Response, "get_object", get_object)  # noqa: B010
    setattr(S3Response, "key_response", key_response)  # noqa: B010
    setattr(FakeMultipart, "complete", _complete_streamed)  # noqa: B010
    setattr(FakeKey, "value", property(original_value.fget, set_value))  # noqa: B010

    def undo() -> None:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)

    return undo


# ---------------------------------------------------------------- 1. ranged GetObject


class KeyBytes:
    """A key's bytes, read from its buffer only when sliced or fully read.

    Stands in for `FakeKey.value` inside `S3Response.get_object`: moto's range handling takes
    `len()` and one slice `[begin:end + 1]`; a whole-object answer is read by `read_all()`.
    """

    def __init__(self, key: Any) -> None:
        self._key = key

    def __len__(self) -> int:
        return int(self._key.size)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, index: slice) -> bytes:
        if not isinstance(index, slice) or index.step not in (None, 1):
            return self.read_all()[index]
        begin, end, _ = index.indices(len(self))
        if end <= begin:
            return b""
        key = self._key
        with key.lock:
            buffer = key._value_buffer
            buffer.seek(begin)
            data: bytes = buffer.read(end - begin)
        return data

    def read_all(self) -> bytes:
        """The whole value, exactly as `FakeKey.value` reads it."""
        value: bytes = self._key.value
        return value


class _DeferredValueKey:
    """A `FakeKey` seen through a proxy whose `value` is a `KeyBytes` (nothing read yet)."""

    def __init__(self, key: Any) -> None:
        self._deferred_key = key

    @property
    def value(self) -> KeyBytes:
        return KeyBytes(self._deferred_key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._deferred_key, name)


# ---------------------------------------------------------------- 2. CompleteMultipartUpload


class _Checksum(Protocol):
    def update(self, data: bytes) -> None: ...

    def digest(self) -> bytes: ...


class RunningChecksum:
    """`moto.s3.utils.compute_checksum(body, algorithm, encode_base64=False)`, fed in chunks.

    Same algorithms and the same fallbacks as moto: CRC32C without the `crc32c` package and
    CRC64NVME without `awscrt` are plain CRC32; an unknown algorithm is SHA256.
    """

    def __init__(self, algorithm: str) -> None:
        from moto.s3 import utils as s3_utils

        self._hash: Any = None
        self._crc = 0
        self._crc_fn: Callable[[bytes, int], int] = binascii.crc32
        self._width = 4
        if algorithm == "SHA1":
            self._hash = hashlib.sha1(usedforsecurity=False)
        elif algorithm == "CRC32C":
            try:
                import crc32c  # type: ignore[import-not-found,unused-ignore]

                self._crc_fn = crc32c.crc32c
            except ImportError:
                pass
        elif algorithm == "CRC64NVME":
            if getattr(s3_utils, "HAS_CRT", False):
                from awscrt import checksums  # type: ignore[import-not-found,unused-ignore]

                self._crc_fn = checksums.crc64nvme
                self._width = 8
        elif algorithm != "CRC32":
            self._hash = hashlib.sha256(usedforsecurity=False)

    def update(self, data: bytes) -> None:
        """Add the next bytes."""
        if self._hash is not None:
            self._hash.update(data)
        else:
            self._crc = self._crc_fn(data, self._crc)

    def digest(self) -> bytes:
        """The raw checksum of everything added."""
        if self._hash is not None:
            raw: bytes = self._hash.digest()
            return raw
        return self._crc.to_bytes(self._width, "big")


class PreparedValue:
    """A finished object's bytes already in a buffer, handed to `FakeKey` instead of `bytes`:
    the key adopts the buffer (no copy). Adopted once."""

    def __init__(self, buffer: BinaryIO, size: int) -> None:
        self._buffer: BinaryIO | None = buffer
        self.size = size

    def __len__(self) -> int:
        return self.size

    def adopt_into(self, key: Any) -> None:
        """Make `key`'s value this buffer. Raises RuntimeError if already adopted."""
        with _consumed_lock:
            buffer, self._buffer = self._buffer, None
        if buffer is None:
            raise RuntimeError("a prepared S3 value can be adopted by one key only")
        empty = key._value_buffer
        key._value_buffer = buffer
        key.contentsize = self.size
        empty.close()


def _complete_streamed(
    multipart: Any, body: Iterator[tuple[int, str]]
) -> tuple[PreparedValue, str, tuple[str, str, int] | None]:
    """`FakeMultipart.complete` with the parts streamed into one buffer: same validation order
    and errors (InvalidPart, EntityTooSmall, MalformedXML), same ETag and checksum."""
    from moto.s3 import models as s3_models
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
    from moto.settings import get_s3_default_key_buffer_size

    parts: list[Any] = []
    part_md5s = bytearray()
    for number, etag in body:
        part = multipart.parts.get(number)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise InvalidPart()
        if parts and parts[-1].contentsize < getattr(s3_models, "S3_UPLOAD_PART_MIN_SIZE"):  # noqa: B009
            raise EntityTooSmall()
        part_md5s.extend(binascii.unhexlify(part.etag.replace('"', "")))
        parts.append(part)
    if not parts:
        raise MalformedXML()

    algorithm: str = multipart.metadata.get("x-amz-checksum-algorithm") or "CRC64NVME"
    kind: str = multipart.metadata.get("x-amz-checksum-type") or (
        "FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE"
    )
    whole = RunningChecksum(algorithm)
    composite = bytearray()
    # Not a context manager: the buffer outlives this call, as the new key's value.
    buffer: Any = tempfile.SpooledTemporaryFile(get_s3_default_key_buffer_size())  # noqa: SIM115
    size = sum(int(part.contentsize) for part in parts)
    if _spills(buffer, size):
        buffer.rollover()
    try:
        for part in parts:
            running = RunningChecksum(algorithm) if kind == "COMPOSITE" else whole
            for chunk in _chunks_of(part):
                buffer.write(chunk)
                running.update(chunk)
            if kind == "COMPOSITE":
                composite.extend(running.digest())
    except BaseException:
        buffer.close()
        raise
    if kind == "COMPOSITE":
        combined = RunningChecksum(algorithm)
        combined.update(bytes(composite))
        checksum = (kind, base64.b64encode(combined.digest()).decode(), len(parts))
    else:
        checksum = (kind, base64.b64encode(whole.digest()).decode(), 1)
    etag = f"{hashlib.md5(bytes(part_md5s), usedforsecurity=False).hexdigest()}-{len(parts)}"
    return PreparedValue(buffer, size), etag, checksum


def _chunks_of(key: Any) -> Iterator[bytes]:
    """A key's bytes in `COPY_CHUNK` pieces, each read under the key's lock."""
    position = 0
    while True:
        with key.lock:
            source = key._value_buffer
            source.seek(position)
            chunk: bytes = source.read(COPY_CHUNK)
        if not chunk:
            return
        position += len(chunk)
        yield chunk


# ---------------------------------------------------------------- 3. large writes


def _spills(buffer: Any, size: int) -> bool:
    """Whether `size` bytes would roll the spooled `buffer` over to disk (a max of 0 never
    rolls, as in `tempfile`)."""
    limit = int(getattr(buffer, "_max_size", 0))
    return 0 < limit < size


def _write_to_disk(key: Any, value: bytes | bytearray) -> None:
    """What moto's `FakeKey.value` setter does, minus the in-memory stop: a value larger than
    the spool size goes to the spool's disk file at once."""
    buffer = key._value_buffer
    buffer.seek(0)
    buffer.truncate()
    buffer.rollover()
    buffer.write(value)
    key.contentsize = len(value)
