"""`sluice contracts check [--against REF]`: the compatibility rules as a CI gate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from contracts.tools import ContractFolder, ToolError, builtin_folders, check
from sluice.ops.calls import Failed
from sluice.ops.events import EventToolError, load_model

if TYPE_CHECKING:
    from sluice.context import CliContext


@click.group("contracts")
def command() -> None:
    """Event contract checks (schemas, golden examples, compatibility within a major)."""


@command.command("check")
@click.option(
    "--against",
    metavar="GITREF",
    default=None,
    help="Baseline commit for the compatibility rules (default: HEAD).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="MODULE:CLASS",
    help="Check a team's contract (its folder holds schema.json and examples/); repeatable. "
    "Default: the built-in contracts.",
)
@click.pass_obj
def check_command(ctx: CliContext, against: str | None, models: tuple[str, ...]) -> None:
    """Report stale schemas, golden examples that do not parse or changed after they were
    recorded, and breaking changes within a major versus --against.

    Exit codes: 0 every contract keeps its promises, 1 problems found, 2 bad arguments
    (unknown git ref, bad --model).
    """
    try:
        folders = [ContractFolder.of(load_model(m)) for m in models] or builtin_folders()
    except EventToolError as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from None
    try:
        problems = check(folders, against=against)
    except ToolError as exc:
        raise click.BadParameter(str(exc), param_hint="--against") from None
    report: dict[str, Any] = {
        "contracts": [f.model.TYPE for f in folders],
        "against": against or "HEAD",
        "ok": not problems,
        "problems": problems,
    }
    human = "\n".join(problems) if problems else f"{len(folders)} contracts OK"
    ctx.emit(report, human)
    if problems:
        raise Failed(f"{len(problems)} contract problem(s)")
