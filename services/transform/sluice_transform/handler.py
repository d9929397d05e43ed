"""Lambda entry point of the transform service: an SQS batch of `file.validated` events."""

from __future__ import annotations

from contracts.events import FileValidatedV1
from sluice_shared.ports import FileStatus
from sluice_shared.stages import StageService, StageSettings
from sluice_transform.domain import transform_validated_file

# Transform publishes `file.transformed` and, for a file that ends here, `file.rejected`: both
# as sluice.transform, the one source the bus accepts from its role.
service = StageService(
    StageSettings.from_env(),
    consumes=FileValidatedV1,
    step=transform_validated_file,
    working=FileStatus.TRANSFORMING,
    source="sluice.transform",
)
lambda_handler = service.lambda_handler
