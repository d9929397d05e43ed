"""`sluice runs [--since 1d]` and `sluice runs show RUN_ID`: batch runs and their Map Runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from sluice.context import CliContext, table
from sluice.ops.calls import Failed, Missing, aws_errors
from sluice.ops.executions import console_url, describe_execution, map_run_counts
from sluice.ops.ledger import LedgerReader, now
from sluice.ops.window import parse_duration

if TYPE_CHECKING:
    from sluice_shared.ports import RunRecord

_BAD_RUN = {"FAILED", "TIMED_OUT", "ABORTED"}


def _since(_ctx: click.Context, _param: click.Parameter, value: str) -> Any:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("runs", invoke_without_command=True)
@click.option(
    "--since", default="1d", show_default=True, callback=_since, help="Window: 6h, 1d, 1w."
)
@click.pass_context
def command(click_ctx: click.Context, since: Any) -> None:
    """Batch runs started within --since (newest first); `runs show RUN_ID` for one run.

    Exit codes: 0 shown, 1 (show) the run failed, 2 bad arguments, 3 endpoint unreachable or
    run unknown.
    """
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: CliContext = click_ctx.obj
    reader = LedgerReader(ctx.client("dynamodb"), ctx.names()["ledger_table"])
    with aws_errors(ctx, "listing runs"):
        runs = reader.runs(since=now() - since)
    rows = [
        [
            r.run_id,
            r.status,
            r.files,
            r.prefix or "",
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        ]
        for r in runs
    ]
    human = table(["RUN_ID", "STATUS", "FILES", "PREFIX", "CREATED", "UPDATED"], rows)
    ctx.emit([r.model_dump(mode="json") for r in runs], f"{human}\n{len(runs)} run(s)")


@command.command("show")
@click.argument("run_id")
@click.pass_obj
def show(ctx: CliContext, run_id: str) -> None:
    """One run: its record, its execution and the item/child counts of its Map Run."""
    reader = LedgerReader(ctx.client("dynamodb"), ctx.names()["ledger_table"])
    with aws_errors(ctx, f"reading run {run_id}"):
        run = reader.run(run_id)
    if run is None:
        raise Missing(f"run {run_id} is not in the ledger of stage {ctx.stage}")
    report = run_report(ctx, run)
    ctx.emit(report, _human(report))
    if run.status.upper() in _BAD_RUN:
        raise Failed(f"run {run_id} is {run.status}")


def run_report(ctx: CliContext, run: RunRecord) -> dict[str, Any]:
    """The run record plus what Step Functions says about its execution and Map Runs."""
    report: dict[str, Any] = {"run": run.model_dump(mode="json"), "execution": None, "map_runs": []}
    sfn = ctx.client("stepfunctions")
    with aws_errors(ctx, "describing the run's execution"):
        if run.execution_arn:
            info = describe_execution(sfn, run.execution_arn)
            if info is not None:
                report["execution"] = {
                    "arn": info.arn,
                    "status": info.status,
                    "started_at": info.started_at,
                    "stopped_at": info.stopped_at,
                    "error": info.error,
                    "cause": info.cause,
                    "console_url": None if ctx.is_local else console_url(info.arn, ctx.region),
                }
        arns = [run.map_run_arn] if run.map_run_arn else []
        if not arns and run.execution_arn and report["execution"] is not None:
            listed = sfn.list_map_runs(executionArn=run.execution_arn).get("mapRuns", [])
            arns = [m["mapRunArn"] for m in listed]
        for arn in arns:
            counts = map_run_counts(sfn, arn)
            if counts is not None:
                report["map_runs"].append({"arn": arn, **counts})
    return report


def _human(report: dict[str, Any]) -> str:
    run = report["run"]
    out = [
        f"run {run['run_id']}  {run['status']}  files={run['files']}  prefix={run['prefix']}",
        f"  created {run['created_at']}  updated {run['updated_at']}",
    ]
    out.extend(f"  {k}: {v}" for k, v in sorted(run["details"].items()))
    execution = report["execution"]
    if execution is None:
        out.append("execution: " + (run["execution_arn"] or "none recorded") + " (not found)")
    else:
        out.append(f"execution: {execution['status']}  {execution['arn']}")
        if execution["error"]:
            out.append(f"  {execution['error']}: {execution['cause'] or ''}")
        if execution["console_url"]:
            out.append(f"  {execution['console_url']}")
    for map_run in report["map_runs"]:
        out.append(f"map run: {map_run['status']}  {map_run['arn']}")
        keys = ["total", "succeeded", "failed", "running", "pending", "aborted", "timedOut"]
        out.append(
            table(
                ["", *[k.upper() for k in keys]],
                [
                    ["items", *[map_run["items"][k] for k in keys]],
                    ["executions", *[map_run["executions"][k] for k in keys]],
                ],
            )
        )
    return "\n".join(out)
