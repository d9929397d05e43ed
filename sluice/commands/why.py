"""`sluice why FILE_ID`: history, error, quarantined rows, DLQ entries and batch execution."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from sluice.ops.dlq import PEEK_VISIBILITY_S
from sluice.ops.why import explain

if TYPE_CHECKING:
    from sluice.context import CliContext


@click.command("why")
@click.argument("file_id")
@click.option(
    "--rows",
    default=10,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="Quarantined rows to show.",
)
@click.option(
    "--dlq/--no-dlq",
    default=True,
    show_default=True,
    help=f"Look for the file in the service DLQs (received with a {PEEK_VISIBILITY_S}s visibility "
    "timeout, then released at once: their receive counts go up by one).",
)
@click.pass_obj
def command(ctx: CliContext, file_id: str, rows: int, dlq: bool) -> None:
    """Why a file is where it is: its history, error, first quarantined rows with reasons, DLQ
    entries that mention it, and its batch execution.

    Exit codes: 0 shown, 2 bad arguments, 3 endpoint unreachable or file unknown.
    """
    report, human = explain(ctx, file_id, rows=rows, dlq=dlq)
    ctx.emit(report, human)
