"""The rule cases: a rule with an SQS target on a bus of the local endpoint, events put with a
real boto3 client, and what reaches the queue compared with what AWS documents.

Cases run one after another, each with its own bus, rule and queue, removed afterwards: the rule
delivers to SQS inside PutEvents (and inside PutObject for S3 events), so once the call returns
the queue holds whatever will ever arrive, and an empty receive proves a non-match.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conformance.conftest import client
from tests.conformance.corpus import ANY, Delivery, EventsCase, events_cases, shaped_like

CASES = events_cases()
BUCKET = "conformance-data"
BUS_ARN = "arn:aws:events:us-east-1:123456789012:event-bus"
ENVELOPE = {
    "version": "0",
    "id": ANY,
    "detail-type": ANY,
    "source": ANY,
    "account": "123456789012",
    "time": ANY,
    "region": "us-east-1",
    "resources": ANY,
    "detail": ANY,
}


@pytest.fixture(scope="module")
def clients(local_endpoint: str) -> dict[str, Any]:
    return {s: client(local_endpoint, s) for s in ("events", "sqs", "s3")}


@pytest.fixture
def rule(clients: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(bus name, queue URL) for the case: its rule delivers there; all removed afterwards."""
    case: EventsCase = request.param
    events, sqs = clients["events"], clients["sqs"]
    bus = "default" if case.s3_actions else f"conformance-{case.name}"
    if bus != "default":
        events.create_event_bus(Name=bus)
    url = sqs.create_queue(QueueName=f"conformance-{case.name}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    name = f"conformance-{case.name}"
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(case.pattern))
    target = {"Id": "queue", "Arn": arn, **case.target}
    if case.dead_letter_from is not None:
        target.update(Arn=case.dead_letter_from, DeadLetterConfig={"Arn": arn})
    events.put_targets(Rule=name, EventBusName=bus, Targets=[target])
    if case.replay is not None:
        events.create_archive(ArchiveName=name, EventSourceArn=f"{BUS_ARN}/{bus}")
    try:
        yield bus, url
    finally:
        if case.replay is not None:
            events.delete_archive(ArchiveName=name)
        events.remove_targets(Rule=name, EventBusName=bus, Ids=["queue"])
        events.delete_rule(Name=name, EventBusName=bus)
        if bus != "default":
            events.delete_event_bus(Name=bus)
        sqs.delete_queue(QueueUrl=url)


def _drain_messages(sqs: Any, url: str) -> list[dict[str, Any]]:
    drained: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        )
        messages = got.get("Messages", [])
        if not messages:
            return drained
        for message in messages:
            drained.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _drain(sqs: Any, url: str) -> list[str]:
    return [str(m["Body"]) for m in _drain_messages(sqs, url)]


def _entry(delivery: Delivery, bus: str) -> dict[str, Any]:
    entry = dict(delivery.put)
    if not isinstance(entry.get("Detail"), str):
        entry["Detail"] = json.dumps(entry.get("Detail", {}))
    return {"EventBusName": bus, **entry}


def _as_delivered(entry: dict[str, Any]) -> dict[str, Any]:
    """The event AWS delivers for a PutEvents entry (no target transformation)."""
    return {
        **ENVELOPE,
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "resources": entry.get("Resources", []),
        "detail": json.loads(entry["Detail"]),
    }


def _check(expected: Any, entry: dict[str, Any], bodies: list[str], doc: str) -> None:
    if expected is None or expected is False:
        assert bodies == [], f"{doc}: no delivery expected, got {bodies}"
        return
    assert len(bodies) == 1, f"{doc}: one delivery expected, got {bodies}"
    if isinstance(expected, str):
        assert bodies[0] == expected, f"{doc}: {bodies[0]!r} != {expected!r}"
        return
    got = json.loads(bodies[0])
    want = _as_delivered(entry) if expected is True else expected
    assert shaped_like(want, got), f"{doc}:\nexpected {json.dumps(want)}\ngot {json.dumps(got)}"


