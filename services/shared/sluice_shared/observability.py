"""Powertools telemetry, created once per process, and the metric names every service shares.

Logger: JSON lines, the envelope's `correlationid` on every line of a record's processing (as
`correlation_id`, see `correlation_scope`), and Powertools' own `xray_trace_id` (from
`_X_AMZN_TRACE_ID`) next to it, so a log line leads to its trace and its file.

Metrics: EMF in namespace `Sluice` (`POWERTOOLS_METRICS_NAMESPACE`), dimension `service`, flushed
by the handler's `@metrics.log_metrics(capture_cold_start_metric=True)` (`ColdStart`). Shared
names: `StageLatency` (ms in one stage's step), `EndToEndLatency` (ms from the raw object's
creation to the file's completion, emitted by output), `Files<Outcome>` (one per file and stage:
`FilesRegistered`, `FilesValidated`, `FilesRejected`, `FilesProcessed`, `FilesDuplicate`,
`FilesParked`, `FilesRetried`, ...), rows (`RowsIn`, `RowsQuarantined`, `RowsDuplicate`,
`RowsOut`) and bytes (`BytesIn`, `BytesOut`).

Tracer: X-Ray, switched off locally with `POWERTOOLS_TRACE_DISABLED=true` (the local runner and the
tests set it; every decorator then calls straight through). Switched off, the Tracer gets a no-op
provider and the X-Ray SDK is never imported. Switched on (the templates' `Tracing: Active`), it
is built without Powertools' auto-patching, which would import every library X-Ray can patch
(aiobotocore, aiohttp, botocore, requests: a third of a CPU second) at the handler's import;
`trace_aws_calls` patches the AWS clients' libraries when the clients are opened instead
(`sluice_shared.aws.clients.open_aws_deps`), so every AWS call is still a subsegment. The trace
crosses hops without help from the envelope: Lambda hands the SQS record's `AWSTraceHeader` system
attribute to X-Ray, and EventBridge forwards the trace header of a traced `PutEvents` to its
targets. The contract envelope ignores unknown attributes (its models drop them on parse), so the
trace id is not put into it; the log lines carry both ids instead.
"""

from __future__ import annotations

import functools
import os
import re
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import THREAD_LOCAL_KEYS
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

if TYPE_CHECKING:
    import numbers
    import traceback
    from collections.abc import AsyncIterator, Iterator, Sequence
    from datetime import datetime

METRICS_NAMESPACE = "Sluice"
STAGE_LATENCY = "StageLatency"
END_TO_END_LATENCY = "EndToEndLatency"
LATENCY_METRICS = frozenset({STAGE_LATENCY, END_TO_END_LATENCY})

