"""`sluice.file.rejected.v1`."""

from contracts.events.file_rejected.v1.model import FileRejectedV1

__all__ = ["FileRejectedV1"]
