"""`sluice.batch.completed.v1`."""

from contracts.events.batch_completed.v1.model import BatchCompletedV1

__all__ = ["BatchCompletedV1"]
