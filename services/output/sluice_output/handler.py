"""Lambda entry point of the output service: an SQS batch of `file.transformed` events."""

from __future__ import annotations

from contracts.events import FileTransformedV1
from sluice_output.domain import write_transformed_file
from sluice_shared.ports import FileStatus
from sluice_shared.stages import StageService, StageSettings

service = StageService(
    StageSettings.from_env(),
    consumes=FileTransformedV1,
    step=write_transformed_file,
    working=FileStatus.WRITING,
)
lambda_handler = service.lambda_handler
