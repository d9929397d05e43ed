"""`sluice.file.validated.v3`: v2 whose valid rows may travel in the fact itself.

A small file's valid rows (one hash bucket, at most `MAX_INLINE_BYTES` of Arrow IPC) are carried
in `inline` instead of a staged object, saving the object's PUT and GET; `staged_prefix` is then
absent. v2 requires `staged_prefix` and its consumers read the staged object, so a fact without
one is not expressible in v2: it is a new major. A v3 fact with a `staged_prefix` (every large
file, and a small one while its producer also stages) is published in v1 and v2 as well
(`contracts.events.published_majors`); one without is published in v3 only.
"""

# Annotations evaluated eagerly (no `from __future__ import annotations`): pydantic needs the types.
from typing import ClassVar

from pydantic import Field, model_validator

from contracts.events.file_validated.v2.model import FileValidatedV2
from contracts.types import (
    BucketCount,
    BucketName,
    DatasetRef,
    FileId,
    InlineRows,
    LedgerSnapshot,
    NonNegativeInt,
    ObjectKey,
    PartitionCount,
    S3Uri,
    UtcDatetime,
)


class FileValidatedV3(FileValidatedV2):
    """A file passed its data contract; its valid rows are staged as Arrow under
    `staged_prefix`, or carried in `inline` (or both).

    A subclass of v2 so code written against the older majors' fields reads it, but its
    prefix may be None (the rows inline): a consumer of v3 checks `inline` first.

    Compatibility: fields may be added (optional) within v3; anything else is v4.
    """

    TYPE: ClassVar[str] = "sluice.file.validated.v3"
    SOURCE: ClassVar[str] = "sluice.validate"

    file_id: FileId
    dataset: DatasetRef
    bucket: BucketName = Field(description="The raw bucket.")
    key: ObjectKey = Field(description="The raw object key.")
    staged_prefix: S3Uri | None = Field(  # type: ignore[assignment]
        default=None,
        description="Prefix of the staged Arrow IPC bucket files; absent when the rows are inline.",
    )
    inline: InlineRows | None = Field(
        default=None,
        description="The valid rows of a small one-bucket file (Arrow IPC stream, base64).",
    )
    bucket_count: BucketCount = Field(
        description="Hash buckets the valid rows were split into (at most 10,240)."
    )
    partition_count: PartitionCount = Field(
        default=1, description="Byte-range partitions read (at most 100,000)."
    )
    rows_in: NonNegativeInt = Field(description="Records read from the source file.")
    rows_valid: NonNegativeInt
    rows_quarantined: NonNegativeInt
    bytes_in: NonNegativeInt
    quarantine_uri: S3Uri | None = Field(
        default=None, description="Prefix of the quarantined rows, when there are any."
    )
    object_created_at: UtcDatetime
    ledger: LedgerSnapshot | None = Field(
        default=None,
        description=(
            "The file's ledger record as this fact's producer left it (optional): the next "
            "stage claims the file on the condition that the stored record is exactly this, "
            "and reads the record only when it is not."
        ),
    )

    @model_validator(mode="after")
    def _rows_somewhere(self) -> "FileValidatedV3":
        if self.staged_prefix is None and self.inline is None:
            raise ValueError("a validated file has staged_prefix, inline rows, or both")
        if self.inline is not None and (self.bucket_count != 1 or self.partition_count != 1):
            raise ValueError("inline rows are of a file of one bucket and one partition")
        return self

    def in_older_majors(self) -> bool:
        """Whether v1 and v2 can say this fact: only with a staged prefix to read."""
        return self.staged_prefix is not None
