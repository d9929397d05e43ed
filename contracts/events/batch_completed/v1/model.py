"""`sluice.batch.completed.v1`: a batch run finished and reconciled."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from contracts.envelope import ContractModel
from contracts.types import ExecutionArn, NonNegativeInt, RunId, S3Uri


class BatchCompletedV1(ContractModel):
    """A batch run (large file or backfill) finished and its counts were reconciled; failed
    partitions, if any, stayed within the tolerated failure percentage.

    Compatibility: fields may be added (optional) within v1; anything else is v2.
    """

    TYPE: ClassVar[str] = "sluice.batch.completed.v1"
    SOURCE: ClassVar[str] = "sluice.batch"

    run_id: RunId
    execution_arn: ExecutionArn
    files: NonNegativeInt
    partitions: NonNegativeInt
    partitions_failed: NonNegativeInt
    rows_in: NonNegativeInt
    rows_out: NonNegativeInt
    rows_quarantined: NonNegativeInt
    result_uri: S3Uri = Field(description="The Distributed Map results written by ResultWriter.")
