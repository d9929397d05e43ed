"""`sluice.file.validated.v2`."""

from contracts.events.file_validated.v2.model import FileValidatedV2

__all__ = ["FileValidatedV2"]
