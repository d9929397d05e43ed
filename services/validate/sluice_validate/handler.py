"""Lambda entry point of the validate service: an SQS batch of `file.ingested` events."""

from __future__ import annotations

from contracts.events import FileIngestedV1
from sluice_shared.ports import FileStatus
from sluice_shared.stages import StageService, StageSettings
from sluice_validate.domain import validate_ingested_file

service = StageService(
    StageSettings.from_env(),
    consumes=FileIngestedV1,
    step=validate_ingested_file,
    working=FileStatus.VALIDATING,
)
lambda_handler = service.lambda_handler
