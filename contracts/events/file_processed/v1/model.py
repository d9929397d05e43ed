"""`sluice.file.processed.v1`: output wrote a file's Parquet and, last, its manifest."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from contracts.envelope import ContractModel
from contracts.types import (
    BucketName,
    DatasetRef,
    FileId,
    NonNegativeInt,
    ObjectKey,
    S3Uri,
    UtcDatetime,
)


class FileProcessedV1(ContractModel):
    """A file is complete: its Parquet objects and manifest are in the processed bucket and
    `rows_in == rows_out + rows_quarantined`.

    Compatibility: fields may be added (optional) within v1; anything else is v2.
    """

    TYPE: ClassVar[str] = "sluice.file.processed.v1"
    SOURCE: ClassVar[str] = "sluice.output"

    file_id: FileId
    dataset: DatasetRef
    bucket: BucketName = Field(description="The raw bucket.")
    key: ObjectKey = Field(description="The raw object key.")
    manifest_uri: S3Uri = Field(description="The manifest, written after every Parquet object.")
    objects: NonNegativeInt = Field(description="Parquet objects written.")
    rows_in: NonNegativeInt = Field(description="Records of the source file.")
    rows_out: NonNegativeInt
    rows_quarantined: NonNegativeInt
    bytes_out: NonNegativeInt
    object_created_at: UtcDatetime
    completed_at: UtcDatetime
