"""The cost model: public prices (`sluice.pricing`) applied to measured usage.

Usage comes from Lambda `REPORT` lines (billed duration × configured memory, one request per
line) — written by the local function runner to `<state-dir>/logs/<function>.log`, or read from
CloudWatch Logs on AWS — plus request counts for the other services. Counts that were not
measured come from `request_model`, a per-file model of what the real-time path calls; every
figure says which it is, and every line shows its arithmetic.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sluice.ops.logs import function_log_files

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from sluice.pricing import PriceBook

ARCHITECTURES = ("arm64", "x86_64")
GIB = 1024**3
_FIELD = re.compile(r"^(?P<key>[A-Za-z ]+):\s*(?P<value>[\d.]+)")


# ------------------------------------------------------------------------------ REPORT lines


@dataclass(frozen=True, slots=True)
class Invocation:
    """One `REPORT` line."""

    function: str
    request_id: str
    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_mb: int | None = None
    init_ms: float | None = None

    @property
    def gb_seconds(self) -> float:
        """Billed GB-seconds: billed duration × configured memory (MB / 1024)."""
        return self.billed_ms / 1000 * self.memory_mb / 1024


def parse_report_line(line: str, function: str) -> Invocation | None:
    """Read a Lambda `REPORT RequestId: …` line; None for any other line.

    Tolerates the extra fields AWS appends (`Init Duration`, `XRAY TraceId`, `Status`).
    Raises ValueError for a REPORT line missing Billed Duration or Memory Size.
    """
    text = line.strip()
    marker = text.find("REPORT RequestId:")
    if marker < 0:
        return None
    parts = [p.strip() for p in text[marker:].split("\t") if p.strip()]
    request_id = parts[0].removeprefix("REPORT RequestId:").strip()
    values: dict[str, float] = {}
    for part in parts[1:]:
        match = _FIELD.match(part)
        if match:
            values[match.group("key").strip()] = float(match.group("value"))
    if "Billed Duration" not in values or "Memory Size" not in values:
        raise ValueError(f"REPORT line without billed duration or memory size: {text[:160]!r}")
    return Invocation(
        function=function,
        request_id=request_id,
        duration_ms=values.get("Duration", values["Billed Duration"]),
        billed_ms=int(values["Billed Duration"]),
        memory_mb=int(values["Memory Size"]),
        max_memory_mb=int(values["Max Memory Used"]) if "Max Memory Used" in values else None,
        init_ms=values.get("Init Duration"),
    )


def parse_reports(lines: Iterable[str], function: str) -> list[Invocation]:
    """Every REPORT line of `lines` (other lines are skipped)."""
    found = []
    for line in lines:
        invocation = parse_report_line(line, function)
        if invocation is not None:
            found.append(invocation)
    return found


def read_report_logs(path: Path) -> list[Invocation]:
    """REPORT lines from a log file, a directory of `<function>.log` files, or a local-runtime
    state directory (its `logs/` folder). The function name is the file name without `.log`.

    Raises FileNotFoundError when `path` does not exist, ValueError when it holds no log file.
    """
    files = function_log_files(path)
    if not files:
        raise ValueError(f"{path} holds no *.log files (expected <function>.log)")
    invocations: list[Invocation] = []
    for file in files:
        with file.open(encoding="utf-8", errors="replace") as handle:
            invocations.extend(parse_reports(handle, file.stem))
    return invocations


def read_cloudwatch_reports(
    logs: Any, *, prefix: str, start_ms: int, end_ms: int
) -> list[Invocation]:
    """REPORT lines of every log group under `prefix` (e.g. `/aws/lambda/sluice-prod-`) in the
    window, via FilterLogEvents; the function name is the log group's last segment."""
    invocations: list[Invocation] = []
    groups: list[str] = []
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix):
        groups.extend(group["logGroupName"] for group in page.get("logGroups", []))
    for group in groups:
        function = group.rsplit("/", 1)[-1]
        paginator = logs.get_paginator("filter_log_events")
        for page in paginator.paginate(
            logGroupName=group,
            startTime=start_ms,
            endTime=end_ms,
            filterPattern='"REPORT RequestId"',
        ):
            invocations.extend(
                parse_reports((event["message"] for event in page.get("events", [])), function)
            )
    return invocations


# ---------------------------------------------------------------------------------- usage


@dataclass(frozen=True, slots=True)
class FunctionUsage:
    function: str
    invocations: int
    billed_ms: int
    gb_seconds: float
    memory_mb: tuple[int, ...]
    cold_starts: int


def summarize_functions(invocations: Iterable[Invocation]) -> list[FunctionUsage]:
    """Per-function totals, by function name."""
    grouped: dict[str, list[Invocation]] = {}
    for invocation in invocations:
        grouped.setdefault(invocation.function, []).append(invocation)
    return [
        FunctionUsage(
            function=name,
            invocations=len(items),
            billed_ms=sum(i.billed_ms for i in items),
            gb_seconds=sum(i.gb_seconds for i in items),
            memory_mb=tuple(sorted({i.memory_mb for i in items})),
            cold_starts=sum(1 for i in items if i.init_ms is not None),
        )
        for name, items in sorted(grouped.items())
    ]


