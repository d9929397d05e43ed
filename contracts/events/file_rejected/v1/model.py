"""`sluice.file.rejected.v1`: validate rejected a whole file."""

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
    Reason,
    ReasonCode,
    S3Uri,
    UtcDatetime,
)


class FileRejectedV1(ContractModel):
    """A whole file was rejected (unknown dataset, limit breached, too many bad rows, ...);
    nothing of it reaches the output.

    Compatibility: fields may be added (optional) within v1; anything else is v2.
    """

    TYPE: ClassVar[str] = "sluice.file.rejected.v1"
    SOURCE: ClassVar[str] = "sluice.validate"

    file_id: FileId
    dataset: DatasetRef | None = Field(
        default=None, description="Absent when the key names no known dataset."
    )
    bucket: BucketName = Field(description="The raw bucket.")
    key: ObjectKey = Field(description="The raw object key.")
    reason_code: ReasonCode
    reason: Reason
    rows_in: NonNegativeInt = 0
    rows_quarantined: NonNegativeInt = 0
    quarantine_uri: S3Uri | None = None
    object_created_at: UtcDatetime | None = None
