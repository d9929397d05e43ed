"""The work items of a batch run, as written by plan to the manifests the Distributed Maps read.

One JSON object per line (the Maps' ItemReader uses `InputType: JSONL`):

- a **partition** is what one `run_partition` call validates: a whole file, or bytes
  `[start, end)` of one large CSV/JSONL object cut on a record end;
- a **bucket** is what one `run_bucket` call transforms and writes: one hash bucket of one file,
  read from every partition's staged objects of that bucket.

Items carry everything their function needs (no ledger read on the hot path), and are small
(well under the 256 KiB Step Functions payload cap, so the ItemBatcher can pack them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from pydantic import BaseModel, ConfigDict, Field

from contracts.types import DatasetRef

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


class _Item(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str = Field(min_length=1)
    file_id: str = Field(min_length=1)
    dataset: DatasetRef
    source_bucket: str
    source_key: str
    source_version: str | None = None
    size_bytes: int = Field(ge=0)
    bucket_count: int = Field(ge=1)
    partitions: int = Field(ge=1, description="How many partitions the file was cut into.")


class PartitionItem(_Item):
    """Bytes `[start, end)` of one object, validated as partition `partition` of its file."""

    partition: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)

    @property
    def whole(self) -> bool:
        """True when the partition is the whole object (no byte range needed)."""
        return self.partitions == 1 and self.start == 0 and self.end == self.size_bytes

    def label(self) -> str:
        return f"{self.file_id}/p{self.partition:05d} bytes [{self.start}, {self.end})"


class BucketItem(_Item):
    """Hash bucket `hash_bucket` of one file, to transform and write as Parquet."""

    hash_bucket: int = Field(ge=0)

    def label(self) -> str:
        return f"{self.file_id}/b{self.hash_bucket:04d}"


def to_jsonl(items: Iterable[BaseModel]) -> bytes:
    """Serialise items as JSON Lines (what the Maps' ItemReader reads)."""
    return b"".join(orjson.dumps(item.model_dump(mode="json")) + b"\n" for item in items)


def partition_items_from_jsonl(data: bytes) -> list[PartitionItem]:
    """Parse a partition manifest. Raises pydantic.ValidationError for a malformed line."""
    return [PartitionItem.model_validate_json(line) for line in data.splitlines() if line.strip()]


def bucket_items_from_jsonl(data: bytes) -> list[BucketItem]:
    """Parse a bucket manifest. Raises pydantic.ValidationError for a malformed line."""
    return [BucketItem.model_validate_json(line) for line in data.splitlines() if line.strip()]


def bucket_items_for(partitions: Sequence[PartitionItem]) -> list[BucketItem]:
    """One bucket item per (file, hash bucket) of the planned partitions, in file order."""
    seen: dict[str, PartitionItem] = {}
    for item in partitions:
        seen.setdefault(item.file_id, item)
    buckets: list[BucketItem] = []
    for first in seen.values():
        fields = first.model_dump(exclude={"partition", "start", "end"})
        buckets.extend(BucketItem(**fields, hash_bucket=b) for b in range(first.bucket_count))
    return buckets
