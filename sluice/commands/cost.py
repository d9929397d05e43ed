"""`sluice cost [RUN_ID] [--logs PATH] [--since 1h] [--files N --gb N]`: $ per run, file and GB."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from sluice.context import table
from sluice.ops.calls import Missing, aws_errors
from sluice.ops.cost import (
    ARCHITECTURES,
    COUNT_FIELDS,
    GIB,
    CostReport,
    GlueEstimate,
    Invocation,
    Usage,
    estimate,
    glue_equivalent,
    money,
    read_cloudwatch_reports,
    read_report_logs,
    request_model,
    summarize_functions,
)
from sluice.ops.executions import count_transitions, map_run_counts
from sluice.ops.ledger import LedgerReader, now
from sluice.ops.window import parse_duration
from sluice.pricing import PriceBookError, load_prices

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from sluice.context import CliContext
    from sluice_shared.ports import RunRecord

# `sluice local up` keeps its state (and `logs/<function>.log`) here unless --state-dir is given.
DEFAULT_STATE_DIR = Path(__file__).resolve().parents[2] / ".sluice"
USAGE_FILE = "usage.json"
EXPRESS_MEMORY_GB = 64 / 1024
"""Express workflows bill memory in 64 MB chunks; a claim-check payload never needs more."""


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("cost")
@click.argument("run_id", required=False)
@click.option(
    "--logs",
    type=click.Path(path_type=Path),
    default=None,
    help="REPORT lines: a log file, a folder of <function>.log, or a local state dir "
    "(default locally: the state dir of the runtime at the endpoint, else <repo>/.sluice; "
    "on AWS: CloudWatch Logs).",
)
@click.option("--since", callback=_since, default=None, help="Window of files/logs (e.g. 1h).")
@click.option("--files", type=click.IntRange(min=1), default=None, help="Files processed.")
@click.option("--gb", type=click.FloatRange(min=0, min_open=True), default=None, help="GiB in.")
@click.option(
    "--usage",
    "usage_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help=f"Measured request counts as JSON ({', '.join(COUNT_FIELDS)}); default "
    f"<state dir>/{USAGE_FILE} when present, else the per-file request model.",
)
@click.option(
    "--arch",
    type=click.Choice(ARCHITECTURES),
    default="arm64",
    show_default=True,
    help="Lambda architecture (the templates deploy arm64).",
)
@click.option(
    "--prices",
    "prices_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Price file (default: the bundled sluice/pricing/prices.yaml).",
)
@click.option(
    "--glue-minutes",
    type=click.FloatRange(min=0),
    default=None,
    help="Duration of the equivalent Glue job (default: the Lambda billed time, serialised).",
)
@click.option(
    "--glue-dpus",
    type=click.FloatRange(min=2),
    default=2.0,
    show_default=True,
    help="DPUs of the Spark Glue job compared.",
)
@click.pass_obj
def command(
    ctx: CliContext,
    run_id: str | None,
    logs: Path | None,
    since: timedelta | None,
    files: int | None,
    gb: float | None,
    usage_path: Path | None,
    arch: str,
    prices_path: Path | None,
    glue_minutes: float | None,
    glue_dpus: float,
) -> None:
    """What the work cost: public prices (data, with sources) applied to measured usage —
    Lambda REPORT lines, request counts — as $ total, per file and per GB, next to the same job
    as an AWS Glue job. Every line shows its arithmetic.

    Exit codes: 0 shown, 2 bad arguments or no REPORT lines found, 3 endpoint unreachable or
    run unknown.
    """
    try:
        prices = load_prices(prices_path)
    except PriceBookError as exc:
        raise click.BadParameter(str(exc), param_hint="--prices") from None
    if logs is None and ctx.is_local:
        # The state dir of the runtime at the endpoint (wherever it was started), else <repo>.
        logs = ctx.local_state_dir() or DEFAULT_STATE_DIR
    until = now()
    run = _run(ctx, run_id) if run_id else None
    start = run.created_at if run else (until - since if since else None)
    end = run.updated_at if run else until

    invocations, logs_from = _invocations(ctx, logs, start, end)
    usage = Usage(functions=summarize_functions(invocations), architecture=arch)
    sizes = _file_sizes(ctx, run, files, gb, start, end)
    usage.files, usage.bytes_in = len(sizes), sum(sizes)
    for key, value in request_model(sizes).items():
        setattr(usage, key, value)
    if run is not None and run.execution_arn:
        _batch_usage(ctx, run, usage, invocations)
    counts_path = usage_path or _default_usage(logs)
    if counts_path is not None:
        try:
            usage.apply_counts(orjson.loads(counts_path.read_bytes()))
        except (orjson.JSONDecodeError, ValueError, AttributeError) as exc:
            raise click.BadParameter(f"{counts_path}: {exc}", param_hint="--usage") from None

    report = estimate(usage, prices)
    billed_s = sum(f.billed_ms for f in usage.functions) / 1000
    glue_s = glue_minutes * 60 if glue_minutes is not None else billed_s
    glue = glue_equivalent(glue_s, prices, spark_dpus=glue_dpus)
    data = _as_json(report, glue, usage, logs_from, counts_path, run_id, glue_minutes, prices_path)
    ctx.emit(data, _human(report, glue, usage, logs_from, counts_path, glue_minutes))


def _run(ctx: CliContext, run_id: str) -> RunRecord:
    reader = LedgerReader(ctx.client("dynamodb"), ctx.names()["ledger_table"])
    with aws_errors(ctx, f"reading run {run_id}"):
        run = reader.run(run_id)
    if run is None:
        raise Missing(f"run {run_id} is not in the ledger of stage {ctx.stage}")
    return run


def _invocations(
    ctx: CliContext, logs: Path | None, start: datetime | None, end: datetime
) -> tuple[list[Invocation], str]:
    if logs is None and not ctx.is_local:
        prefix = f"/aws/lambda/sluice-{ctx.stage}-"
        begin = start or end.replace(hour=0, minute=0, second=0, microsecond=0)
        with aws_errors(ctx, "reading REPORT lines from CloudWatch Logs"):
            found = read_cloudwatch_reports(
                ctx.client("logs"),
                prefix=prefix,
                start_ms=int(begin.timestamp() * 1000),
                end_ms=int(end.timestamp() * 1000),
            )
        source = f"CloudWatch Logs {prefix}*"
    else:
        path = logs or DEFAULT_STATE_DIR
        try:
            found = read_report_logs(path)
        except (FileNotFoundError, ValueError) as exc:
            raise click.BadParameter(
                f"{exc}; point --logs at `sluice local up`'s state dir or a REPORT log",
                param_hint="--logs",
            ) from None
        source = str(path)
    if not found:
        raise click.BadParameter(f"no REPORT lines in {source}", param_hint="--logs")
    return found, source


def _file_sizes(
    ctx: CliContext,
    run: RunRecord | None,
    files: int | None,
    gb: float | None,
    start: datetime | None,
    end: datetime,
) -> list[int]:
    if files is not None and gb is not None:
        each = int(gb * GIB / files)
        return [each] * files
    if run is not None and files is None and gb is not None and run.files:
        return [int(gb * GIB / run.files)] * run.files
    if start is None:
        raise click.UsageError(
            "say what was processed: --files N --gb G, a RUN_ID, or --since to read the ledger"
        )
    reader = LedgerReader(ctx.client("dynamodb"), ctx.names()["ledger_table"])
    with aws_errors(ctx, "listing files"):
        records = reader.files(since=start, until=end)
    if not records:
        raise click.UsageError("the ledger holds no files in the window: pass --files and --gb")
    sizes = [r.size_bytes for r in records]
    if gb is not None:  # the caller knows the volume better (e.g. files still running)
        sizes = [int(gb * GIB / len(sizes))] * len(sizes)
    return sizes


def _batch_usage(
    ctx: CliContext, run: RunRecord, usage: Usage, invocations: list[Invocation]
) -> None:
    sfn = ctx.client("stepfunctions")
    assert run.execution_arn is not None
    with aws_errors(ctx, "reading the run's execution history"):
        usage.sfn_standard_transitions = count_transitions(sfn, run.execution_arn)
        usage.measured.add("sfn_standard_transitions")
        arns = (
            [run.map_run_arn]
            if run.map_run_arn
            else [
                m["mapRunArn"]
                for m in sfn.list_map_runs(executionArn=run.execution_arn).get("mapRuns", [])
            ]
        )
        children = 0
        for arn in arns:
            counts = map_run_counts(sfn, arn)
            if counts is not None:
                children += int(counts["executions"]["total"])
    if children:
        usage.sfn_express_requests = children
        usage.measured.add("sfn_express_requests")
        # An Express child lives while its Lambda calls run: their billed time bounds it below.
        child_s = sum(i.billed_ms for i in invocations if "-batch-run-" in i.function) / 1000
        usage.sfn_express_gb_seconds = round(child_s * EXPRESS_MEMORY_GB, 3)


def _default_usage(logs: Path | None) -> Path | None:
    folder = logs if logs is not None and logs.is_dir() else DEFAULT_STATE_DIR
    candidate = folder / USAGE_FILE
    return candidate if candidate.is_file() else None


def _as_json(
    report: CostReport,
    glue: list[GlueEstimate],
    usage: Usage,
    logs_from: str,
    counts_path: Path | None,
    run_id: str | None,
    glue_minutes: float | None,
    prices_path: Path | None,
) -> dict[str, Any]:
    return {
        **report.as_dict(),
        "run_id": run_id,
        "report_lines_from": logs_from,
        "request_counts_from": str(counts_path) if counts_path else "per-file model",
        "prices": str(prices_path) if prices_path else "bundled",
        "functions": [
            {
                "function": f.function,
                "invocations": f.invocations,
                "billed_ms": f.billed_ms,
                "gb_seconds": round(f.gb_seconds, 3),
                "memory_mb": list(f.memory_mb),
                "cold_starts": f.cold_starts,
            }
            for f in usage.functions
        ],
        "glue": {
            "duration_s": glue[0].duration_s if glue else 0,
            "duration_from": "--glue-minutes" if glue_minutes is not None else "lambda billed time",
            "jobs": [
                {
                    "job": g.job,
                    "dpus": g.dpus,
                    "billed_s": g.billed_s,
                    "minimum_s": g.minimum_s,
                    "cost_usd": g.cost,
                    "arithmetic": g.arithmetic,
                }
                for g in glue
            ],
        },
    }


def _human(
    report: CostReport,
    glue: list[GlueEstimate],
    usage: Usage,
    logs_from: str,
    counts_path: Path | None,
    glue_minutes: float | None,
) -> str:
    out = [
        f"REPORT lines: {logs_from}; request counts: "
        + (str(counts_path) if counts_path else "per-file model (m = modelled)"),
        "",
        table(
            ["FUNCTION", "INVOCATIONS", "BILLED MS", "GB-S", "MEMORY MB", "COLD"],
            [
                [
                    f.function,
                    f.invocations,
                    f.billed_ms,
                    f"{f.gb_seconds:.3f}",
                    ",".join(map(str, f.memory_mb)),
                    f.cold_starts,
                ]
                for f in usage.functions
            ],
        ),
        "",
        table(
            ["ITEM", "COST", "ARITHMETIC"],
            [
                [line.item + ("" if line.measured else " (m)"), money(line.cost), line.arithmetic]
                for line in report.lines
            ],
        ),
        "",
        f"total {money(report.total)} for {report.files} file(s), {report.gigabytes:.3f} GiB",
    ]
    if report.per_file is not None:
        out.append(f"per file {money(report.per_file)}")
    if report.per_gb is not None:
        out.append(f"per GiB  {money(report.per_gb)}")
    basis = "--glue-minutes" if glue_minutes is not None else "the Lambda billed time, serialised"
    out += [
        "",
        f"the same job as one AWS Glue job ({glue[0].duration_s:.1f} s, from {basis}):",
        table(
            ["GLUE JOB", "COST", "ARITHMETIC"], [[g.job, money(g.cost), g.arithmetic] for g in glue]
        ),
    ]
    return "\n".join(out)
