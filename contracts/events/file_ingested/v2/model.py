"""`sluice.file.ingested.v2`: v1 with upper bounds on the counts a consumer sizes its work by.

v1 left them unbounded, and a new bound is a breaking change within a major (events already
published may exceed it), hence a new major. Producers publish both majors
(`contracts.events.published_majors`); consumers' rules match v2.
"""

# Annotations evaluated eagerly (no `from __future__ import annotations`): pydantic needs the types.
from typing import ClassVar

from pydantic import Field

from contracts.events.file_ingested.v1.model import FileIngestedV1
from contracts.types import LedgerSnapshot, ObjectSize


class FileIngestedV2(FileIngestedV1):
    """FileIngestedV1, with the object size bounded (see `contracts.types`).

    A v2 event is also a FileIngestedV1 (every field the same, only narrower), so code written
    against v1 reads it unchanged.

    Compatibility: fields may be added (optional) within v2; anything else is v3.
    """

    TYPE: ClassVar[str] = "sluice.file.ingested.v2"

    size_bytes: ObjectSize = Field(description="Size of the raw object as stored (at most 5 TiB).")
    ledger: LedgerSnapshot | None = Field(
        default=None,
        description=(
            "The file's ledger record as this fact's producer left it (optional): the next "
            "stage claims the file on the condition that the stored record is exactly this, "
            "and reads the record only when it is not."
        ),
    )
