"""Scenarios about single messages: poison, unknown contract versions, spoofed events, broken
batch responses, versions notified out of order, and redrive of a DLQ once the cause is fixed."""

from __future__ import annotations

import asyncio
import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aioboto3
import orjson
import pytest

from contracts.envelope import Envelope
from contracts.events import FileIngestedV1
from contracts.types import DatasetRef
from sluice.commands import dlq
from sluice_shared.aws.dynamodb import DynamoDbLedger
from sluice_shared.keys import file_id_for
from sluice_shared.ports import REASON_CODE_ATTRIBUTE, FileRecord
from tests.e2e.harness import ledger_items
from tests.reliability.scenario import (
    InjectedHandlerError,
    PipelineStalled,
    Rig,
    UnexpectedHandlerFailure,
    assert_reconciled,
)

MAX_RECEIVE_COUNT = 5  # the harness's redrive policy
ORDERS = (
    b"order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
    b"ORD-000001,c1,2024-03-01T10:00:00Z,S1,2,2.5,EUR,DE,\n"
    b"ORD-000002,c2,2024-03-02T10:00:00Z,S2,1,10,USD,US,\n"
)
# The ETag S3 gives ORDERS (validate reads an object without versions by its ETag).
ORDERS_ETAG = hashlib.md5(ORDERS, usedforsecurity=False).hexdigest()


def eventbridge_body(envelope: Envelope[Any], *, source: str | None = None) -> str:
    return orjson.dumps(
        {
            "version": "0",
            "id": "11111111-2222-3333-4444-555555555555",
            "detail-type": envelope.type,
            "source": source or envelope.source,
            "account": "123456789012",
            "time": "2024-03-01T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": orjson.loads(envelope.to_json()),
        }
    ).decode()


def ingested(file_id: str, bucket: str, key: str = "orders/p.csv") -> Envelope[Any]:
    data = FileIngestedV1(
        file_id=file_id,
        dataset=DatasetRef(name="orders", version=1),
        bucket=bucket,
        key=key,
        etag=ORDERS_ETAG,
        size_bytes=len(ORDERS),
        object_created_at=datetime(2024, 3, 1, tzinfo=UTC),
    )
    return Envelope.wrap(data, correlationid=file_id)


def register(rig: Rig, record: FileRecord) -> None:
    async def go() -> None:
        session = aioboto3.Session(region_name="us-east-1")
        async with session.client("dynamodb", endpoint_url=rig.stack.endpoint) as client:
            await DynamoDbLedger(client, rig.stack.table).register_file(record)

    asyncio.run(go())


