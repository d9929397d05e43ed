"""`sluice batch`: start a batch run by hand and follow it to the end.

    sluice batch start --prefix orders/2024/05/        # backfill every object under a prefix
    sluice batch start --file orders/2024/05/big.csv   # one object (s3://bucket/key also works)
    sluice batch start --manifest objects.jsonl        # a list of objects (local file or s3://)
    sluice batch redrive <run id or execution ARN>     # re-run the failed children of a run

`start` calls StartExecution on the batch state machine (the local runtime by default, AWS with
--profile), then follows DescribeExecution and DescribeMapRun with a progress line until the
execution ends, and prints the run's reconciliation from the ledger (RUN#<run id>). Exit 0 when
the run succeeded, 1 when it failed, 3 when the endpoint or state machine cannot be reached.
"""

from __future__ import annotations

import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from sluice.context import CliContext, EndpointUnreachable

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def _state_machine_arn(ctx: CliContext, explicit: str | None) -> str:
    if explicit:
        return explicit
    arn = ctx.names().get("batch_state_machine_arn")
    if arn:
        return arn
    sfn = ctx.client("stepfunctions")
    wanted = f"sluice-{ctx.stage}-batch"
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == wanted:
                return str(machine["stateMachineArn"])
    raise EndpointUnreachable(f"no batch state machine {wanted!r} at {ctx.endpoint_url or 'AWS'}")


