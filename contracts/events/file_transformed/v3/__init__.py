"""`sluice.file.transformed.v3`."""

from contracts.events.file_transformed.v3.model import FileTransformedV3

__all__ = ["FileTransformedV3"]
