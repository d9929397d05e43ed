"""Read the EMF metrics the services wrote and summarise them.

Locally the function runner writes each function's stdout to `<state-dir>/logs/<function>.log`;
Powertools Metrics writes one JSON object per flush there, recognisable by its `_aws` key
(CloudWatch Embedded Metric Format). On AWS the same lines sit in the functions' log groups and
CloudWatch turns them into metrics. This module reads them back so `sluice local run` and
`sluice status --metrics` can show rows in/out/quarantined, files by outcome and p50/p95 of the
stage and end-to-end latencies without CloudWatch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from sluice.ops.logs import function_log_files

if TYPE_CHECKING:
    from pathlib import Path

STAGE_LATENCY = "StageLatency"
END_TO_END_LATENCY = "EndToEndLatency"
# Rows that left the pipeline without reaching the output: validation failures and duplicates.
_QUARANTINED = ("RowsQuarantined", "RowsDuplicate")


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One value of one metric from one EMF line."""

    function: str
    service: str
    name: str
    unit: str
    value: float
    timestamp_ms: int


def parse_emf_line(line: str, function: str) -> list[MetricPoint]:
    """The metric values of one log line; empty when the line is not an EMF object.

    A metric's value may be a number or a list of numbers (Powertools writes lists); every
    element becomes a point. Malformed lines are skipped, never raised: logs are mixed text.
    """
    text = line.strip()
    if not text.startswith("{") or '"_aws"' not in text:
        return []
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    meta = doc.get("_aws") if isinstance(doc, dict) else None
    if not isinstance(meta, dict):
        return []
    timestamp = meta.get("Timestamp")
    stamp = int(timestamp) if isinstance(timestamp, int | float) else 0
    service = str(doc.get("service", ""))
    points: list[MetricPoint] = []
    for directive in meta.get("CloudWatchMetrics") or []:
        metrics = directive.get("Metrics") if isinstance(directive, dict) else None
        for metric in metrics or []:
            name = metric.get("Name") if isinstance(metric, dict) else None
            if not isinstance(name, str):
                continue
            unit = str(metric.get("Unit", "None"))
            for value in _values(doc.get(name)):
                points.append(MetricPoint(function, service, name, unit, value, stamp))
    return points


def _values(raw: Any) -> list[float]:
    items = raw if isinstance(raw, list) else [raw]
    return [float(v) for v in items if isinstance(v, int | float) and not isinstance(v, bool)]


def read_emf_logs(path: Path, *, since_ms: int | None = None) -> list[MetricPoint]:
    """EMF points from a log file, a folder of `<function>.log` files, or a local-runtime state
    directory (its `logs/` folder); only points stamped at or after `since_ms` when given.

    The function name is the file name without `.log`. Returns an empty list for a folder
    without logs. Raises FileNotFoundError when `path` does not exist.
    """
    points: list[MetricPoint] = []
    for file in function_log_files(path):
        with file.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                points.extend(
                    p
                    for p in parse_emf_line(line, file.stem)
                    if since_ms is None or p.timestamp_ms >= since_ms
                )
    return points