def _request(
    ctx: CliContext,
    prefix: str | None,
    file: str | None,
    manifest: str | None,
    name: str,
    bucket: str | None,
) -> dict[str, Any]:
    chosen = [v for v in (prefix, file, manifest) if v is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --prefix, --file, --manifest")
    source: dict[str, Any] = {"bucket": bucket} if bucket else {}
    if prefix is not None:
        return {"source": "prefix", "prefix": prefix, **source}
    if file is not None:
        if file.startswith("s3://"):
            file_bucket, _, key = file[5:].partition("/")
            return {"source": "file", "bucket": file_bucket, "key": key}
        return {"source": "file", "key": file, **source}
    assert manifest is not None
    if manifest.startswith("s3://"):
        return {"source": "manifest", "manifest": manifest, **source}
    path = Path(manifest)
    if not path.is_file():
        raise click.UsageError(f"--manifest {manifest}: no such file (or give an s3:// URI)")
    # A local list is uploaded next to the run's own manifests, where plan may read it.
    work = ctx.names()["work_bucket"]
    key = f"batch/requests/{name}/{path.name}"
    ctx.client("s3").put_object(Bucket=work, Key=key, Body=path.read_bytes())
    return {"source": "manifest", "manifest": f"s3://{work}/{key}", **source}


def _progress(sfn: Any, execution_arn: str) -> str:
    parts = []
    for run in sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", []):
        described = sfn.describe_map_run(mapRunArn=run["mapRunArn"])
        items = described.get("itemCounts", {})
        label = str(run["mapRunArn"]).rsplit("/", 1)[-1].split(":")[0]
        parts.append(
            f"{label}: {items.get('succeeded', 0)}/{items.get('total', 0)} items"
            + (f", {items['failed']} failed" if items.get("failed") else "")
        )
    return " | ".join(parts)


def _run_record(ctx: CliContext, run_id: str) -> dict[str, Any] | None:
    table = ctx.names()["ledger_table"]
    item = (
        ctx.client("dynamodb")
        .get_item(TableName=table, Key={"PK": {"S": f"RUN#{run_id}"}, "SK": {"S": "META"}})
        .get("Item")
    )
    if not item:
        return None
    record = {k: next(iter(v.values())) for k, v in item.items()}
    if isinstance(record.get("details"), str):
        record["details"] = orjson.loads(record["details"])
    return record


def follow(ctx: CliContext, execution_arn: str, *, poll: float, timeout: float | None) -> str:
    """Print a progress line until the execution ends; return its final status."""
    sfn = ctx.client("stepfunctions")
    started = time.monotonic()
    last = ""
    tty = sys.stdout.isatty() and not ctx.as_json
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        status = str(described["status"])
        line = f"[{time.monotonic() - started:6.1f}s] {status}"
        progress = _progress(sfn, execution_arn)
        if progress:
            line += f"  {progress}"
        if line.split("] ", 1)[1] != last and not ctx.as_json:
            click.echo(("\r" + line) if tty else line, nl=not tty)
            last = line.split("] ", 1)[1]
        if status in TERMINAL:
            if tty:
                click.echo()
            return status
        if timeout is not None and time.monotonic() - started > timeout:
            raise click.ClickException(f"{execution_arn} still {status} after {timeout:g}s")
        time.sleep(poll)


def _summary(ctx: CliContext, run_id: str, execution_arn: str, status: str) -> None:
    record = _run_record(ctx, run_id) or {}
    details = record.get("details", {})
    data = {
        "run_id": run_id,
        "execution_arn": execution_arn,
        "execution_status": status,
        "run_status": record.get("status"),
        "files": record.get("files"),
        "partitions": details.get("partitions"),
        "partitions_failed": details.get("partitions_failed"),
        "rows_in": details.get("rows_in"),
        "rows_out": details.get("rows_out"),
        "rows_quarantined": details.get("rows_quarantined"),
        "reason": details.get("reason"),
        "bad_partitions": details.get("bad_partitions", []),
        "files_failed": details.get("files_failed", []),
    }
    lines = [
        f"run {run_id}: {data['run_status'] or 'not recorded'} (execution {status})",
        f"  files {data['files']}  partitions {data['partitions']}"
        f"  failed/rejected {data['partitions_failed'] or 0}",
        f"  rows in {data['rows_in']}  out {data['rows_out']}"
        f"  quarantined {data['rows_quarantined']}",
    ]
    if data["reason"]:
        lines.append(f"  reason: {data['reason']}")
    for bad in data["bad_partitions"]:
        lines.append(
            f"  bad partition {bad.get('file_id')}/p{bad.get('partition')} "
            f"[{bad.get('start')}, {bad.get('end')}): {bad.get('reason_code')}"
        )
    for failed in data["files_failed"]:
        lines.append(f"  file {failed['file_id']} {failed['status']}: {failed.get('reason')}")
    ctx.emit(data, "\n".join(lines))


@click.group("batch")
def command() -> None:
    """Batch runs: large files, backfills and schedules through the Distributed Map workflow."""


@command.command("start")
@click.option("--prefix", help="Process every raw object under this key prefix (backfill).")
@click.option("--file", "file", help="Process one raw object (key, or s3://bucket/key).")
@click.option("--manifest", help="Process the objects listed in a JSON/JSONL file (or s3:// URI).")
@click.option(
    "--bucket", help="Bucket of the objects: the raw bucket (the default); plan refuses any other."
)
@click.option("--name", help="Execution name = run id (default: cli-<UTC time>-<random>).")
@click.option("--state-machine-arn", help="Batch state machine (default: from SSM / by name).")
@click.option("--follow/--no-follow", default=True, show_default=True)
@click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--timeout", type=float, default=None, help="Give up following after N seconds.")
@click.pass_obj
def start(
    ctx: CliContext,
    prefix: str | None,
    file: str | None,
    manifest: str | None,
    bucket: str | None,
    name: str | None,
    state_machine_arn: str | None,
    follow: bool,
    poll: float,
    timeout: float | None,
) -> None:
    """Start a batch run (exactly one of --prefix, --file, --manifest) and follow it."""
    from botocore.exceptions import BotoCoreError, ClientError

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    name = name or f"cli-{stamp}-{secrets.token_hex(3)}"
    try:
        request = _request(ctx, prefix, file, manifest, name, bucket)
        arn = _state_machine_arn(ctx, state_machine_arn)
        execution_arn = str(
            ctx.client("stepfunctions").start_execution(
                stateMachineArn=arn, name=name, input=orjson.dumps(request).decode()
            )["executionArn"]
        )
    except (BotoCoreError, ClientError) as error:
        raise EndpointUnreachable(f"cannot start the batch run: {error}") from None
    if not ctx.as_json:
        click.echo(f"started {execution_arn}")
    if not follow:
        ctx.emit({"run_id": name, "execution_arn": execution_arn}, name)
        return
    status = _follow_or_exit(ctx, execution_arn, poll, timeout)
    _summary(ctx, name, execution_arn, status)
    if status != "SUCCEEDED":
        sys.exit(1)


def _follow_or_exit(ctx: CliContext, arn: str, poll: float, timeout: float | None) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return follow(ctx, arn, poll=poll, timeout=timeout)
    except (BotoCoreError, ClientError) as error:
        raise EndpointUnreachable(f"cannot follow {arn}: {error}") from None


@command.command("redrive")
@click.argument("run")
@click.option("--state-machine-arn", help="Batch state machine (default: from SSM / by name).")
@click.option("--poll", type=float, default=1.0, show_default=True)
@click.option("--timeout", type=float, default=None)
@click.pass_obj
def redrive(
    ctx: CliContext, run: str, state_machine_arn: str | None, poll: float, timeout: float | None
) -> None:
    """Redrive a failed run (its run id or execution ARN): only unsuccessful children re-run."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if run.startswith("arn:"):
            execution_arn = run
        else:
            machine = _state_machine_arn(ctx, state_machine_arn)
            execution_arn = f"{machine.replace(':stateMachine:', ':execution:')}:{run}"
        ctx.client("stepfunctions").redrive_execution(executionArn=execution_arn)
    except (BotoCoreError, ClientError) as error:
        raise EndpointUnreachable(f"cannot redrive {run}: {error}") from None
    status = _follow_or_exit(ctx, execution_arn, poll, timeout)
    _summary(ctx, execution_arn.rsplit(":", 1)[-1], execution_arn, status)
    if status != "SUCCEEDED":
        sys.exit(1)
