"""`sluice.batch.failed.v1`: a batch run failed as a whole."""

from __future__ import annotations

from typing import ClassVar

from contracts.envelope import ContractModel
from contracts.types import ExecutionArn, NonNegativeInt, Reason, ReasonCode, RunId


class BatchFailedV1(ContractModel):
    """A batch run failed (planning failed, or failed partitions exceeded the tolerance).

    Compatibility: fields may be added (optional) within v1; anything else is v2.
    """

    TYPE: ClassVar[str] = "sluice.batch.failed.v1"
    SOURCE: ClassVar[str] = "sluice.batch"

    run_id: RunId
    execution_arn: ExecutionArn
    reason_code: ReasonCode
    reason: Reason
    files: NonNegativeInt
    partitions: NonNegativeInt
    partitions_failed: NonNegativeInt