def dlq_messages(rig: Rig, service: str) -> list[dict[str, Any]]:
    got = rig.stack.client("sqs").receive_message(
        QueueUrl=rig.stack.dlqs[service],
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(got.get("Messages", []))


def send(rig: Rig, service: str, body: str) -> str:
    sent = rig.stack.client("sqs").send_message(
        QueueUrl=rig.stack.queues[service], MessageBody=body
    )
    return str(sent["MessageId"])


def deliveries_of(rig: Rig, message_id: str) -> int:
    return sum(1 for _, ids, _ in rig.responses if message_id in ids)


def test_scenario_poison_fails_alone_reaches_dlq_after_max_receives_then_redrive_completes(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a registered file whose raw bucket does not exist yet (a deployment problem: every
    # delivery fails, it is not the input's fault), sent in one batch with a good file's event
    monkeypatch.setattr(dlq, "SLEEP", lambda seconds: None)
    rig.start()
    late = "sluice-e2e-late"
    poison_id = file_id_for(late, "orders/p.csv", None, ORDERS_ETAG)
    register(
        rig,
        FileRecord(
            file_id=poison_id,
            dataset="orders",
            dataset_version=1,
            bucket=late,
            key="orders/p.csv",
            etag=ORDERS_ETAG,
            size_bytes=len(ORDERS),
        ),
    )
    rig.paused.add("validate")
    rig.upload("orders/good.csv", ORDERS)
    rig.pump(until=lambda: len(list(ledger_items(rig.stack))) == 2, timeout=30)
    poison_message = send(rig, "validate", eventbridge_body(ingested(poison_id, late)))
    rig.paused.clear()

    # WHEN the pipeline runs until the poison left the queue
    def good_done_queues_empty() -> bool:
        statuses = {i["key"]: i["status"] for i in ledger_items(rig.stack)}
        return statuses.get("orders/good.csv") == "COMPLETED" and rig.queues_empty()

    rig.pump(until=good_done_queues_empty, timeout=40)
    # THEN only the poison's id was ever reported failed, it was delivered exactly
    # maxReceiveCount times and sits in the DLQ; the good file completed
    failed_ids = {i for _, _, failed in rig.responses for i in failed}
    assert failed_ids == {poison_message}
    assert deliveries_of(rig, poison_message) == MAX_RECEIVE_COUNT
    parked = dlq_messages(rig, "validate")
    assert [m["MessageId"] for m in parked] == [poison_message]
    # AND the checker refuses to call this reconciled: a file is stuck and a DLQ message unexplained
    verdict = rig.reconcile()
    assert not verdict.ok
    assert any("not terminal: VALIDATING" in p for p in verdict.all_problems())
    assert any("has no reason" in p for p in verdict.all_problems())
    # WHEN the operator fixes the cause and redrives the DLQ
    s3 = rig.stack.client("s3")
    s3.create_bucket(Bucket=late)
    s3.put_object(Bucket=late, Key="orders/p.csv", Body=ORDERS)
    report = dlq.redrive(
        rig.stack.client("sqs"),
        rig.stack.dlqs["validate"],
        dlq.source_queue_url(rig.stack.client("sqs"), rig.stack.dlqs["validate"]),
    )
    assert report.moved == 1
    rig.settle(2)
    # THEN the file completes and everything reconciles
    assert_reconciled(rig.reconcile())
    assert {i["status"] for i in ledger_items(rig.stack)} == {"COMPLETED"}


def test_scenario_unknown_contract_version_is_parked_with_reason(rig: Rig) -> None:
    rig.start()
    envelope = ingested("f" * 32, rig.stack.raw)
    body = orjson.loads(eventbridge_body(envelope))
    body["detail-type"] = body["detail"]["type"] = "sluice.file.ingested.v9"
    message_id = send(rig, "validate", orjson.dumps(body).decode())
    rig.settle(0)
    parked = dlq_messages(rig, "validate")
    assert [m["MessageId"] != message_id for m in parked] == [True]  # parked as a new message
    assert parked[0]["MessageAttributes"][REASON_CODE_ATTRIBUTE]["StringValue"] == (
        "unknown_contract_type"
    )
    assert deliveries_of(rig, message_id) == 1  # parked at once, never retried
    assert_reconciled(rig.reconcile())


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        ("ingest", "unexpected_bucket"),
        ("validate", "contract_type_mismatch"),
        ("validate", "unknown_file"),
    ],
)
def test_scenario_spoofed_event_has_no_side_effect(rig: Rig, service: str, reason: str) -> None:
    # GIVEN an event that did not come from where it claims
    rig.start()
    s3 = rig.stack.client("s3")
    s3.put_object(Bucket=rig.stack.processed, Key="orders/x.csv", Body=ORDERS)
    if reason == "unexpected_bucket":  # an S3 notification naming a bucket ingest does not own
        body = orjson.dumps(
            {
                "version": "0",
                "id": "e1",
                "detail-type": "Object Created",
                "source": "aws.s3",
                "time": "2024-03-01T00:00:00Z",
                "detail": {
                    "bucket": {"name": rig.stack.processed},
                    "object": {"key": "orders/x.csv", "size": len(ORDERS), "etag": "e"},
                },
            }
        ).decode()
    elif reason == "contract_type_mismatch":  # a foreign source wrapping a Sluice envelope
        body = eventbridge_body(ingested("a" * 32, rig.stack.raw), source="evil.app")
    else:  # a well-formed fact about a file the ledger never registered
        body = eventbridge_body(ingested("b" * 32, rig.stack.processed, "orders/x.csv"))
    send(rig, service, body)
    rig.settle(0)
    # THEN it is parked with the reason, and nothing was registered, staged or written
    parked = dlq_messages(rig, service)
    assert [m["MessageAttributes"][REASON_CODE_ATTRIBUTE]["StringValue"] for m in parked] == [
        reason
    ]
    assert list(ledger_items(rig.stack)) == []
    assert s3.list_objects_v2(Bucket=rig.stack.work).get("KeyCount", 0) == 0
    assert_reconciled(rig.reconcile())


def test_scenario_invalid_item_identifier_or_handler_error_retries_whole_batch(
    rig: Rig, tmp_path: Path
) -> None:
    # GIVEN an ingest function whose first response names an unknown itemIdentifier, and a
    # validate function whose first invocation fails outright
    rig.start()
    real_ingest, real_validate = rig.handlers["ingest"], rig.handlers["validate"]
    calls = {"ingest": 0, "validate": 0}

    def bad_response(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls["ingest"] += 1
        response: dict[str, Any] = real_ingest(event, context)
        if calls["ingest"] == 1:
            response["batchItemFailures"].append({"itemIdentifier": "not-in-this-batch"})
        return response

    def crashing(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls["validate"] += 1
        if calls["validate"] == 1:
            raise InjectedHandlerError("init failed")
        return dict(real_validate(event, context))

    rig.handlers["ingest"], rig.handlers["validate"] = bad_response, crashing
    rig.allowed_invalid_responses = 1
    truths = {
        k: rig.upload_generated(tmp_path, k, seed=n)
        for n, k in enumerate(["orders/a.csv", "orders/b.csv"])
    }
    # WHEN the pipeline settles
    rig.settle(2)
    # THEN both whole batches were retried, and the output is still exactly once
    assert rig.invalid_responses == 1
    assert rig.handler_errors == 1
    assert_reconciled(rig.reconcile(truths))


@pytest.mark.parametrize("order", ["reverse", "none"])
def test_scenario_object_versions_out_of_order_newest_version_wins(rig: Rig, order: str) -> None:
    # GIVEN a versioned raw bucket and two versions of one key, both notified before ingest runs
    from sluice_shared.faults import DeliveryFaults

    rig.delivery = DeliveryFaults(reorder="reverse" if order == "reverse" else "none")
    rig.start()
    rig.stack.client("s3").put_bucket_versioning(
        Bucket=rig.stack.raw, VersioningConfiguration={"Status": "Enabled"}
    )
    rig.upload("orders/v.csv", ORDERS)
    newest = rig.upload("orders/v.csv", ORDERS.replace(b"ORD-000002", b"ORD-000003"))
    # WHEN the notifications arrive (reversed: the older one last)
    rig.settle(1)
    # THEN only the newest version was processed; the older notification was superseded
    items = list(ledger_items(rig.stack))
    assert [i["version_id"] for i in items] == [newest["VersionId"]]
    assert_reconciled(rig.reconcile())
    import pyarrow.parquet as pq

    s3 = rig.stack.client("s3")
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=rig.stack.processed, Prefix="dataset=")["Contents"]
    ]
    ids = sorted(
        v
        for k in keys
        for v in pq.read_table(
            io.BytesIO(s3.get_object(Bucket=rig.stack.processed, Key=k)["Body"].read())
        )
        .column("order_id")
        .to_pylist()
    )
    assert ids == ["ORD-000001", "ORD-000003"]
    if order == "reverse":
        assert rig.delivery.reordered >= 1


def object_created(rig: Rig, put: dict[str, Any], key: str, size: int, sequencer: str) -> str:
    """An EventBridge S3 "Object Created" event for the version `put` wrote, as AWS delivers it:
    unencoded key, size, ETag, version id and sequencer."""
    return orjson.dumps(
        {
            "version": "0",
            "id": f"n-{sequencer}",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2024-03-01T00:00:00Z",
            "region": "us-east-1",
            "resources": [f"arn:aws:s3:::{rig.stack.raw}"],
            "detail": {
                "version": "0",
                "bucket": {"name": rig.stack.raw},
                "object": {
                    "key": key,
                    "size": size,
                    "etag": put["ETag"].strip('"'),
                    "version-id": put["VersionId"],
                    "sequencer": sequencer,
                },
                "reason": "PutObject",
            },
        }
    ).decode()


def test_scenario_older_version_notified_after_newer_is_superseded_without_a_head(
    rig: Rig,
) -> None:
    # GIVEN two versions of one key in a versioned raw bucket, each with the notification AWS
    # sends (sequencers of different lengths: compared as hex after left-padding), and a rule
    # that only counts the HeadObject calls of every handler's S3 client
    rig.start(
        {
            "seed": 1,
            "rules": [
                {"service": "s3", "operation": "HeadObject", "kind": "delay", "fraction": 0.0}
            ],
        }
    )
    s3 = rig.stack.client("s3")
    s3.put_bucket_versioning(Bucket=rig.stack.raw, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(Bucket=rig.stack.raw, NotificationConfiguration={})
    newer_body = ORDERS.replace(b"ORD-000002", b"ORD-000003")
    older = rig.upload("orders/v.csv", ORDERS)
    newer = rig.upload("orders/v.csv", newer_body)
    # WHEN the newer version's notification is processed first, and the older one's arrives late
    send(rig, "ingest", object_created(rig, newer, "orders/v.csv", len(newer_body), "0100"))
    rig.settle(1)
    send(rig, "ingest", object_created(rig, older, "orders/v.csv", len(ORDERS), "FF"))
    rig.settle(1)
    # THEN only the newer version was registered and processed, the older one was superseded by
    # the ledger's registration alone: no handler read the object's metadata
    items = list(ledger_items(rig.stack))
    assert [(i["version_id"], i["status"]) for i in items] == [(newer["VersionId"], "COMPLETED")]
    assert rig.injector is not None
    [counter] = rig.injector.counters()
    assert counter["seen"] == 0
    assert_reconciled(rig.reconcile())


@pytest.mark.parametrize("fault", ["raises", "unknown_identifier", "swallows"])
def test_scenario_pump_fails_on_a_handler_fault_it_did_not_inject(
    rig: Rig, tmp_path: Path, fault: str
) -> None:
    # GIVEN a validate function that, unannounced, raises, answers an itemIdentifier that is
    # not in its batch, or reports success without doing anything
    rig.start()
    real = rig.handlers["validate"]

    def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if fault == "raises":
            raise RuntimeError("a bug")
        if fault == "swallows":
            return {"batchItemFailures": []}
        response = dict(real(event, context))
        return {**response, "batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}

    rig.handlers["validate"] = broken
    rig.upload_generated(tmp_path, "orders/a.csv", seed=1)
    # WHEN the pipeline runs, THEN the scenario fails at once, although Lambda would retry
    # the batch (raising, unknown identifier) or nothing is left to move (swallowed)
    expected = PipelineStalled if fault == "swallows" else UnexpectedHandlerFailure
    with pytest.raises(expected):
        rig.settle(1, timeout=30)
