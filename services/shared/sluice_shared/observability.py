"""Powertools telemetry, created once per process.

Logger: JSON lines, the envelope's `correlationid` on every line of a record's processing (as
`correlation_id`). Metrics: EMF in namespace `Sluice` (`POWERTOOLS_METRICS_NAMESPACE`), flushed by
the handler's `@metrics.log_metrics`. Tracer: X-Ray, switched off locally with
`POWERTOOLS_TRACE_DISABLED=true`.
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer

if TYPE_CHECKING:
    from collections.abc import Iterator

METRICS_NAMESPACE = "Sluice"


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The three Powertools utilities of one service."""

    logger: Logger
    metrics: Metrics
    tracer: Tracer


@functools.cache
def telemetry(service: str) -> Telemetry:
    """Return the process-wide Logger, Metrics and Tracer for `service` (built on first call).

    Powertools keeps metric and logger state per process; building them once avoids duplicate
    handlers and split metric sets across modules. The log level comes from `LOG_LEVEL`
    (default INFO); the namespace from `POWERTOOLS_METRICS_NAMESPACE` (default `Sluice`).
    """
    level = os.environ.get("LOG_LEVEL", "INFO")
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
    return Telemetry(
        logger=Logger(service=service, level=level),
        metrics=Metrics(namespace=namespace, service=service),
        tracer=Tracer(service=service),
    )


@contextmanager
def correlation_scope(logger: Logger, correlation_id: str | None) -> Iterator[None]:
    """Put `correlation_id` on every log line written inside the block, then restore the
    previous one (records of one SQS batch belong to different files)."""
    previous = logger.get_correlation_id()
    logger.set_correlation_id(correlation_id)
    try:
        yield
    finally:
        logger.set_correlation_id(previous)
