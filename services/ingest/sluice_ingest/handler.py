"""Lambda entry point of the ingest service: an SQS batch of S3 "Object Created" events."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from contracts.envelope import Envelope
from contracts.events import published_majors
from sluice_ingest.config import IngestSettings
from sluice_ingest.domain import ObjectCreated, ingest_object
from sluice_ingest.events import S3ObjectCreated, parse_s3_event
from sluice_shared.errors import PoisonInputError
from sluice_shared.observability import correlation_scope, count_file, stage_timer, telemetry
from sluice_shared.ports import FileStatus
from sluice_shared.runtime import Runtime
from sluice_shared.sqs import Concurrency
from sluice_shared.stages import event_id, fail_file

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from contracts.envelope import ContractModel
    from sluice_ingest.adapters import IngestServiceDeps

settings = IngestSettings.from_env()
_telemetry = telemetry(settings.service_name)
logger, metrics, tracer = _telemetry.logger, _telemetry.metrics, _telemetry.tracer
# A subsegment for the domain step; a pass-through with POWERTOOLS_TRACE_DISABLED (local, tests).
traced_ingest = tracer.capture_method(ingest_object)


def _open_deps() -> AbstractAsyncContextManager[IngestServiceDeps]:
    # The AWS libraries load with the clients, on the first invocation (sluice_shared.aws.clients).
    from sluice_ingest.adapters import open_ingest_deps

    return open_ingest_deps(settings)


runtime: Runtime[IngestServiceDeps] = Runtime(
    _open_deps,
    dlq_url=settings.dlq_url,
    logger=logger,
    parse=parse_s3_event,
    metrics=metrics,
    # Ingest reads an object's metadata, never its bytes: a large file costs no more memory here.
    concurrency=replace(Concurrency.from_env(), metadata_only=True),
)
# Outcomes that registered a new file (its bytes enter the pipeline).
_ACCEPTED_OUTCOMES = frozenset({"realtime", "batch", "rejected"})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return runtime.process_sqs_batch(
        event, handle_one, accepted={S3ObjectCreated.TYPE}, context=context
    )


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
    with stage_timer(metrics):
        report = await traced_ingest(created, deps.ingest, settings)
    count_file(metrics, report.outcome)
    if report.outcome in _ACCEPTED_OUTCOMES:
        metrics.add_metric(name="BytesIngested", unit=MetricUnit.Count, value=report.size_bytes)
    # The S3 notice carried no file id; from here on the lines carry the file's.
    with correlation_scope(logger, report.file_id):
        logger.info("object ingested", extra={"file_id": report.file_id, "outcome": report.outcome})
        if report.event is not None:
            try:
                await _publish(report.file_id, report.event, deps)
            except PoisonInputError as poison:
                # The fact can never be published (e.g. too large) and the notification is
                # parked next: fail the file, or it stays PENDING for ever.
                await fail_file(deps.ingest.ledger, report.file_id, FileStatus.PENDING, poison)
                raise


async def _publish(file_id: str, event: ContractModel, deps: IngestServiceDeps) -> None:
    # From here on the file id is the correlation id of every event of the file's run. A fact
    # with several live majors goes out in each of them, in one PutEvents call.
    envelopes = [
        Envelope.wrap(
            major, correlationid=file_id, source="sluice.ingest", id=event_id(file_id, major.TYPE)
        )
        for major in published_majors(event)
    ]
    await deps.aws.publisher.publish(envelopes)
