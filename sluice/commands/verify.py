"""`sluice verify [--truth DIR]`: reconcile the ledger, the outputs, the quarantine and the DLQs
(see `sluice.verify`)."""

from __future__ import annotations

from pathlib import Path

import click

from sluice.context import CliContext, table
from sluice.ops.calls import Failed, aws_errors
from sluice.ops.dlq import SERVICES, dlq_name
from sluice.verify import Names, load_truths, reconcile

MAX_PROBLEMS_SHOWN = 50


def _dlq_urls(ctx: CliContext) -> dict[str, str]:
    from botocore.exceptions import ClientError

    sqs = ctx.client("sqs")
    urls: dict[str, str] = {}
    for service in SERVICES:
        try:
            urls[service] = sqs.get_queue_url(QueueName=dlq_name(ctx.stage, service))["QueueUrl"]
        except ClientError:
            continue  # a stage may not deploy every service
    return urls


@click.command("verify")
@click.option(
    "--truth",
    "truth_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Directory of generator ground truth (<dataset>/<file>.truth.json, as samples/).",
)
@click.option("--dlq/--no-dlq", default=True, show_default=True, help="Check the DLQs too.")
@click.pass_obj
def command(ctx: CliContext, truth_dir: Path | None, dlq: bool) -> None:
    """Check every file: terminal, rows_in = rows_out + rows_quarantined, output exactly its
    manifest with no key twice, ground truth met, every DLQ message explained. Events the
    stages refused (forged facts about real files) are listed too; they do not fail the check.

    Exit codes: 0 reconciled, 1 not reconciled, 2 bad arguments, 3 endpoint unreachable.
    """
    try:
        truths = load_truths(truth_dir) if truth_dir else None
    except ValueError as bad:
        raise click.BadParameter(str(bad), param_hint="--truth") from None
    names = ctx.names()
    with aws_errors(ctx, "reconciling"):
        result = reconcile(
            s3=ctx.client("s3"),
            dynamodb=ctx.client("dynamodb"),
            sqs=ctx.client("sqs") if dlq else None,
            names=Names(
                ledger_table=names["ledger_table"],
                processed_bucket=names["processed_bucket"],
                error_bucket=names["error_bucket"],
                dlq_urls=_dlq_urls(ctx) if dlq else {},
            ),
            truths=truths,
        )
    rows = [
        [
            f.file_id[:12],
            f.key,
            f.status,
            f.rows_in,
            f.rows_out,
            f.rows_quarantined,
            "ok" if not f.problems else f"{len(f.problems)} problem(s)",
        ]
        for f in result.files
    ]
    problems = result.all_problems()
    human = [
        table(["file", "key", "status", "in", "out", "quarantined", "check"], rows),
        f"{len(result.files)} file(s), {result.output_rows} output row(s), "
        f"{len(result.dlq)} DLQ message(s): "
        + ("RECONCILED" if result.ok else f"NOT RECONCILED ({len(problems)} problem(s))"),
    ]
    human += [f"  - {p}" for p in problems[:MAX_PROBLEMS_SHOWN]]
    if result.refused:
        human.append(
            f"{len(result.refused)} event(s) refused (no effect on any file; who sent them?):"
        )
        human += [
            f"  - {r.at} file {r.file_id} ({r.file_status}) {r.event_type} {r.reason_code}: "
            f"{r.reason}"
            for r in result.refused[:MAX_PROBLEMS_SHOWN]
        ]
    ctx.emit(result.to_dict(), "\n".join(human))
    if not result.ok:
        raise Failed("not reconciled")
