"""`sluice.file.validated.v1`."""

from contracts.events.file_validated.v1.model import FileValidatedV1

__all__ = ["FileValidatedV1"]
