"""Lambda entry point of the ingest service: an SQS batch of S3 "Object Created" events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from contracts.envelope import Envelope
from sluice_ingest.adapters import open_ingest_deps
from sluice_ingest.config import IngestSettings
from sluice_ingest.domain import ObjectCreated, ingest_object
from sluice_ingest.events import S3ObjectCreated, parse_s3_event
from sluice_shared.observability import telemetry
from sluice_shared.runtime import Runtime
from sluice_shared.stages import event_id

if TYPE_CHECKING:
    from sluice_ingest.adapters import IngestServiceDeps

settings = IngestSettings.from_env()
_telemetry = telemetry(settings.service_name)
logger, metrics = _telemetry.logger, _telemetry.metrics
runtime: Runtime[IngestServiceDeps] = Runtime(
    lambda: open_ingest_deps(settings),
    dlq_url=settings.dlq_url,
    logger=logger,
    parse=parse_s3_event,
)


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return runtime.process_sqs_batch(event, handle_one, accepted={S3ObjectCreated.TYPE})


async def handle_one(envelope: Envelope[Any], deps: IngestServiceDeps) -> None:
    notice: S3ObjectCreated = envelope.data
    created = ObjectCreated(
        bucket=notice.bucket.name,
        key=notice.object.key,
        size=notice.object.size,
        etag=notice.object.etag,
        version_id=notice.object.version_id,
        sequencer=notice.object.sequencer,
        time=notice.event_time,
    )
    report = await ingest_object(created, deps.ingest, settings)
    metrics.add_metric(name=f"Files{report.outcome.title()}", unit=MetricUnit.Count, value=1)
    logger.info("object ingested", extra={"file_id": report.file_id, "outcome": report.outcome})
    if report.event is not None:
        # From here on the file id is the correlation id of every event of the file's run.
        await deps.aws.publisher.publish(
            [
                Envelope.wrap(
                    report.event,
                    correlationid=report.file_id,
                    source="sluice.ingest",
                    id=event_id(report.file_id, report.event.TYPE),
                )
            ]
        )
