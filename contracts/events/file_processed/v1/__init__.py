"""`sluice.file.processed.v1`."""

from contracts.events.file_processed.v1.model import FileProcessedV1

__all__ = ["FileProcessedV1"]
