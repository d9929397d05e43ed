"""Identities and object keys shared by every stage (docs/architecture.md, "Identities and keys").

Keys are deterministic per (file, stage, partition, bucket), so a retried step overwrites its own
objects instead of adding new ones.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from sluice_shared.errors import InputLimitExceeded, UnknownDatasetError

_DATASET_SEGMENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def bucket_count_for(size_bytes: int, target_bytes: int = 512 * 2**20) -> int:
    """Number of hash buckets for a file of `size_bytes` (decompressed, or as stored).

    At least 1; one more bucket per `target_bytes`, so one bucket fits a transform invocation.
    (Here, not in `sluice_shared.datapath.buckets`, which re-exports it: the stages need the
    count without importing pyarrow at cold start.)
    """
    if target_bytes <= 0:
        raise ValueError("target_bytes must be positive")
    return max(1, math.ceil(max(size_bytes, 0) / target_bytes))


def file_id_for(bucket: str, key: str, version_id: str | None, etag: str | None) -> str:
    """The file's identity: the same object version notified twice gets the same id."""
    identity = version_id or (etag or "").strip('"')
    digest = hashlib.sha256(f"{bucket}\n{key}\n{identity}".encode()).hexdigest()
    return digest[:32]


def dataset_of_key(key: str, *, max_key_length: int) -> str:
    """The dataset an object belongs to: its key's first segment (`orders/2024/x.csv` → orders).

    The key is data, never a path: `..`, empty segments or odd characters cannot escape
    anything because keys are only used as S3 keys and hashed into ids.
    Raises InputLimitExceeded for an over-long key, UnknownDatasetError when the first segment
    is not a dataset name.
    """
    if len(key.encode("utf-8")) > max_key_length:
        raise InputLimitExceeded(
            f"object key is {len(key.encode('utf-8'))} bytes, above the {max_key_length} limit",
            code="key_too_long",
        )
    first, sep, rest = key.partition("/")
    if not sep or not rest or not _DATASET_SEGMENT.match(first):
        raise UnknownDatasetError(
            f"object key {key!r} does not start with a dataset prefix (<dataset>/...)"
        )
    return first


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` → (bucket, key). Raises ValueError for anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"not an S3 URI: {uri!r}")
    return bucket, key


@dataclass(frozen=True, slots=True)
class StagedArea:
    """The staged objects of one attempt at one step: every key directly under `prefix`.

    The real-time stages stage per attempt (`StageKeys.validated_attempt`,
    `StageKeys.transformed_attempt`): no other attempt writes or deletes under the prefix, so
    what an attempt announces stays exactly what it staged."""

    prefix: str

    def validated(self, partition: int, bucket: int) -> str:
        return f"{self.prefix}p{partition:05d}-b{bucket:04d}.arrow"

    def transformed(self, bucket: int) -> str:
        return f"{self.prefix}b{bucket:04d}.arrow"

    def holds(self, key: str) -> bool:
        """Whether `key` is one of this area's objects (not one of a nested attempt's)."""
        return key.startswith(self.prefix) and "/" not in key[len(self.prefix) :]


@dataclass(frozen=True, slots=True)
class StageKeys:
    """Where one file's intermediate and final objects live."""

    file_id: str
    dataset: str

    @property
    def staging_prefix(self) -> str:
        """Every staged object of the file, of every step and attempt (the work bucket)."""
        return f"stage/{self.file_id}/"

    @property
    def validated_prefix(self) -> str:
        return f"{self.staging_prefix}validated/"

    def validated(self, partition: int, bucket: int) -> str:
        return f"{self.validated_prefix}p{partition:05d}-b{bucket:04d}.arrow"

    @property
    def transformed_prefix(self) -> str:
        return f"{self.staging_prefix}transformed/"

    def transformed(self, bucket: int) -> str:
        return f"{self.transformed_prefix}b{bucket:04d}.arrow"

    def validated_attempt(self, version: int) -> StagedArea:
        """Where the validate attempt whose ledger claim produced `version` stages its rows."""
        return StagedArea(f"{self.validated_prefix}{_attempt(version)}/")

    def transformed_attempt(self, version: int) -> StagedArea:
        """Where the transform attempt whose ledger claim produced `version` stages its rows."""
        return StagedArea(f"{self.transformed_prefix}{_attempt(version)}/")

    @property
    def quarantine_prefix(self) -> str:
        return f"quarantine/dataset={self.dataset}/file_id={self.file_id}/"

    def quarantine_validate(self, partition: int) -> str:
        return f"{self.quarantine_prefix}p{partition:05d}.jsonl"

    def quarantine_dedupe(self, bucket: int) -> str:
        return f"{self.quarantine_prefix}dedupe-b{bucket:04d}.jsonl"

    @property
    def manifest(self) -> str:
        return f"_manifests/dataset={self.dataset}/{self.file_id}.json"


def _attempt(version: int) -> str:
    if version < 1:
        raise ValueError(f"an attempt is keyed by the version its claim produced, not {version}")
    return f"v{version:06d}"


def bucket_of_staged_key(key: str) -> int:
    """The hash bucket of a validated staged object key (`...p00001-b0003.arrow` → 3)."""
    match = re.search(r"-b(\d{4})\.arrow$", key)
    if match is None:
        raise ValueError(f"not a staged object key: {key!r}")
    return int(match.group(1))
