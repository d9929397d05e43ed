"""`sluice.file.transformed.v1`."""

from contracts.events.file_transformed.v1.model import FileTransformedV1

__all__ = ["FileTransformedV1"]
