"""Sluice's built-in event contracts: one folder per fact and major (`<fact>/v<N>/`).

Each folder holds the pydantic model (the source of truth), the generated `schema.json` and
immutable golden `examples/` (listed with their sha256 in `examples/CHECKSUMS`).
"""

from contracts.envelope import ContractModel
from contracts.events.batch_completed.v1 import BatchCompletedV1
from contracts.events.batch_failed.v1 import BatchFailedV1
from contracts.events.file_ingested.v1 import FileIngestedV1
from contracts.events.file_processed.v1 import FileProcessedV1
from contracts.events.file_rejected.v1 import FileRejectedV1
from contracts.events.file_transformed.v1 import FileTransformedV1
from contracts.events.file_validated.v1 import FileValidatedV1

BUILTIN_MODELS: tuple[type[ContractModel], ...] = (
    FileIngestedV1,
    FileValidatedV1,
    FileRejectedV1,
    FileTransformedV1,
    FileProcessedV1,
    BatchCompletedV1,
    BatchFailedV1,
)
"""Every built-in contract model, in pipeline order."""

__all__ = [
    "BUILTIN_MODELS",
    "BatchCompletedV1",
    "BatchFailedV1",
    "FileIngestedV1",
    "FileProcessedV1",
    "FileRejectedV1",
    "FileTransformedV1",
    "FileValidatedV1",
]
