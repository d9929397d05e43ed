"""`sluice contracts check [--against REF]`: the compatibility rules as a CI gate, for the event
contracts and (`--datasets`) the data contracts; `sluice contracts generate [--path DIR]`: the
schemas and golden-example checksums of the built-in contracts or of a team's own folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from contracts.datasets.compat import check_against
from contracts.datasets.lint import Location, lint_catalog
from contracts.datasets.loader import DATASETS_DIR
from contracts.tools import ContractFolder, ToolError, builtin_folders, check, discover, generate
from sluice.ops.calls import Failed
from sluice.ops.events import EventToolError, load_model

if TYPE_CHECKING:
    from contracts.datasets import DatasetContract
    from sluice.context import CliContext


@click.group("contracts")
def command() -> None:
    """Contract checks: event contracts (schemas, golden examples, compatibility within a major)
    and, with --datasets, data contracts (lint, lookups, compatibility within a version)."""


_path_option = click.option(
    "--path",
    "team_path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A team's contract folder anywhere (<fact>/v<N>/model.py, a ContractModel each).",
)


def _folders(team_path: Path | None, models: tuple[str, ...] = ()) -> list[ContractFolder]:
    if team_path is not None and models:
        raise click.UsageError("--path and --model both choose the contracts; give one")
    try:
        if team_path is not None:
            return discover(team_path)
    except ToolError as exc:
        raise click.BadParameter(str(exc), param_hint="--path") from None
    try:
        return [ContractFolder.of(load_model(m)) for m in models] or builtin_folders()
    except EventToolError as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from None


@command.command("generate")
@_path_option
@click.pass_obj
def generate_command(ctx: CliContext, team_path: Path | None) -> None:
    """Write each contract's schema.json, a first golden example where a folder has none (from
    the fields' `examples`) and the checksums of new examples; recorded ones are never rewritten.

    Exit codes: 0 written or up to date, 2 bad --path.
    """
    folders = _folders(team_path)
    try:
        written = generate(folders)
    except ToolError as exc:
        raise click.BadParameter(str(exc), param_hint="--path") from None
    human = "\n".join(f"wrote {path}" for path in written) or (
        f"{len(folders)} contracts up to date"
    )
    ctx.emit(
        {"contracts": [f.model.TYPE for f in folders], "written": [str(p) for p in written]}, human
    )


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
@_path_option
@click.option(
    "--datasets",
    "datasets",
    is_flag=True,
    help="Check the data contracts (every <dataset>/v<N>.yaml and its lookups) instead.",
)
@click.option(
    "--datasets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The folder of data contracts to check with --datasets (default: contracts/datasets).",
)
@click.pass_obj
def check_command(
    ctx: CliContext,
    against: str | None,
    models: tuple[str, ...],
    team_path: Path | None,
    datasets: bool,
    datasets_dir: Path | None,
) -> None:
    """Report stale schemas, golden examples that do not parse or changed after they were
    recorded, and breaking changes within a major versus --against. With --datasets, lint
    every data contract and lookup table offline (each problem with its YAML path and a hint)
    and report breaking changes within a contract version versus --against.

    Exit codes: 0 every contract keeps its promises, 1 problems found, 2 bad arguments
    (unknown git ref, bad --model).
    """
    if datasets_dir is not None and not datasets:
        raise click.UsageError("--datasets-dir goes with --datasets")
    if datasets:
        if models or team_path:
            raise click.UsageError(
                "--model and --path check event contracts; leave them out with --datasets"
            )
        _check_datasets(ctx, datasets_dir or DATASETS_DIR, against)
        return
    folders = _folders(team_path, models)
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


def _check_datasets(
    ctx: CliContext, root: Path, against: str | None, *, quiet: bool = False
) -> None:
    """Lint and compatibility-check the data contracts under `root`; Failed (exit 1) with the
    report when any problem is found. `quiet` emits the report only when there are problems."""
    if not root.is_dir():
        raise click.BadParameter(f"{root} is not a folder", param_hint="--datasets-dir")
    found = lint_catalog(root, extra=[derived_type_problems])
    try:
        found += check_against(root, against)
    except ToolError as exc:
        raise click.BadParameter(str(exc), param_hint="--against") from None
    problems = [str(p) for p in found]
    report: dict[str, Any] = {
        "datasets_dir": str(root),
        "against": against or "HEAD",
        "ok": not problems,
        "problems": [
            {"file": p.file, "where": p.where, "message": p.message, "hint": p.hint, "line": p.line}
            for p in found
        ],
    }
    count = sum(1 for f in root.glob("*/v*.y*ml"))
    human = "\n".join(problems) if problems else f"{count} data contracts OK"
    if problems or not quiet:
        ctx.emit(report, human)
    if problems:
        raise Failed(f"{len(problems)} data contract problem(s)")


def derived_type_problems(contract: DatasetContract) -> list[tuple[Location, str, str]]:
    """A derived column whose arguments do not fit its operation (e.g. `multiply` of a string),
    found with the data path's own typing rules, so the lint and the transform stage agree."""
    from sluice_shared.datapath.derive import DerivationError, derived_type
    from sluice_shared.datapath.schema import contract_schema

    types = {f.name: f.type for f in contract_schema(contract)}
    for index, derived in enumerate(contract.transform.derived):
        try:
            # the natural type checks the arguments; a declared `type` is a cast of it
            natural = derived_type(derived.model_copy(update={"type": None}), types)
            types[derived.name] = derived_type(derived, types) if derived.type else natural
        except DerivationError as exc:
            # later columns may depend on this one: the first problem is the one to fix
            return [
                (
                    ("transform", "derived", index),
                    str(exc),
                    "see the ops and the argument types they take in contracts/README.md",
                )
            ]
    return []


