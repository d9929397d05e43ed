"""What `sluice why FILE_ID` shows, built once for the command and the status page's per-file
page: the file's record and history, its error, the first quarantined rows with reasons, DLQ
entries that mention it, and its batch execution."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sluice.context import table
from sluice.ops.calls import Missing, aws_errors
from sluice.ops.dlq import DlqScan, find_in_dlqs
from sluice.ops.executions import (
    ExecutionInfo,
    console_url,
    describe_execution,
    execution_arn_for_file,
)
from sluice.ops.ledger import FileDetail, LedgerReader
from sluice.ops.quarantine import QuarantineSample, sample_quarantine

if TYPE_CHECKING:
    from sluice.context import CliContext

_RAW_CHARS = 80


def explain(ctx: CliContext, file_id: str, *, rows: int, dlq: bool) -> tuple[dict[str, Any], str]:
    """The report of one file as (JSON document, readable text).

    `rows` quarantined rows are sampled; `dlq` peeks the service DLQs (their receive counts go
    up by one). Raises `Missing` (exit 3) for a file the ledger does not know and
    `EndpointUnreachable` when the endpoint does not answer.
    """
    names = ctx.names()
    reader = LedgerReader(ctx.client("dynamodb"), names["ledger_table"])
    with aws_errors(ctx, f"reading file {file_id}"):
        detail = reader.file(file_id)
    if detail is None:
        raise Missing(f"file {file_id} is not in the ledger of stage {ctx.stage}")
    record = detail.record

    sample: QuarantineSample | None = None
    if "error_bucket" in names and rows > 0:
        with aws_errors(ctx, "reading the quarantine"):
            sample = sample_quarantine(
                ctx.client("s3"),
                names["error_bucket"],
                file_id=file_id,
                dataset=record.dataset,
                limit=rows,
            )
    scan: DlqScan | None = None
    if dlq:
        with aws_errors(ctx, "peeking the DLQs"):
            scan = find_in_dlqs(ctx.client("sqs"), file_id, stage=ctx.stage)
    execution = _execution(ctx, detail, names)

    report: dict[str, Any] = {
        "file": record.model_dump(mode="json"),
        "history": detail.history,
        "quarantine": asdict(sample) if sample else None,
        "dlq": asdict(scan) if scan else None,
        "execution": execution,
    }
    return report, _human(detail, sample, scan, execution)


def _execution(ctx: CliContext, detail: FileDetail, names: dict[str, str]) -> dict[str, Any] | None:
    arns = []
    recorded = detail.raw.get("execution_arn")
    if isinstance(recorded, str):
        arns.append(recorded)
    machine = names.get("batch_state_machine_arn")
    if machine:
        arns.append(execution_arn_for_file(machine, detail.record.file_id))
    for arn in dict.fromkeys(arns):
        with aws_errors(ctx, "describing the batch execution"):
            info: ExecutionInfo | None = describe_execution(ctx.client("stepfunctions"), arn)
        if info is not None:
            found = asdict(info)
            found["console_url"] = None if ctx.is_local else console_url(arn, ctx.region)
            return found
    return None


def _human(
    detail: FileDetail,
    sample: QuarantineSample | None,
    scan: DlqScan | None,
    execution: dict[str, Any] | None,
) -> str:
    record = detail.record
    out = [
        f"file {record.file_id}  {record.status.value}  dataset={record.dataset}",
        f"  s3://{record.bucket}/{record.key}  ({record.size_bytes} bytes)",
        f"  rows in/out/quarantined: {record.rows_in}/{record.rows_out}/{record.rows_quarantined}",
    ]
    if record.error_code or record.error:
        # a multi-line error (a contract's problems, one per line) stays indented under it
        error = (record.error or "").replace("\n", "\n    ")
        out.append(f"  error: {record.error_code or '-'}: {error}")
    out.append("")
    out.append("history")
    steps = [
        [s.get("at"), s.get("from_status") or "(new)", s.get("to_status"), _extra(s)]
        for s in detail.history
    ]
    out.append(table(["AT", "FROM", "TO", "SET"], steps))
    out.append("")
    if sample is None:
        out.append("quarantine: not read")
    elif not sample.rows:
        out.append(f"quarantine: no rows under {sample.prefix}")
    else:
        more = " (more not shown)" if sample.truncated else ""
        shown = len(sample.rows)
        out.append(f"quarantine: first {shown} row(s) of {sample.objects} object(s){more}")
        out.append(
            table(
                ["ROW", "PART", "REASON", "COLUMN", "RAW"],
                [
                    [
                        r.get("row_number"),
                        r.get("partition"),
                        r.get("reason_code") or r.get("unreadable", "")[:40],
                        r.get("column"),
                        _short(str(r.get("raw_record", ""))),
                    ]
                    for r in sample.rows
                ],
            )
        )
        out.extend(f"  row {r.get('row_number')}: {r.get('reason')}" for r in sample.rows)
    out.append("")
    if scan is None:
        out.append("dlq: not checked (--no-dlq)")
    else:
        looked = ", ".join(f"{q}={n}" for q, n in scan.scanned.items()) or "none"
        out.append(f"dlq: {len(scan.matches)} message(s) mention the file (scanned {looked})")
        out.extend(
            f"  {m.queue} {m.message_id} receives={m.receive_count} "
            f"reason={m.reason_code or '-'}: {m.reason or ''}"
            for m in scan.matches
        )
        if scan.missing:
            out.append(f"  queues not found: {', '.join(scan.missing)}")
        if scan.partial:
            out.append(f"  only the first messages were scanned in: {', '.join(scan.partial)}")
    out.append("")
    if execution is None:
        out.append("batch execution: none (real-time path)")
    else:
        out.append(f"batch execution: {execution['status']}  {execution['arn']}")
        if execution.get("error"):
            out.append(f"  {execution['error']}: {execution.get('cause') or ''}")
        if execution.get("console_url"):
            out.append(f"  {execution['console_url']}")
    return "\n".join(out)


def _extra(step: dict[str, Any]) -> str:
    skip = {"at", "from_status", "to_status", "version"}
    # The error text is printed in full above the table; here it would only widen every row.
    skip = {*skip, "error"}
    return " ".join(
        f"{k}={_short(str(v))}" for k, v in sorted(step.items()) if k not in skip and v is not None
    )


def _short(text: str) -> str:
    flat = text.replace("\n", "\\n")
    return flat if len(flat) <= _RAW_CHARS else flat[: _RAW_CHARS - 1] + "…"
