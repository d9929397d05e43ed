"""`sluice.file.transformed.v2`: v1 with upper bounds on the counts a consumer sizes its work by.

v1 left them unbounded, and a new bound is a breaking change within a major (events already
published may exceed it), hence a new major. Producers publish both majors
(`contracts.events.published_majors`); consumers' rules match v2.
"""

# Annotations evaluated eagerly (no `from __future__ import annotations`): pydantic needs the types.
from typing import ClassVar

from pydantic import Field

from contracts.events.file_transformed.v1.model import FileTransformedV1
from contracts.types import BucketCount, LedgerSnapshot


class FileTransformedV2(FileTransformedV1):
    """FileTransformedV1, with the bucket count bounded (see `contracts.types`).

    A v2 event is also a FileTransformedV1 (every field the same, only narrower), so code written
    against v1 reads it unchanged.

    Compatibility: fields may be added (optional) within v2; anything else is v3.
    """

    TYPE: ClassVar[str] = "sluice.file.transformed.v2"

    bucket_count: BucketCount = Field(
        description="Hash buckets of transformed rows, one Arrow file each (at most 10,240)."
    )
    ledger: LedgerSnapshot | None = Field(
        default=None,
        description=(
            "The file's ledger record as this fact's producer left it (optional): the next "
            "stage claims the file on the condition that the stored record is exactly this, "
            "and reads the record only when it is not."
        ),
    )
