"""A stage's Lambda handler, run on fakes with tracing disabled: the EMF metrics it flushes
(stage latency, files by outcome, counts, end-to-end latency, cold start) and the correlation
id on its log lines."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider.cold_start import reset_cold_start_flag

from contracts.datasets import DatasetCatalog
from contracts.envelope import Envelope
from contracts.events import FileProcessedV1, FileTransformedV1
from contracts.registry import parse_envelope
from sluice_output.domain import OutputReport
from sluice_shared.errors import EventLedgerMismatch, PoisonInputError, TransientError
from sluice_shared.observability import telemetry
from sluice_shared.ports import FileRecord, FileStatus
from sluice_shared.runtime import Runtime
from sluice_shared.stages import ServiceDeps, StageDeps, StageService, StageSettings
from tests.fakes import FakeDeps, fake_deps

EXAMPLE = Path("contracts/events/file_transformed/v1/examples/with_duplicates.json")
ROOT = Path(__file__).resolve().parents[3]


class FakeContext:
    function_name = "sluice-test-output"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sluice-test-output"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class ScriptedStep:
    """A domain step that returns (or raises) what the test scripted, and records its input."""

    outcome: OutputReport | BaseException
    seen: list[Any] = field(default_factory=list)

    async def __call__(self, data: Any, deps: StageDeps, settings: StageSettings) -> OutputReport:
        self.seen.append(data)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def transformed_envelope() -> Envelope[Any]:
    return parse_envelope((ROOT / EXAMPLE).read_bytes(), accepted=[FileTransformedV1.TYPE])


def processed_from(data: FileTransformedV1) -> FileProcessedV1:
    return FileProcessedV1(
        file_id=data.file_id,
        dataset=data.dataset,
        bucket=data.bucket,
        key=data.key,
        manifest_uri=f"s3://processed/_manifests/{data.file_id}.json",
        objects=1,
        rows_in=data.rows_file_in,
        rows_out=data.rows_out,
        rows_quarantined=data.rows_quarantined,
        bytes_out=4096,
        object_created_at=data.object_created_at,
        completed_at=data.object_created_at + timedelta(seconds=3),
    )


def sqs_event(envelope: Envelope[Any]) -> dict[str, Any]:
    body = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": envelope.type,
        "source": envelope.source,
        "detail": envelope.model_dump(mode="json"),
    }
    return {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r-1",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
            }
        ]
    }


def build_service(
    step: ScriptedStep, fakes: FakeDeps, *, working: FileStatus = FileStatus.WRITING
) -> StageService:
    settings = StageSettings(
        raw_bucket="raw",
        work_bucket="work",
        processed_bucket="processed",
        error_bucket="errors",
        event_bus="bus",
        ledger_table="ledger",
        service_name=f"output-{uuid.uuid4().hex[:8]}",
    )
    service = StageService(settings, consumes=FileTransformedV1, step=step, working=working)

    @asynccontextmanager
    async def open_fakes() -> AsyncIterator[ServiceDeps]:
        stage = StageDeps(objects=fakes.objects, ledger=fakes.ledger, contracts=DatasetCatalog())
        yield ServiceDeps(aws=fakes.as_aws_deps(), stage=stage)

    service.runtime = Runtime(
        open_fakes, dlq_url="https://dlq", logger=service.logger, metrics=service.metrics
    )
    return service


def run_handler(
    service: StageService, envelope: Envelope[Any], capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    try:
        response = service.lambda_handler(sqs_event(envelope), FakeContext())
    finally:
        service.runtime.close()
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    emf = [x for x in lines if "_aws" in x]
    logs = [x for x in lines if "_aws" not in x]
    return response, emf, logs


def metric_values(emf: list[dict[str, Any]]) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for doc in emf:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                raw = doc[metric["Name"]]
                found.setdefault(metric["Name"], []).extend(raw if isinstance(raw, list) else [raw])
    return found


def metric_units(emf: list[dict[str, Any]]) -> dict[str, str]:
    return {
        m["Name"]: m["Unit"]
        for doc in emf
        for directive in doc["_aws"]["CloudWatchMetrics"]
        for m in directive["Metrics"]
    }


@pytest.fixture(autouse=True)
def fresh_cold_start() -> None:
    reset_cold_start_flag()  # type: ignore[no-untyped-call]


@pytest.fixture(autouse=True)
def repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_stage_handler_completed_file_emits_latencies_outcome_counts_and_cold_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    envelope = transformed_envelope()
    event = processed_from(envelope.data)
    report = OutputReport(
        event=event, objects=1, bytes_out=4096, rows_out=985, end_to_end_ms=3000.0
    )
    fakes = fake_deps()
    service = build_service(ScriptedStep(report), fakes)

    response, emf, logs = run_handler(service, envelope, capsys)

    assert response == {"batchItemFailures": []}
    values, units = metric_values(emf), metric_units(emf)
    assert values["FilesProcessed"] == [1.0]
    assert values["EndToEndLatency"] == [3000.0]
    assert units["EndToEndLatency"] == units["StageLatency"] == "Milliseconds"
    assert len(values["StageLatency"]) == 1
    assert values["StageLatency"][0] >= 0
    assert values["RowsOut"] == [985.0]
    assert values["BytesOut"] == [4096.0]
    assert values["ColdStart"] == [1.0]
    assert [e.type for e in fakes.publisher.published] == [FileProcessedV1.TYPE]
    step_lines = [x for x in logs if x.get("message") in {"step done", "record processed"}]
    assert len(step_lines) == 2
    assert {x["correlation_id"] for x in step_lines} == {envelope.correlationid}


def test_stage_handler_second_invocation_is_not_a_cold_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    envelope = transformed_envelope()
    report = OutputReport(event=processed_from(envelope.data), rows_out=985)
    service = build_service(ScriptedStep(report), fake_deps())
    run_handler(service, envelope, capsys)

    _, emf, _ = run_handler(service, envelope, capsys)

    values = metric_values(emf)
    assert "ColdStart" not in values
    assert values["FilesProcessed"] == [1.0]
    assert "EndToEndLatency" not in values  # no end_to_end_ms: nothing to report


def test_stage_handler_duplicate_delivery_counts_a_duplicate_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    envelope = transformed_envelope()
    fakes = fake_deps()
    service = build_service(ScriptedStep(OutputReport(event=None)), fakes)

    _, emf, _ = run_handler(service, envelope, capsys)

    values = metric_values(emf)
    assert values["FilesDuplicate"] == [1.0]
    assert "FilesProcessed" not in values
    assert "RowsOut" not in values
    assert fakes.publisher.published == []


@pytest.mark.parametrize(
    ("error", "metric", "failures"),
    [
        (PoisonInputError("bad input"), "FilesPoison", []),
        (TransientError("throttled"), "FilesRetried", [{"itemIdentifier": "m-1"}]),
    ],
)
def test_stage_handler_failing_step_counts_its_outcome_and_still_times_it(
    capsys: pytest.CaptureFixture[str],
    error: BaseException,
    metric: str,
    failures: list[dict[str, str]],
) -> None:
    envelope = transformed_envelope()
    fakes = fake_deps()
    service = build_service(ScriptedStep(error), fakes)

    response, emf, logs = run_handler(service, envelope, capsys)

    values = metric_values(emf)
    assert values[metric] == [1.0]
    assert len(values["StageLatency"]) == 1
    assert response["batchItemFailures"] == failures
    warned = [x for x in logs if x["level"] == "WARNING"]
    assert warned
    assert all(x["correlation_id"] == envelope.correlationid for x in warned)


def test_output_report_latency_only_when_this_delivery_completed_the_file() -> None:
    completed = OutputReport(event=None, end_to_end_ms=1500.0)
    replayed = OutputReport(event=None)

    assert completed.latency_values() == {"EndToEndLatency": 1500.0}
    assert replayed.latency_values() == {}


async def test_traced_step_with_tracing_disabled_passes_results_and_errors_through() -> None:
    tracer = telemetry(f"svc-{uuid.uuid4().hex}").tracer

    @tracer.capture_method
    async def step(value: int) -> int:
        if value < 0:
            raise ValueError("negative")
        return value * 2

    assert await step(21) == 42
    with pytest.raises(ValueError, match="negative"):
        await step(-1)


def test_stage_handler_record_that_is_not_a_contract_counts_as_poison(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A record refused while parsing never reaches the step: the runtime still counts it.
    service = build_service(ScriptedStep(RuntimeError("never reached")), fake_deps())
    event = {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r",
                "body": "not json",
                "attributes": {},
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
            }
        ]
    }
    try:
        response = service.lambda_handler(event, FakeContext())
    finally:
        service.runtime.close()
    assert response == {"batchItemFailures": []}
    emf = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and "_aws" in line
    ]
    assert metric_values(emf)["FilesPoison"] == [1.0]


def test_stage_handler_refused_event_counts_a_mismatch_and_keeps_it_in_the_ledger(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a registered file and a step that finds the event disagreeing with its record
    envelope = transformed_envelope()
    data = envelope.data
    fakes = fake_deps()
    record = FileRecord(
        file_id=data.file_id, dataset=data.dataset.name, bucket=data.bucket, key=data.key
    )
    asyncio.run(fakes.ledger.register_file(record))
    mismatch = EventLedgerMismatch.of(data.file_id, [("transformed_prefix", "s3://x/", "s3://y/")])
    service = build_service(ScriptedStep(mismatch), fakes)
    # WHEN the handler runs it
    response, emf, _ = run_handler(service, envelope, capsys)
    # THEN it is parked (poison), counted as EventLedgerMismatch, and the attempt is a REFUSED
    # step of the file's history, the record itself untouched
    assert response == {"batchItemFailures": []}
    values = metric_values(emf)
    assert values["EventLedgerMismatch"] == [1.0]
    assert values["FilesPoison"] == [1.0]
    assert [p.reason_code for p in fakes.parker.parked] == ["event_ledger_mismatch"]
    refused = [s for s in fakes.ledger.steps[data.file_id] if s["to_status"] == "REFUSED"]
    assert [(s["event_id"], s["error_code"]) for s in refused] == [
        (envelope.id, "event_ledger_mismatch")
    ]
    assert "transformed_prefix: event 's3://x/', ledger 's3://y/'" in refused[0]["error"]
    assert fakes.ledger.records[data.file_id] == record
