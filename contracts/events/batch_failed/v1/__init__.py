"""`sluice.batch.failed.v1`."""

from contracts.events.batch_failed.v1.model import BatchFailedV1

__all__ = ["BatchFailedV1"]
