"""`sluice.file.validated.v2`: v1 with upper bounds on the counts a consumer sizes its work by.

v1 left them unbounded, and a new bound is a breaking change within a major (events already
published may exceed it), hence a new major. Producers publish both majors
(`contracts.events.published_majors`); consumers' rules match v2.
"""

# Annotations evaluated eagerly (no `from __future__ import annotations`): pydantic needs the types.
from typing import ClassVar

from pydantic import Field

from contracts.events.file_validated.v1.model import FileValidatedV1
from contracts.types import BucketCount, LedgerSnapshot, PartitionCount


class FileValidatedV2(FileValidatedV1):
    """FileValidatedV1 with the bucket and partition counts bounded (see `contracts.types`).

    A v2 event is also a FileValidatedV1 (every field the same, only narrower), so code written
    against v1 reads it unchanged.

    Compatibility: fields may be added (optional) within v2; anything else is v3.
    """

    TYPE: ClassVar[str] = "sluice.file.validated.v2"

    bucket_count: BucketCount = Field(
        description="Hash buckets the valid rows were split into (at most 10,240)."
    )
    partition_count: PartitionCount = Field(
        default=1, description="Byte-range partitions read (at most 100,000)."
    )
    ledger: LedgerSnapshot | None = Field(
        default=None,
        description=(
            "The file's ledger record as this fact's producer left it (optional): the next "
            "stage claims the file on the condition that the stored record is exactly this, "
            "and reads the record only when it is not."
        ),
    )
