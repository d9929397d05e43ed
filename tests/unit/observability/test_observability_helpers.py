"""Metric names, latency helpers and the ids on a log line."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics

from sluice_shared.observability import (
    END_TO_END_LATENCY,
    correlation_scope,
    end_to_end_ms,
    files_metric,
    outcome_of,
    stage_timer,
)


@pytest.mark.parametrize(
    ("outcome", "name"),
    [
        ("processed", "FilesProcessed"),
        ("poison_parked", "FilesPoisonParked"),
        ("batch", "FilesBatch"),
    ],
)
def test_files_metric_outcome_becomes_camel_case_name(outcome: str, name: str) -> None:
    assert files_metric(outcome) == name


@pytest.mark.parametrize(
    ("contract_type", "outcome"),
    [
        ("sluice.file.processed.v1", "processed"),
        ("sluice.file.rejected.v1", "rejected"),
        ("acme.invoice.booked.v12", "booked"),
        ("NoVersion", "noversion"),
    ],
)
def test_outcome_of_contract_type_is_its_last_word(contract_type: str, outcome: str) -> None:
    assert outcome_of(contract_type) == outcome


def test_end_to_end_ms_clock_skew_is_clamped_to_zero() -> None:
    created = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)

    assert end_to_end_ms(created, created + timedelta(seconds=2.5)) == 2500.0
    assert end_to_end_ms(created, created - timedelta(seconds=1)) == 0.0


def _flushed(metrics: Metrics, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    metrics.flush_metrics()
    (line,) = [x for x in capsys.readouterr().out.splitlines() if '"_aws"' in x]
    doc: dict[str, Any] = json.loads(line)
    return doc


def test_stage_timer_failing_block_still_emits_its_latency(
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = Metrics(namespace="Sluice", service=f"svc-{uuid.uuid4().hex[:8]}")

    with pytest.raises(RuntimeError), stage_timer(metrics, END_TO_END_LATENCY):
        raise RuntimeError("boom")

    doc = _flushed(metrics, capsys)
    (value,) = doc[END_TO_END_LATENCY]
    assert value >= 0
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Metrics"] == [{"Name": END_TO_END_LATENCY, "Unit": "Milliseconds"}]


def test_log_line_in_correlation_scope_carries_file_and_trace_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"
    )
    stream = io.StringIO()
    logger = Logger(service=f"svc-{uuid.uuid4().hex}", stream=stream)

    with correlation_scope(logger, "file-7"):
        logger.info("working")

    line = json.loads(stream.getvalue())
    assert line["correlation_id"] == "file-7"
    assert line["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
