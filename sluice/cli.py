"""The `sluice` entry point: global options, then one command (group) per module of
`sluice.commands`.

Exit codes mean something: 0 done, 1 the thing checked is not right (a file failed, counts do not
reconcile, a contract check found problems), 2 bad usage, 3 the endpoint is unreachable or a
resource is missing.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

from sluice import commands
from sluice.context import CliContext


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--endpoint-url",
    envvar="SLUICE_ENDPOINT_URL",
    default=None,
    help="AWS endpoint, also the runtime `sluice local` commands act on (default: the local "
    "runtime, http://127.0.0.1:$SLUICE_LOCAL_PORT or :4566, unless --profile).",
)
@click.option("--profile", envvar="AWS_PROFILE", default=None, help="AWS profile: talk to AWS.")
@click.option("--region", envvar="AWS_REGION", default="us-east-1", show_default=True)
@click.option(
    "--stage", envvar="SLUICE_STAGE", default="dev", show_default=True, help="Deployment stage."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.pass_context
def cli(
    ctx: click.Context,
    endpoint_url: str | None,
    profile: str | None,
    region: str,
    stage: str,
    as_json: bool,
) -> None:
    """Sluice: event-driven serverless ETL — operate it locally or on AWS."""
    ctx.obj = CliContext.build(
        endpoint_url=endpoint_url, profile=profile, region=region, stage=stage, as_json=as_json
    )


def _add_commands() -> None:
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            cli.add_command(command)


_add_commands()


def main() -> None:
    cli(prog_name="sluice")
