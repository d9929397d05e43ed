"""`sluice.file.validated.v3`."""

from contracts.events.file_validated.v3.model import FileValidatedV3

__all__ = ["FileValidatedV3"]
