"""Finding a file's messages in the service dead-letter queues without consuming them.

SQS has no true peek: a message is only visible to a receiver, and receiving it raises its
`ApproximateReceiveCount`. We receive with a short visibility timeout (long enough that one scan
does not see the same message twice), then hand every received message back at once with
`ChangeMessageVisibility(0)`. A DLQ has no consumer, so the raised receive count harms nothing,
but a redrive run at the same moment could miss a message for those few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sluice_shared.ports import REASON_ATTRIBUTE, REASON_CODE_ATTRIBUTE

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mypy_boto3_sqs.client import SQSClient

SERVICES = ("ingest", "validate", "transform", "output")
PEEK_VISIBILITY_S = 10
MAX_SCANNED = 1000
"""Messages looked at per queue at most: `why` is for finding one file, not for draining."""


def dlq_name(stage: str, service: str) -> str:
    """The name the service templates give a service's DLQ."""
    return f"sluice-{stage}-{service}-dlq"


@dataclass(frozen=True, slots=True)
class DlqMessage:
    queue: str
    message_id: str
    reason_code: str | None
    reason: str | None
    receive_count: int
    sent_at_ms: int | None
    body: str


@dataclass(slots=True)
class DlqScan:
    """What `find_in_dlqs` saw: matching messages, depths scanned, queues that do not exist."""

    matches: list[DlqMessage] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)


def _attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name, {}).get("StringValue")
    return str(value) if value is not None else None


def peek_queue(
    sqs: SQSClient,
    queue_url: str,
    *,
    max_scanned: int = MAX_SCANNED,
    visibility_s: int = PEEK_VISIBILITY_S,
) -> tuple[list[dict[str, Any]], bool]:
    """Receive up to `max_scanned` messages and make them visible again at once.

    Returns (messages, complete): `complete` is False when the cap stopped the scan.
    """
    seen: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    complete = True
    try:
        while True:
            if len(seen) >= max_scanned:
                complete = False
                break
            response = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(10, max_scanned - len(seen)),
                VisibilityTimeout=visibility_s,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
            batch = response.get("Messages", [])
            if not batch:
                break
            for message in batch:
                handles.append(message["ReceiptHandle"])
                seen.setdefault(message["MessageId"], dict(message))
    finally:
        _release(sqs, queue_url, handles)
    return list(seen.values()), complete


def _release(sqs: SQSClient, queue_url: str, handles: list[str]) -> None:
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for index, handle in enumerate(handles[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]


def find_in_dlqs(
    sqs: SQSClient,
    needle: str,
    *,
    stage: str,
    services: Iterable[str] = SERVICES,
    max_scanned: int = MAX_SCANNED,
) -> DlqScan:
    """Messages of the service DLQs whose body mentions `needle` (a file id).

    Queues that do not exist are listed in `missing`; queues with more than `max_scanned`
    messages in `partial`. Raises botocore errors other than a missing queue.
    """
    from botocore.exceptions import ClientError

    scan = DlqScan()
    for service in services:
        name = dlq_name(stage, service)
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if "NonExistentQueue" in code or code == "QueueDoesNotExist":
                scan.missing.append(name)
                continue
            raise
        messages, complete = peek_queue(sqs, url, max_scanned=max_scanned)
        scan.scanned[name] = len(messages)
        if not complete:
            scan.partial.append(name)
        for message in messages:
            body = str(message.get("Body", ""))
            if needle not in body:
                continue
            attributes = message.get("Attributes", {})
            sent = attributes.get("SentTimestamp")
            scan.matches.append(
                DlqMessage(
                    queue=name,
                    message_id=str(message["MessageId"]),
                    reason_code=_attribute(message, REASON_CODE_ATTRIBUTE),
                    reason=_attribute(message, REASON_ATTRIBUTE),
                    receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
                    sent_at_ms=int(sent) if sent is not None else None,
                    body=body,
                )
            )
    return scan