CASES_EVENTS = [c for c in CASES if not c.s3_actions]
CASES_S3 = [c for c in CASES if c.s3_actions]


@pytest.mark.parametrize(
    ("case", "rule"),
    [(c, c) for c in CASES_EVENTS],
    ids=[c.name for c in CASES_EVENTS],
    indirect=["rule"],
)
def test_rule_delivers_as_documented(
    case: EventsCase, rule: tuple[str, str], clients: dict[str, Any]
) -> None:
    bus, url = rule
    for delivery in case.deliveries:
        # GIVEN an event put on the bus
        entry = _entry(delivery, bus)
        result = clients["events"].put_events(Entries=[entry])
        if delivery.error_code is not None:
            # THEN PutEvents fails the entry as documented, and nothing is delivered
            assert result["Entries"][0].get("ErrorCode") == delivery.error_code, result
            assert _drain(clients["sqs"], url) == [], case.doc
            continue
        assert result["FailedEntryCount"] == 0, result
        # THEN the queue gets what AWS documents (or nothing, for a non-match)
        messages = _drain_messages(clients["sqs"], url)
        _check(delivery.body, entry, [str(m["Body"]) for m in messages], case.doc)
        if delivery.attributes is not None:
            got = {k: v["StringValue"] for k, v in messages[0].get("MessageAttributes", {}).items()}
            shown = f"{case.doc}: attributes {got}"
            assert shaped_like(delivery.attributes, got), shown
    if case.replay is not None:
        _replay_all(case, bus, url, clients)


def _replay_all(case: EventsCase, bus: str, url: str, clients: dict[str, Any]) -> None:
    """Replay the bus's archive to the case's rule; the events it delivered come again."""
    events = clients["events"]
    name = f"conformance-{case.name}"
    now = datetime.now(UTC)
    events.start_replay(
        ReplayName=str(case.replay),
        EventSourceArn=events.describe_archive(ArchiveName=name)["ArchiveArn"],
        EventStartTime=now - timedelta(minutes=10),
        EventEndTime=now + timedelta(minutes=1),
        Destination={
            "Arn": f"{BUS_ARN}/{bus}",
            "FilterArns": [events.describe_rule(Name=name, EventBusName=bus)["Arn"]],
        },
    )
    wanted = [
        {**_as_delivered(_entry(d, bus)), "replay-name": case.replay}
        for d in case.deliveries
        if d.body is True
    ]
    replayed = [json.loads(body) for body in _drain(clients["sqs"], url)]
    shown = f"{case.doc}:\nexpected {json.dumps(wanted)}\ngot {json.dumps(replayed)}"
    assert len(replayed) == len(wanted), shown
    for want in wanted:
        assert any(shaped_like(want, got) for got in replayed), shown


@pytest.mark.parametrize(
    ("case", "rule"),
    [(c, c) for c in CASES_S3],
    ids=[c.name for c in CASES_S3],
    indirect=["rule"],
)
def test_s3_events_as_documented(
    case: EventsCase, rule: tuple[str, str], clients: dict[str, Any]
) -> None:
    _, url = rule
    s3 = clients["s3"]
    # GIVEN object operations on a bucket that sends its events to EventBridge
    for action in case.s3_actions:
        if "put" in action:
            s3.put_object(Bucket=BUCKET, Key=action["put"], Body=action["body"].encode())
        elif "copy" in action:
            source = {"Bucket": BUCKET, "Key": action["copy"]}
            s3.copy_object(Bucket=BUCKET, Key=action["to"], CopySource=source)
        else:
            s3.delete_object(Bucket=BUCKET, Key=action["delete"])
    # THEN the rule's queue gets the events AWS documents, in order
    bodies = [json.loads(b) for b in _drain(clients["sqs"], url)]
    assert len(bodies) == len(case.s3_events), f"{case.doc}: {bodies}"
    for want, got in zip(case.s3_events, bodies, strict=True):
        shown = f"{case.doc}:\nexpected {json.dumps(want)}\ngot {json.dumps(got)}"
        assert shaped_like(want, got), shown
