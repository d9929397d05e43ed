"""`sluice status [FILE_ID] [--since 1h] [--status S] [--dataset D]`: where files are.

Against a local runtime (`sluice local up`), the summary also shows its IAM enforcement: whether
it is on, the denials counted and the last ones (principal, action, resource).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sluice.context import CliContext, table
from sluice.ops.calls import Failed, Missing, aws_errors
from sluice.ops.ledger import LedgerReader, now
from sluice.ops.window import parse_duration
from sluice_shared.ports import FileRecord, FileStatus

if TYPE_CHECKING:
    from datetime import timedelta

_BAD_END = {FileStatus.FAILED, FileStatus.QUARANTINED}


def _since(_ctx: click.Context, _param: click.Parameter, value: str) -> Any:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def record_row(record: FileRecord) -> list[Any]:
    """One table row of a file record."""
    rows = "/".join("-" if v is None else str(v) for v in _counts(record))
    return [
        record.file_id,
        record.status.value,
        record.dataset,
        record.key,
        record.size_bytes,
        rows,
        record.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        record.error_code or "",
    ]


def _counts(record: FileRecord) -> tuple[int | None, int | None, int | None]:
    return record.rows_in, record.rows_out, record.rows_quarantined


HEADERS = ["FILE_ID", "STATUS", "DATASET", "KEY", "BYTES", "ROWS IN/OUT/Q", "UPDATED", "ERROR"]


@click.command("status")
@click.argument("file_id", required=False)
@click.option(
    "--since", default="1h", show_default=True, callback=_since, help="Window: 30m, 1h, 2d, 1w."
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in FileStatus], case_sensitive=False),
    help="Only files in this status (repeatable); default: every status.",
)
@click.option("--dataset", default=None, help="Only files of this dataset.")
@click.option(
    "--serve",
    is_flag=True,
    help="Serve a status page (files by status, runs, DLQ depths, throughput over --since) on "
    "127.0.0.1 until Ctrl-C.",
)
@click.option("--port", default=4567, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--metrics",
    is_flag=True,
    help="Summarise the EMF metrics in the function logs over --since instead (rows, files by "
    "outcome, p50/p95 stage and end-to-end latency).",
)
@click.option(
    "--logs",
    type=click.Path(path_type=Path),
    default=None,
    help="With --metrics: a local state dir, a folder of <function>.log files, or one log file "
    "(default: the state dir of the runtime at the endpoint, else <repo>/.sluice).",
)
@click.pass_obj
def command(
    ctx: CliContext,
    file_id: str | None,
    since: Any,
    statuses: tuple[str, ...],
    dataset: str | None,
    serve: bool,
    port: int,
    metrics: bool,
    logs: Path | None,
) -> None:
    """Where files are: one file's record, or the files updated within --since.

    Exit codes: 0 shown, 1 the file given ended FAILED or QUARANTINED, 2 bad arguments,
    3 endpoint unreachable, stage not provisioned, or file unknown.
    """
    if metrics:
        found = logs or ctx.local_state_dir() or Path(__file__).resolve().parents[2] / ".sluice"
        _metrics(ctx, found, since)
        return
    if serve:
        _serve(ctx, since, port)
        return
    names = ctx.names()
    reader = LedgerReader(ctx.client("dynamodb"), names["ledger_table"])
    if file_id is not None:
        with aws_errors(ctx, f"reading file {file_id}"):
            detail = reader.file(file_id)
        if detail is None:
            raise Missing(f"file {file_id} is not in the ledger of stage {ctx.stage}")
        record = detail.record
        ctx.emit(record.model_dump(mode="json"), _one(record))
        if record.status in _BAD_END:
            raise Failed(f"file {file_id} is {record.status.value}: {record.error or ''}".strip())
        return
    until = now()
    chosen = [FileStatus(s.upper()) for s in statuses] or None
    with aws_errors(ctx, "listing files"):
        records = reader.files(since=until - since, until=until, statuses=chosen, dataset=dataset)
    by_status: dict[str, int] = {}
    for record in records:
        by_status[record.status.value] = by_status.get(record.status.value, 0) + 1
    summary = ", ".join(f"{count} {status}" for status, count in sorted(by_status.items()))
    human = (
        table(HEADERS, [record_row(r) for r in records])
        + f"\n{len(records)} file(s) updated since {(until - since):%Y-%m-%d %H:%M:%S} UTC"
        + (f": {summary}" if summary else "")
    )
    doc: dict[str, Any] = {
        "since": (until - since).isoformat(),
        "until": until.isoformat(),
        "counts": by_status,
        "files": [r.model_dump(mode="json") for r in records],
    }
    iam = _local_iam(ctx)
    if iam is not None:
        doc["iam"] = iam
        human += "\n" + iam_text(iam)
    ctx.emit(doc, human)


LAST_DENIALS = 5
"""Denials `sluice status` lists (the runtime keeps more in `/_sluice/state`)."""


def _local_iam(ctx: CliContext) -> dict[str, Any] | None:
    """The IAM section of a local runtime's state, or None (AWS, or a plain moto server)."""
    import json
    import urllib.error
    import urllib.request

    if not ctx.is_local or ctx.endpoint_url is None:
        return None
    url = ctx.endpoint_url.rstrip("/") + "/_sluice/state"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            state = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    iam = state.get("iam") if isinstance(state, dict) else None
    return iam if isinstance(iam, dict) else None


def iam_text(iam: dict[str, Any]) -> str:
    """`IAM enforced: N denial(s) of M decisions` and the last denials, one per line."""
    if not iam.get("enabled", False):
        return "IAM: not enforced (sluice local up --no-iam)"
    lines = [
        f"IAM enforced: {iam.get('denials', 0)} denial(s) of {iam.get('decisions', 0)} decisions"
    ]
    recent = list(iam.get("recent_denials") or [])[-LAST_DENIALS:]
    if recent:
        lines.append(
            table(
                ["time", "principal", "action", "resource"],
                [[d["time"], d["principal"], d["action"], d["resource"]] for d in recent],
            )
        )
    return "\n".join(lines)


def _metrics(ctx: CliContext, logs: Path, window: timedelta) -> None:
    from sluice.ops.metrics import read_emf_logs, summarize, summary_text

    since_ms = int((now() - window).timestamp() * 1000)
    try:
        summary = summarize(read_emf_logs(logs, since_ms=since_ms))
    except FileNotFoundError as exc:
        raise click.BadParameter(str(exc), param_hint="--logs") from None
    ctx.emit(summary.as_dict(), summary_text(summary))


def _one(record: FileRecord) -> str:
    values = record.model_dump(mode="json")
    width = max(len(k) for k in values)
    return "\n".join(f"{k.ljust(width)}  {'' if v is None else v}" for k, v in values.items())


def _serve(ctx: CliContext, window: Any, port: int) -> None:
    from sluice.ops.statuspage import StatusPageServer, stage_page

    try:
        server = StatusPageServer(stage_page(ctx, window), "127.0.0.1", port)
    except OSError as exc:
        raise click.BadParameter(f"cannot listen on 127.0.0.1:{port}: {exc}") from None
    click.echo(f"status page on {server.url} (stage {ctx.stage}); Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
