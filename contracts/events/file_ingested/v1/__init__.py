"""`sluice.file.ingested.v1`."""

from contracts.events.file_ingested.v1.model import FileIngestedV1

__all__ = ["FileIngestedV1"]
