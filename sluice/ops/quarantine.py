"""A bounded sample of a file's quarantined rows (the JSONL records of
`sluice_shared.datapath.quarantine`, under `StageKeys.quarantine_prefix` in the error bucket)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from sluice_shared.keys import StageKeys

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

DEFAULT_MAX_BYTES = 256 * 1024
"""Bytes read from each object at most: a sample, never a download of a huge quarantine file."""


@dataclass(slots=True)
class QuarantineSample:
    """The first `rows` of a file's quarantine (in object key order, then line order).

    `objects` is how many JSONL objects the prefix holds; `truncated` says more rows exist
    than were returned (or an object was read only in part).
    """

    prefix: str
    objects: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False


def sample_quarantine(
    s3: S3Client,
    bucket: str,
    *,
    file_id: str,
    dataset: str,
    limit: int = 10,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> QuarantineSample:
    """Read up to `limit` quarantined rows of one file with ranged GETs of at most `max_bytes`.

    A partial last line of a ranged read is dropped (it is read whole only if it fits). Lines
    that are not JSON objects are returned as `{"unreadable": <text>}` rather than hidden.
    Raises botocore errors (the caller reports them).
    """
    if limit < 0 or max_bytes <= 0:
        raise ValueError("limit must be >= 0 and max_bytes > 0")
    prefix = StageKeys(file_id=file_id, dataset=dataset).quarantine_prefix
    sample = QuarantineSample(prefix=prefix)
    keys: list[tuple[str, int]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend((obj["Key"], obj["Size"]) for obj in page.get("Contents", []))
    sample.objects = len(keys)
    for key, size in sorted(keys):
        if len(sample.rows) >= limit:
            sample.truncated = sample.truncated or size > 0
            break
        response = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max_bytes - 1}")
        body = response["Body"].read()
        partial = size > len(body)
        lines = body.split(b"\n")
        if partial:
            lines = lines[:-1]  # cut mid-record by the range
        for line in lines:
            if not line.strip():
                continue
            if len(sample.rows) >= limit:
                sample.truncated = True
                break
            sample.rows.append(_decode(line, key))
        if partial:
            sample.truncated = True
    return sample


def _decode(line: bytes, key: str) -> dict[str, Any]:
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {"object": key, "unreadable": line[:200].decode(errors="replace")}
    if not isinstance(row, dict):
        return {"object": key, "unreadable": line[:200].decode(errors="replace")}
    row["object"] = key
    return row
