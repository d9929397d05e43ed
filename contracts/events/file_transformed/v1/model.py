"""`sluice.file.transformed.v1`: transform deduplicated and transformed every staged bucket."""

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


class FileTransformedV1(ContractModel):
    """A file's valid rows were deduplicated and transformed; they are staged under
    `transformed_prefix`, one Arrow file per hash bucket.

    Compatibility: fields may be added (optional) within v1; anything else is v2.
    """

    TYPE: ClassVar[str] = "sluice.file.transformed.v1"
    SOURCE: ClassVar[str] = "sluice.transform"

    file_id: FileId
    dataset: DatasetRef
    bucket: BucketName = Field(description="The raw bucket.")
    key: ObjectKey = Field(description="The raw object key.")
    transformed_prefix: S3Uri
    bucket_count: PositiveInt
    rows_in: NonNegativeInt = Field(description="Rows that entered transform (the valid rows).")
    rows_out: NonNegativeInt
    rows_quarantined: NonNegativeInt = Field(
        description="Total quarantined for the file so far: validate's plus duplicates."
    )
    rows_file_in: NonNegativeInt = Field(description="Records of the source file.")
    object_created_at: UtcDatetime