def percentile(values: Iterable[float], pct: float) -> float | None:
    """Nearest-rank percentile of `values` (None when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


@dataclass(frozen=True, slots=True)
class Latency:
    """Count, p50 and p95 (ms) of a latency metric."""

    count: int
    p50_ms: float | None
    p95_ms: float | None

    @classmethod
    def of(cls, values: list[float]) -> Latency:
        """The summary of `values` (milliseconds)."""
        return cls(len(values), percentile(values, 50), percentile(values, 95))


@dataclass(frozen=True, slots=True)
class MetricsSummary:
    """What the EMF lines say about a run.

    `totals` sums every metric by name across services (counts, bytes); `files` is the
    `Files<Outcome>` counts by service; `stage_latency` is by service.
    """

    totals: Mapping[str, float]
    files: Mapping[str, Mapping[str, int]]
    stage_latency: Mapping[str, Latency]
    end_to_end: Latency
    points: int = 0
    functions: tuple[str, ...] = field(default=())

    @property
    def rows_in(self) -> int:
        """Rows read by validate (`RowsIn`)."""
        return int(self.totals.get("RowsIn", 0))

    @property
    def rows_out(self) -> int:
        """Rows written by output (`RowsOut`)."""
        return int(self.totals.get("RowsOut", 0))

    @property
    def rows_quarantined(self) -> int:
        """Rows quarantined by validate plus duplicates dropped by transform."""
        return int(sum(self.totals.get(name, 0) for name in _QUARANTINED))

    @property
    def cold_starts(self) -> int:
        """`ColdStart` values summed over every function."""
        return int(self.totals.get("ColdStart", 0))

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (for `--json`)."""
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_quarantined": self.rows_quarantined,
            "cold_starts": self.cold_starts,
            "bytes_in": int(self.totals.get("BytesIn", 0)),
            "bytes_out": int(self.totals.get("BytesOut", 0)),
            "files": {k: dict(v) for k, v in self.files.items()},
            "stage_latency_ms": {
                k: {"count": v.count, "p50": v.p50_ms, "p95": v.p95_ms}
                for k, v in self.stage_latency.items()
            },
            "end_to_end_latency_ms": {
                "count": self.end_to_end.count,
                "p50": self.end_to_end.p50_ms,
                "p95": self.end_to_end.p95_ms,
            },
            "totals": dict(self.totals),
            "points": self.points,
        }


def summarize(points: Iterable[MetricPoint]) -> MetricsSummary:
    """Fold EMF points into a `MetricsSummary`."""
    totals: dict[str, float] = {}
    files: dict[str, dict[str, int]] = {}
    stage: dict[str, list[float]] = {}
    end_to_end: list[float] = []
    functions: set[str] = set()
    count = 0
    for point in points:
        count += 1
        functions.add(point.function)
        service = point.service or point.function
        if point.name == STAGE_LATENCY:
            stage.setdefault(service, []).append(point.value)
        elif point.name == END_TO_END_LATENCY:
            end_to_end.append(point.value)
        else:
            totals[point.name] = totals.get(point.name, 0) + point.value
            if point.name.startswith("Files"):
                by_outcome = files.setdefault(service, {})
                outcome = point.name.removeprefix("Files")
                by_outcome[outcome] = by_outcome.get(outcome, 0) + int(point.value)
    return MetricsSummary(
        totals=totals,
        files=files,
        stage_latency={k: Latency.of(v) for k, v in sorted(stage.items())},
        end_to_end=Latency.of(end_to_end),
        points=count,
        functions=tuple(sorted(functions)),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def summary_text(summary: MetricsSummary) -> str:
    """The human summary: rows, files by outcome per service, latencies."""
    if summary.points == 0:
        return "metrics (EMF): none found"
    lines = [
        f"metrics (EMF, {summary.points} values from {len(summary.functions)} function logs):",
        f"  rows in {summary.rows_in}, out {summary.rows_out}, "
        f"quarantined {summary.rows_quarantined}; cold starts {summary.cold_starts}",
    ]
    for service, outcomes in sorted(summary.files.items()):
        parts = ", ".join(f"{name} {n}" for name, n in sorted(outcomes.items()))
        lines.append(f"  files {service}: {parts}")
    width = max([len(s) for s in summary.stage_latency] + [len("end-to-end")])
    for service, latency in summary.stage_latency.items():
        lines.append(
            f"  latency {service.ljust(width)}  p50 {_ms(latency.p50_ms)}, "
            f"p95 {_ms(latency.p95_ms)} (n={latency.count})"
        )
    e2e = summary.end_to_end
    lines.append(
        f"  latency {'end-to-end'.ljust(width)}  p50 {_ms(e2e.p50_ms)}, p95 {_ms(e2e.p95_ms)} "
        f"(n={e2e.count})"
    )
    return "\n".join(lines)
