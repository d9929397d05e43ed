"""Telemetry is built once per service; correlation ids are scoped to a block."""

from __future__ import annotations

import io
import json
import uuid

from aws_lambda_powertools import Logger

from sluice_shared.observability import correlation_scope, telemetry


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