COUNT_FIELDS = (
    "sfn_standard_transitions",
    "sfn_express_requests",
    "sfn_express_gb_seconds",
    "sqs_requests",
    "eventbridge_events",
    "s3_put_requests",
    "s3_get_requests",
    "s3_storage_gb_month",
    "dynamodb_wru",
    "dynamodb_rru",
)
"""The non-Lambda usage figures a `--usage` JSON file may set."""


@dataclass(slots=True)
class Usage:
    """What one run (or window) used. `measured` names the figures that were measured, the rest
    come from `request_model`."""

    functions: list[FunctionUsage] = field(default_factory=list)
    architecture: str = "arm64"
    files: int = 0
    bytes_in: int = 0
    sfn_standard_transitions: int = 0
    sfn_express_requests: int = 0
    sfn_express_gb_seconds: float = 0.0
    sqs_requests: int = 0
    eventbridge_events: int = 0
    s3_put_requests: int = 0
    s3_get_requests: int = 0
    s3_storage_gb_month: float = 0.0
    dynamodb_wru: int = 0
    dynamodb_rru: int = 0
    measured: set[str] = field(default_factory=set)

    def apply_counts(self, counts: Mapping[str, Any]) -> None:
        """Set measured counts (keys of `COUNT_FIELDS`). Raises ValueError for an unknown key or
        a negative or non-numeric value."""
        for key, value in counts.items():
            if key not in COUNT_FIELDS:
                raise ValueError(f"unknown usage figure {key!r} (known: {', '.join(COUNT_FIELDS)})")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"usage figure {key!r} must be a number >= 0, got {value!r}")
            current = getattr(self, key)
            setattr(self, key, float(value) if isinstance(current, float) else int(value))
            self.measured.add(key)


@dataclass(frozen=True, slots=True)
class PerFileModel:
    """Requests the real-time path makes per file, by design (docs/architecture.md):

    - EventBridge: 7 custom events (ingested, validated or rejected, transformed — the first three
      in both of their live majors, v1 and v2 — and processed); the
      S3 "Object Created" event is an AWS service event on the default bus (free).
    - SQS: 4 queues × 3 requests (the rule's SendMessage, the poller's ReceiveMessage, the
      DeleteMessage); the pollers' empty receives are a fixed cost per queue, not counted here.
    - DynamoDB: registration = a 2-item transaction (2 WRU each: 4 WRU); each of the 4
      transitions = 1 strongly consistent read (1 RRU) + a 2-item transaction (4 WRU).
    - S3, with `b` hash buckets: PUT/LIST = validate (b PUT + 1 LIST) + transform (b PUT +
      2 LIST) + output (b Parquet PUT + manifest PUT + 1 LIST) = 3b + 5; GET/HEAD = ingest HEAD
      + validate GET + transform b GET + output b GET = 2b + 2.
    """

    eventbridge_events: int = 7
    sqs_requests: int = 12
    dynamodb_wru: int = 20
    dynamodb_rru: int = 4

    @staticmethod
    def s3_put(buckets: int) -> int:
        return 3 * buckets + 5

    @staticmethod
    def s3_get(buckets: int) -> int:
        return 2 * buckets + 2


BUCKET_BYTES = 64 * 1024 * 1024
"""validate's hash-bucket size: `bucket_count = max(1, ceil(size / 64 MiB))`."""


def request_model(file_sizes: Iterable[int], model: PerFileModel | None = None) -> dict[str, int]:
    """Modelled request counts for files of the given sizes going the real-time path."""
    chosen = model or PerFileModel()
    sizes = list(file_sizes)
    buckets = [max(1, math.ceil(size / BUCKET_BYTES)) for size in sizes]
    return {
        "eventbridge_events": chosen.eventbridge_events * len(sizes),
        "sqs_requests": chosen.sqs_requests * len(sizes),
        "dynamodb_wru": chosen.dynamodb_wru * len(sizes),
        "dynamodb_rru": chosen.dynamodb_rru * len(sizes),
        "s3_put_requests": sum(chosen.s3_put(b) for b in buckets),
        "s3_get_requests": sum(chosen.s3_get(b) for b in buckets),
    }


# ---------------------------------------------------------------------------------- pricing


@dataclass(frozen=True, slots=True)
class CostLine:
    item: str
    quantity: float
    unit: str
    unit_price: float
    cost: float
    arithmetic: str
    measured: bool


@dataclass(frozen=True, slots=True)
class CostReport:
    lines: list[CostLine]
    total: float
    files: int
    gigabytes: float
    per_file: float | None
    per_gb: float | None
    architecture: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "architecture": self.architecture,
            "files": self.files,
            "gigabytes": self.gigabytes,
            "total_usd": self.total,
            "per_file_usd": self.per_file,
            "per_gb_usd": self.per_gb,
            "lines": [
                {
                    "item": line.item,
                    "quantity": line.quantity,
                    "unit": line.unit,
                    "unit_price_usd": line.unit_price,
                    "cost_usd": line.cost,
                    "arithmetic": line.arithmetic,
                    "measured": line.measured,
                }
                for line in self.lines
            ],
        }


