"""`sluice.file.validated.v1`: validate accepted a file and staged its valid rows."""

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
    PositiveInt,
    S3Uri,
    UtcDatetime,
)


class FileValidatedV1(ContractModel):
    """A file passed its data contract; valid rows are staged as Arrow under `staged_prefix`.

    Compatibility: fields may be added (optional) within v1; anything else is v2.
    """

    TYPE: ClassVar[str] = "sluice.file.validated.v1"
    SOURCE: ClassVar[str] = "sluice.validate"

    file_id: FileId
    dataset: DatasetRef
    bucket: BucketName = Field(description="The raw bucket.")
    key: ObjectKey = Field(description="The raw object key.")
    staged_prefix: S3Uri = Field(description="Prefix of the staged Arrow IPC bucket files.")
    bucket_count: PositiveInt = Field(description="Hash buckets the valid rows were split into.")
    partition_count: PositiveInt = Field(default=1, description="Byte-range partitions read.")
    rows_in: NonNegativeInt = Field(description="Records read from the source file.")
    rows_valid: NonNegativeInt
    rows_quarantined: NonNegativeInt
    bytes_in: NonNegativeInt
    quarantine_uri: S3Uri | None = Field(
        default=None, description="Prefix of the quarantined rows, when there are any."
    )
    object_created_at: UtcDatetime
