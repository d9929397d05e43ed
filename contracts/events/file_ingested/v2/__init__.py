"""`sluice.file.ingested.v2`."""

from contracts.events.file_ingested.v2.model import FileIngestedV2

__all__ = ["FileIngestedV2"]