def money(value: float) -> str:
    """Dollars with enough digits to show sub-cent figures (`$0.000123`)."""
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.6f}".rstrip("0").rstrip(".") if abs(value) >= 1e-6 else f"${value:.2e}"


def _decimal(value: float) -> str:
    """A price as a plain decimal (`0.0000133334`, never `1.33334e-05`)."""
    return f"{value:.10f}".rstrip("0").rstrip(".") or "0"


def _qty(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3f}"


def _line(
    item: str, quantity: float, prices: PriceBook, price_key: str, *, measured: bool
) -> CostLine:
    price = prices[price_key]
    cost = quantity * price.unit_price
    per = "" if price.per == 1 else f"/{price.per:,}"
    arithmetic = f"{_qty(quantity)} {price.unit} × ${_decimal(price.price)}{per} = {money(cost)}"
    return CostLine(item, quantity, price.unit, price.unit_price, cost, arithmetic, measured)


def estimate(usage: Usage, prices: PriceBook) -> CostReport:
    """Price `usage`. Lines with a zero quantity are left out, except Lambda's two lines.

    Raises ValueError for an architecture other than arm64/x86_64.
    """
    if usage.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}")
    gb_s = sum(f.gb_seconds for f in usage.functions)
    requests = sum(f.invocations for f in usage.functions)
    lines = [
        _line(
            f"Lambda compute ({usage.architecture})",
            round(gb_s, 3),
            prices,
            f"lambda_gb_second_{usage.architecture}",
            measured=True,
        ),
        _line("Lambda requests", requests, prices, "lambda_requests", measured=True),
    ]
    optional = (
        ("Step Functions standard", "sfn_standard_transitions", "sfn_standard_transitions"),
        ("Step Functions express requests", "sfn_express_requests", "sfn_express_requests"),
        ("Step Functions express duration", "sfn_express_gb_seconds", "sfn_express_gb_second"),
        ("SQS requests", "sqs_requests", "sqs_standard_requests"),
        ("EventBridge custom events", "eventbridge_events", "eventbridge_custom_events"),
        ("S3 PUT/LIST requests", "s3_put_requests", "s3_put_requests"),
        ("S3 GET requests", "s3_get_requests", "s3_get_requests"),
        ("S3 storage", "s3_storage_gb_month", "s3_storage_gb_month"),
        ("DynamoDB writes", "dynamodb_wru", "dynamodb_write_request_units"),
        ("DynamoDB reads", "dynamodb_rru", "dynamodb_read_request_units"),
    )
    for label, attribute, price_key in optional:
        quantity = getattr(usage, attribute)
        if quantity:
            lines.append(
                _line(label, quantity, prices, price_key, measured=attribute in usage.measured)
            )
    total = sum(line.cost for line in lines)
    gigabytes = usage.bytes_in / GIB
    return CostReport(
        lines=lines,
        total=total,
        files=usage.files,
        gigabytes=gigabytes,
        per_file=total / usage.files if usage.files else None,
        per_gb=total / gigabytes if gigabytes else None,
        architecture=usage.architecture,
    )


# ------------------------------------------------------------------------------------- Glue


@dataclass(frozen=True, slots=True)
class GlueEstimate:
    job: str
    dpus: float
    duration_s: float
    minimum_s: int
    billed_s: float
    cost: float
    arithmetic: str


GLUE_JOBS: tuple[tuple[str, float, int], ...] = (
    ("Spark, Glue 2.0+ (2 DPU minimum)", 2.0, 60),
    ("Spark, Glue 0.9/1.0 (2 DPU minimum)", 2.0, 600),
    ("Python shell (0.0625 DPU)", 0.0625, 60),
    ("Python shell (1 DPU)", 1.0, 60),
)
"""(job kind, DPUs, minimum billed seconds) of the AWS Glue jobs compared."""


def glue_equivalent(
    duration_s: float, prices: PriceBook, *, spark_dpus: float = 2.0
) -> list[GlueEstimate]:
    """What one Glue job running `duration_s` would cost, per job kind of `GLUE_JOBS`.

    Billed time is `max(duration, minimum)`, per second; Spark jobs use `max(2, spark_dpus)`.
    Raises ValueError for a negative duration.
    """
    if duration_s < 0:
        raise ValueError("duration must be >= 0")
    price = prices["glue_dpu_hour"].unit_price
    estimates = []
    for job, dpus, minimum in GLUE_JOBS:
        chosen = max(dpus, spark_dpus) if job.startswith("Spark") else dpus
        billed = max(math.ceil(duration_s), minimum)
        cost = chosen * billed / 3600 * price
        arithmetic = (
            f"{chosen:g} DPU × max({math.ceil(duration_s)} s, {minimum} s)/3600 h "
            f"× ${_decimal(price)}/DPU-h = {money(cost)}"
        )
        estimates.append(GlueEstimate(job, chosen, duration_s, minimum, billed, cost, arithmetic))
    return estimates
