"""`sluice.file.transformed.v3`: v2 whose transformed rows may travel in the fact itself.

As `sluice.file.validated.v3`: a small file's transformed rows (one bucket, at most
`MAX_INLINE_BYTES` of Arrow IPC) are carried in `inline` instead of a staged object, and
`transformed_prefix` is then absent, which v2 cannot say; a v3 fact with a `transformed_prefix`
is published in v1 and v2 as well (`contracts.events.published_majors`).
"""

# Annotations evaluated eagerly (no `from __future__ import annotations`): pydantic needs the types.
from typing import ClassVar

from pydantic import Field, model_validator

from contracts.events.file_transformed.v2.model import FileTransformedV2
from contracts.types import (
    BucketCount,
    BucketName,
    DatasetRef,
    FileId,
    InlineRows,
    LedgerSnapshot,
    NonNegativeInt,
    ObjectKey,
    S3Uri,
    UtcDatetime,
)


class FileTransformedV3(FileTransformedV2):
    """A file's valid rows were deduplicated and transformed; they are staged under
    `transformed_prefix`, one Arrow file per hash bucket, or carried in `inline` (or both).

    A subclass of v2 so code written against the older majors' fields reads it, but its
    prefix may be None (the rows inline): a consumer of v3 checks `inline` first.

    Compatibility: fields may be added (optional) within v3; anything else is v4.
    """

    TYPE: ClassVar[str] = "sluice.file.transformed.v3"
    SOURCE: ClassVar[str] = "sluice.transform"

    file_id: FileId
    dataset: DatasetRef
    bucket: BucketName = Field(description="The raw bucket.")
    key: ObjectKey = Field(description="The raw object key.")
    transformed_prefix: S3Uri | None = Field(  # type: ignore[assignment]
        default=None, description="Prefix of the staged Arrow IPC files; absent when inline."
    )
    inline: InlineRows | None = Field(
        default=None,
        description="The transformed rows of a small one-bucket file (Arrow IPC stream, base64).",
    )
    bucket_count: BucketCount = Field(
        description="Hash buckets of transformed rows, one Arrow file each (at most 10,240)."
    )
    rows_in: NonNegativeInt = Field(description="Rows that entered transform (the valid rows).")
    rows_out: NonNegativeInt
    rows_quarantined: NonNegativeInt = Field(
        description="Total quarantined for the file so far: validate's plus duplicates."
    )
    rows_file_in: NonNegativeInt = Field(description="Records of the source file.")
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
    def _rows_somewhere(self) -> "FileTransformedV3":
        if self.transformed_prefix is None and self.inline is None:
            raise ValueError("a transformed file has transformed_prefix, inline rows, or both")
        if self.inline is not None and self.bucket_count != 1:
            raise ValueError("inline rows are of a file of one bucket")
        return self

    def in_older_majors(self) -> bool:
        """Whether v1 and v2 can say this fact: only with a staged prefix to read."""
        return self.transformed_prefix is not None
