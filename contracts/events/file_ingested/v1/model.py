"""`sluice.file.ingested.v1`: ingest registered a new raw object and chose its path."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from contracts.envelope import ContractModel
from contracts.types import (
    BucketName,
    DatasetRef,
    FileId,
    NonNegativeInt,
    ObjectKey,
    UtcDatetime,
)


class FileIngestedV1(ContractModel):
    """A raw object was registered in the ledger and routed to the real-time or batch path.

    Compatibility: fields may be added (optional) within v1; anything else is v2.
    """

    TYPE: ClassVar[str] = "sluice.file.ingested.v1"
    SOURCE: ClassVar[str] = "sluice.ingest"

    file_id: FileId
    dataset: DatasetRef
    bucket: BucketName = Field(description="The raw bucket.")
    key: ObjectKey = Field(description="The raw object key; its first segment is the dataset.")
    version_id: str | None = Field(default=None, description="S3 version id, when versioned.")
    etag: str = Field(min_length=1)
    size_bytes: NonNegativeInt
    object_created_at: UtcDatetime
    path: Literal["realtime", "batch"] = Field(
        default="realtime", description="Which path processes the file."
    )