# `sluice.file.processed.v1` -> `processed`; custom types keep their last word before the version.
_TYPE_OUTCOME = re.compile(r"(?:^|\.)([a-z0-9_]+)\.v\d+$")


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The three Powertools utilities of one service."""

    logger: Logger
    metrics: Metrics
    tracer: Tracer


class _NoSegment(BaseSegment):
    """The subsegment of disabled tracing: records nothing."""

    def close(self, end_time: int | None = None) -> None:
        """Nothing to close."""

    def add_subsegment(self, subsegment: Any) -> None:
        """Nothing is traced."""

    def remove_subsegment(self, subsegment: Any) -> None:
        """Nothing is traced."""

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        """Dropped."""

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        """Dropped."""

    def add_exception(
        self, exception: BaseException, stack: list[traceback.StackSummary], remote: bool = False
    ) -> None:
        """Dropped."""


class NoTracing(BaseProvider):
    """A Powertools tracing provider for disabled tracing: every call is a no-op, and building
    it imports nothing (unlike the X-Ray SDK's recorder)."""

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[BaseSegment]:
        """A subsegment that records nothing."""
        yield _NoSegment()

    @asynccontextmanager
    async def in_subsegment_async(
        self, name: str | None = None, **kwargs: Any
    ) -> AsyncIterator[BaseSegment]:
        """A subsegment that records nothing."""
        yield _NoSegment()

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        """Dropped."""

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        """Dropped."""

    def patch(self, modules: Sequence[str]) -> None:
        """Nothing to instrument."""

    def patch_all(self) -> None:
        """Nothing to instrument."""


def tracing_disabled() -> bool:
    """Whether `POWERTOOLS_TRACE_DISABLED` switches tracing off (Powertools' truthy values)."""
    return bool(
        resolve_truthy_env_var_choice(env=os.environ.get("POWERTOOLS_TRACE_DISABLED", "false"))
    )


@functools.cache
def telemetry(service: str) -> Telemetry:
    """Return the process-wide Logger, Metrics and Tracer for `service` (built on first call).

    Powertools keeps metric and logger state per process; building them once avoids duplicate
    handlers and split metric sets across modules. The log level comes from `LOG_LEVEL`
    (default INFO); the namespace from `POWERTOOLS_METRICS_NAMESPACE` (default `Sluice`).
    """
    level = os.environ.get("LOG_LEVEL", "INFO")
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
    tracer = (
        Tracer(service=service, disabled=True, provider=NoTracing())
        if tracing_disabled()
        else Tracer(service=service, auto_patch=False)  # see trace_aws_calls
    )
    return Telemetry(
        logger=Logger(service=service, level=level),
        metrics=Metrics(namespace=namespace, service=service),
        tracer=tracer,
    )


# What X-Ray instruments: the AWS SDK the adapters call through (nothing else makes requests).
TRACED_MODULES = ("aiobotocore", "botocore")


def trace_aws_calls(service: str) -> None:
    """Patch the AWS SDK for X-Ray (each call a subsegment of the invocation's trace); a no-op
    with tracing off. Called when the clients are opened, not at import: patching imports the
    libraries it patches. Patching twice is harmless (X-Ray skips a patched module)."""
    telemetry(service).tracer.patch(TRACED_MODULES)


@contextmanager
def correlation_scope(logger: Logger, correlation_id: str | None) -> Iterator[None]:
    """Put `correlation_id` on every log line written inside the block, then restore the
    previous one (records of one SQS batch belong to different files).

    The id lives in Powertools' context-local keys (a `ContextVar`), not in the logger's shared
    state: records of one batch run concurrently as asyncio tasks, each in its own copy of the
    context, so every line carries its own record's id. The keys are shared by all Powertools
    loggers of the context; `logger` is kept in the signature for the call sites' clarity.
    """
    del logger  # the context-local keys are not per logger
    token = THREAD_LOCAL_KEYS.set({**THREAD_LOCAL_KEYS.get(), "correlation_id": correlation_id})
    try:
        yield
    finally:
        THREAD_LOCAL_KEYS.reset(token)


def files_metric(outcome: str) -> str:
    """The metric name counting files with `outcome` (`"processed"` -> `FilesProcessed`,
    `"poison_parked"` -> `FilesPoisonParked`)."""
    words = re.split(r"[^A-Za-z0-9]+", outcome)
    return "Files" + "".join(w[:1].upper() + w[1:] for w in words if w)


def outcome_of(contract_type: str) -> str:
    """The outcome a stage's emitted event stands for: `sluice.file.rejected.v1` -> `rejected`.

    Returns the whole type, lower-cased, when it has no `.v<N>` suffix."""
    found = _TYPE_OUTCOME.search(contract_type)
    return found.group(1) if found else contract_type.lower()


def count_file(metrics: Metrics, outcome: str) -> None:
    """Add one to the `Files<Outcome>` metric of the current invocation."""
    metrics.add_metric(name=files_metric(outcome), unit=MetricUnit.Count, value=1)


def add_latency(metrics: Metrics, name: str, milliseconds: float) -> None:
    """Add a latency value in milliseconds (negative clock skew is clamped to 0)."""
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=max(0.0, milliseconds))


@contextmanager
def stage_timer(metrics: Metrics, name: str = STAGE_LATENCY) -> Iterator[None]:
    """Emit the wall time spent inside the block as the latency metric `name`, also when the
    block raises (a failing step's time is part of what the stage costs)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        add_latency(metrics, name, (time.perf_counter() - started) * 1000)


def end_to_end_ms(object_created_at: datetime, completed_at: datetime) -> float:
    """Milliseconds from the raw object's creation to the file's completion (0 for skew)."""
    return max(0.0, (completed_at - object_created_at).total_seconds() * 1000)
