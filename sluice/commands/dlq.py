"""`sluice dlq list QUEUE` and `sluice dlq redrive QUEUE [--max N]`.

QUEUE is a service name (`validate` → `sluice-<stage>-validate-dlq`), a queue name or a queue URL.

Redrive moves messages back to the source queue by hand — send, then delete — instead of SQS's
`StartMessageMoveTask`, which the local endpoint (moto) does not implement; the same code runs on
AWS. Each message is processed once per run: a message whose send succeeded is never sent again
in that run, even if its delete failed and it shows up again. A crash between the send and the
delete can still deliver a message twice across runs, which every consumer absorbs (ledger
claims, deterministic keys): redrive is at-least-once like every other hop.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import click
import orjson
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_random_exponential

from sluice.context import CliContext, table
from sluice.ops.calls import Failed, aws_errors
from sluice.ops.dlq import SERVICES, dlq_name, peek_queue
from sluice_shared.ports import REASON_ATTRIBUTE, REASON_CODE_ATTRIBUTE

SAMPLE = 5
RECEIVE_VISIBILITY_S = 60
SEND_ATTEMPTS = 4
_REASON_ATTRIBUTES = frozenset({REASON_ATTRIBUTE, REASON_CODE_ATTRIBUTE})


def resolve_queue_url(sqs: Any, queue: str, stage: str) -> str:
    """The URL of QUEUE (service name, queue name or URL). Raises ClientError when missing."""
    if queue.startswith(("http://", "https://")):
        return queue
    name = dlq_name(stage, queue) if queue in SERVICES else queue
    return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])


def source_queue_url(sqs: Any, dlq_url: str) -> str:
    """The queue a DLQ serves: the only source in its `RedriveAllowPolicy`, else by the naming
    convention `...-dlq` → `...-queue`. Raises click.UsageError when neither tells."""
    # "All": moto rejects RedriveAllowPolicy by name (unknown to it), AWS accepts both.
    attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    policy = orjson.loads(attributes.get("RedriveAllowPolicy") or "{}")
    sources = policy.get("sourceQueueArns") or []
    if policy.get("redrivePermission") == "byQueue" and len(sources) == 1:
        _, _, _, _, account, name = str(sources[0]).split(":", 5)
        return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])
    name = dlq_url.rstrip("/").rsplit("/", 1)[-1]
    if not name.endswith("-dlq"):
        raise click.UsageError(
            f"cannot tell the source queue of {name}: no single source in its RedriveAllowPolicy "
            "and the name does not end in -dlq; pass --to"
        )
    return str(sqs.get_queue_url(QueueName=name[: -len("-dlq")] + "-queue")["QueueUrl"])


@dataclass(slots=True)
class DlqListing:
    """What `dlq list` shows."""

    queue_url: str
    count: int
    oldest_age_s: float | None
    sample: list[dict[str, Any]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    complete: bool = True


def list_dlq(
    sqs: Any, queue_url: str, *, sample: int = SAMPLE, now_ms: int | None = None
) -> DlqListing:
    """Count, age of the oldest message, reasons and a sample, without consuming anything
    (messages are received and released at once; see `sluice.ops.dlq.peek_queue`)."""
    messages, complete = peek_queue(sqs, queue_url)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    sent = [int(m.get("Attributes", {}).get("SentTimestamp", now)) for m in messages]
    listing = DlqListing(
        queue_url=queue_url,
        count=len(messages),
        oldest_age_s=(now - min(sent)) / 1000 if sent else None,
        complete=complete,
    )
    for message in messages:
        attributes = message.get("MessageAttributes", {})
        code = attributes.get(REASON_CODE_ATTRIBUTE, {}).get("StringValue")
        receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0))
        reason_key = code or "max_receives_exceeded"
        listing.reasons[reason_key] = listing.reasons.get(reason_key, 0) + 1
        if len(listing.sample) < sample:
            listing.sample.append(
                {
                    "message_id": message["MessageId"],
                    "reason_code": code,
                    "reason": attributes.get(REASON_ATTRIBUTE, {}).get("StringValue")
                    or f"failed {receives} deliveries (maxReceiveCount reached)",
                    "receive_count": receives,
                    "body": str(message.get("Body", ""))[:200],
                }
            )
    return listing


@dataclass(slots=True)
class RedriveReport:
    """What `dlq redrive` did."""

    dlq_url: str
    source_url: str
    moved: int = 0
    failed: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)


def _entry(index: int, message: dict[str, Any]) -> dict[str, Any]:
    # The reason attributes describe why it was parked; the redriven message starts clean.
    attributes = {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message.get("MessageAttributes", {}).items()
        if name not in _REASON_ATTRIBUTES
    }
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
    if attributes:
        entry["MessageAttributes"] = attributes
    group = message.get("Attributes", {}).get("MessageGroupId")
    if group:
        entry["MessageGroupId"] = group
        entry["MessageDeduplicationId"] = message["MessageId"]
    return entry


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


SLEEP = _sleep  # tests patch this to run without waiting


def _send(sqs: Any, url: str, entries: list[dict[str, Any]]) -> set[str]:
    """Send the entries; resend only the failed ones, a bounded number of times. Returns the
    ids of the entries that were sent."""
    pending = {e["Id"]: e for e in entries}
    sent: set[str] = set()

    def attempt() -> bool:
        response = sqs.send_message_batch(QueueUrl=url, Entries=list(pending.values()))
        for ok in response.get("Successful", []):
            sent.add(ok["Id"])
            pending.pop(ok["Id"], None)
        for bad in response.get("Failed", []):
            if bad.get("SenderFault"):
                pending.pop(bad["Id"], None)  # the request itself is wrong: resending cannot help
        return bool(pending)

    retrying = Retrying(
        retry=retry_if_result(bool),
        stop=stop_after_attempt(SEND_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.1, max=2.0),
        sleep=lambda seconds: SLEEP(seconds),
    )
    retrying(attempt)
    return sent


def redrive(
    sqs: Any, dlq_url: str, source_url: str, *, max_messages: int | None = None
) -> RedriveReport:
    """Move up to `max_messages` (all when None) from `dlq_url` to `source_url`: send, then
    delete; each message id is sent at most once per call. Stops at the first batch with a
    message that could not be sent (it stays in the DLQ). Returns what was moved."""
    report = RedriveReport(dlq_url=dlq_url, source_url=source_url)
    sent_ids: set[str] = set()
    while max_messages is None or report.moved < max_messages:
        want = 10 if max_messages is None else min(10, max_messages - report.moved)
        got = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=want,
            VisibilityTimeout=RECEIVE_VISIBILITY_S,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            break
        # Seen again after its send succeeded (the delete failed): delete, never send twice.
        again = [m for m in got if m["MessageId"] in sent_ids]
        fresh = [m for m in got if m["MessageId"] not in sent_ids]
        sent = (
            _send(sqs, source_url, [_entry(i, m) for i, m in enumerate(fresh)]) if fresh else set()
        )
        done = [m for i, m in enumerate(fresh) if str(i) in sent]
        report.failed.extend(m["MessageId"] for i, m in enumerate(fresh) if str(i) not in sent)
        sent_ids.update(m["MessageId"] for m in done)
        _delete(sqs, dlq_url, done + again)
        report.moved += len(done)
        report.message_ids.extend(m["MessageId"] for m in done)
        if report.failed or not fresh:
            break
    return report


def _delete(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), 10):
        chunk = messages[start : start + 10]
        if chunk:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )


@click.group("dlq")
def command() -> None:
    """Inspect and redrive the service dead-letter queues."""


@command.command("list")
@click.argument("queue")
@click.option("--sample", default=SAMPLE, show_default=True, type=click.IntRange(0, 100))
@click.pass_obj
def list_command(ctx: CliContext, queue: str, sample: int) -> None:
    """Count, age of the oldest message, reasons and a sample of QUEUE (service, name or URL).

    Messages are received and released at once: their receive counts go up by one.
    Exit codes: 0 shown, 3 endpoint unreachable or queue missing.
    """
    sqs = ctx.client("sqs")
    with aws_errors(ctx, f"listing {queue}"):
        url = resolve_queue_url(sqs, queue, ctx.stage)
        listing = list_dlq(sqs, url, sample=sample)
    age = "-" if listing.oldest_age_s is None else f"{listing.oldest_age_s:,.0f} s"
    lines = [
        f"{url}: {listing.count} message(s){'' if listing.complete else ' (at least)'}, "
        f"oldest {age}",
        "reasons: " + (", ".join(f"{k}={v}" for k, v in sorted(listing.reasons.items())) or "-"),
    ]
    if listing.sample:
        lines.append(
            table(
                ["message id", "reason code", "receives", "reason"],
                [
                    [s["message_id"], s["reason_code"] or "-", s["receive_count"], s["reason"][:60]]
                    for s in listing.sample
                ],
            )
        )
    ctx.emit(asdict(listing), "\n".join(lines))


@command.command("redrive")
@click.argument("queue")
@click.option("--max", "max_messages", type=click.IntRange(1), default=None, help="Move at most N.")
@click.option("--to", "target", default=None, help="Source queue (default: from the DLQ).")
@click.pass_obj
def redrive_command(
    ctx: CliContext, queue: str, max_messages: int | None, target: str | None
) -> None:
    """Move messages of QUEUE back to the queue it serves (send, then delete; once each).

    Exit codes: 0 moved, 1 some messages could not be sent (they stay in the DLQ), 3 endpoint
    unreachable or queue missing.
    """
    sqs = ctx.client("sqs")
    with aws_errors(ctx, f"redriving {queue}"):
        dlq_url = resolve_queue_url(sqs, queue, ctx.stage)
        source = (
            resolve_queue_url(sqs, target, ctx.stage) if target else source_queue_url(sqs, dlq_url)
        )
        report = redrive(sqs, dlq_url, source, max_messages=max_messages)
    ctx.emit(
        asdict(report),
        f"moved {report.moved} message(s) from {dlq_url} to {source}"
        + (f"; {len(report.failed)} could not be sent and stay" if report.failed else ""),
    )
    if report.failed:
        raise Failed(f"{len(report.failed)} message(s) could not be redriven")
