"""Telemetry is built once per service; correlation ids are scoped to a block."""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import pytest
from aws_lambda_powertools import Logger

from sluice_shared.observability import (
    NoTracing,
    correlation_scope,
    telemetry,
    tracing_disabled,
)


def test_telemetry_same_service_returns_the_same_objects() -> None:
    service = f"svc-{uuid.uuid4().hex}"

    first, second = telemetry(service), telemetry(service)

    assert first is second
    assert first.logger is second.logger
    assert telemetry(f"other-{uuid.uuid4().hex}") is not first


def test_correlation_scope_tags_lines_inside_and_restores_after() -> None:
    stream = io.StringIO()
    logger = Logger(service=f"svc-{uuid.uuid4().hex}", stream=stream)
    logger.set_correlation_id("outer")

    with correlation_scope(logger, "file-1"):
        logger.info("inside")
    logger.info("after")

    inside, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["correlation_id"] == "file-1"
    assert after["correlation_id"] == "outer"


def test_telemetry_tracing_disabled_uses_no_op_provider_and_decorators_call_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    tracer = telemetry(f"svc-{uuid.uuid4().hex}").tracer

    @tracer.capture_method
    async def step(value: int) -> int:
        return value + 1

    @tracer.capture_lambda_handler
    def handler(event: dict[str, int], context: object) -> int:
        return asyncio.run(step(event["n"]))

    assert isinstance(tracer.provider, NoTracing)
    assert tracer.disabled
    assert handler({"n": 41}, None) == 42


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("false", False)])
def test_tracing_disabled_reads_powertools_truthy_values(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", value)

    assert tracing_disabled() is expected