@command.command("publish")
@click.option(
    "--datasets",
    "datasets",
    is_flag=True,
    required=True,
    help="Publish the data contracts (required: event contracts ship as a package).",
)
@click.option(
    "--datasets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The folder of data contracts to publish (default: contracts/datasets).",
)
@click.option(
    "--against",
    default=None,
    metavar="REF",
    help="Git ref the compatibility rules compare with (default: HEAD).",
)
@click.pass_obj
def publish_command(
    ctx: CliContext, datasets: bool, datasets_dir: Path | None, against: str | None
) -> None:
    """Check the data contracts as `check --datasets` does and against the versions published
    now (a change that breaks a live version is refused), then publish them to the stage's
    processed bucket under `_contracts/` (content-addressed files, then the manifest): the
    functions read them within 30 s, with no deploy. Nothing is published when a check fails.

    Exit codes: 0 published, 1 a contract has problems, 2 bad arguments, 3 endpoint unreachable.
    """
    from sluice.ops.calls import aws_errors
    from sluice_shared.published_contracts import (
        DEFAULT_PREFIX,
        breaking_versus_published,
        publish,
    )

    root = datasets_dir or DATASETS_DIR
    _check_datasets(ctx, root, against, quiet=True)
    bucket = ctx.names()["processed_bucket"]
    s3 = ctx.client("s3")
    with aws_errors(ctx, f"reading s3://{bucket}/{DEFAULT_PREFIX}"):
        breaking = breaking_versus_published(s3, bucket, root)
    if breaking:
        ctx.emit({"bucket": bucket, "ok": False, "problems": breaking}, "\n".join(breaking))
        raise Failed(f"{len(breaking)} breaking change(s) to published data contracts")
    with aws_errors(ctx, f"publishing to s3://{bucket}/{DEFAULT_PREFIX}"):
        files = publish(s3, bucket, root)
    datasets_published = sorted({rel.split("/", 1)[0] for rel in files})
    report = {
        "bucket": bucket,
        "prefix": DEFAULT_PREFIX,
        "datasets": datasets_published,
        "files": files,
    }
    human = (
        f"published {len(files)} files of {len(datasets_published)} datasets"
        f" ({', '.join(datasets_published)}) to s3://{bucket}/{DEFAULT_PREFIX}"
    )
    ctx.emit(report, human)
