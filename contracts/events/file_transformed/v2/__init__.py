"""`sluice.file.transformed.v2`."""

from contracts.events.file_transformed.v2.model import FileTransformedV2

__all__ = ["FileTransformedV2"]
