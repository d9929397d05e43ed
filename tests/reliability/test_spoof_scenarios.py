"""Scenarios of forged stage events: a fact put on the bus by someone other than the stage that
owns it, naming a real file but changing what the file is (its dataset) or where its rows are
(a staging prefix). The stages take those from the ledger; an event that disagrees is parked
as `event_ledger_mismatch`, the attempt is kept in the file's ledger history and reported by
the checker, and nothing lands in the output."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from contracts.envelope import Envelope
from contracts.events import FileIngestedV2, FileValidatedV3
from contracts.types import DatasetRef, LedgerSnapshot
from sluice_shared.ports import REASON_ATTRIBUTE, REASON_CODE_ATTRIBUTE
from tests.e2e.harness import ledger_items
from tests.reliability.scenario import Rig, assert_reconciled
from tests.reliability.test_message_scenarios import ORDERS, dlq_messages

if TYPE_CHECKING:
    from collections.abc import Mapping

MISMATCH = "event_ledger_mismatch"
# Rows the attacker wants in someone else's output (orders-shaped).
ATTACKER_ORDERS = (
    b"order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
    b"ORD-666661,evil,2024-03-01T10:00:00Z,S1,1,1,EUR,DE,\n"
    b"ORD-666662,evil,2024-03-02T10:00:00Z,S2,1,1,USD,US,\n"
    b"ORD-666663,evil,2024-03-03T10:00:00Z,S3,1,1,USD,US,\n"
)


def put_event(rig: Rig, envelope: Envelope[Any]) -> None:
    """One PutEvents on the Sluice bus with the stage's own source, as a forger would send it."""
    answer = rig.stack.client("events").put_events(
        Entries=[
            {
                "EventBusName": rig.stack.bus,
                "Source": envelope.source,
                "DetailType": envelope.type,
                "Detail": envelope.to_json().decode(),
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0


def genuine_snapshot(message: Mapping[str, Any]) -> LedgerSnapshot:
    """The ledger record a genuine fact (an SQS message of its EventBridge event) carries."""
    data = json.loads(message["Body"])["detail"]["data"]
    return LedgerSnapshot.model_validate(data["ledger"])


def file_of(rig: Rig, key: str) -> dict[str, Any]:
    [item] = [i for i in ledger_items(rig.stack) if i["key"] == key]
    return item


def refusals(rig: Rig, file_id: str) -> list[dict[str, Any]]:
    from sluice_shared.aws.dynamodb import plain

    got = rig.stack.client("dynamodb").query(
        TableName=rig.stack.table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :step)",
        ExpressionAttributeValues={":pk": {"S": f"FILE#{file_id}"}, ":step": {"S": "STEP#"}},
        ConsistentRead=True,
    )
    return [s for s in map(plain, got["Items"]) if s.get("to_status") == "REFUSED"]


def processed_keys(rig: Rig, prefix: str = "") -> list[str]:
    s3 = rig.stack.client("s3")
    got = s3.list_objects_v2(Bucket=rig.stack.processed, Prefix=prefix)
    return [str(o["Key"]) for o in got.get("Contents", [])]


def test_scenario_forged_validated_event_with_another_staging_prefix_is_refused(rig: Rig) -> None:
    # GIVEN file A whose raw object was deleted before validate ran, and an attacker's file B
    # validated and staged, waiting for transform
    rig.monkeypatch.setenv("SLUICE_INLINE_MAX_BYTES", "0")  # staged rows, as large files have
    rig.start()
    rig.paused.add("validate")
    rig.upload("orders/a.csv", ORDERS)
    rig.pump(until=lambda: len(list(ledger_items(rig.stack))) == 1, timeout=60)
    rig.stack.client("s3").delete_object(Bucket=rig.stack.raw, Key="orders/a.csv")
    rig.paused = {"transform"}
    rig.upload("orders/b.csv", ATTACKER_ORDERS)

    def validate_settled() -> bool:
        statuses = {i["key"]: i["status"] for i in ledger_items(rig.stack)}
        sqs = rig.stack.client("sqs")
        waiting = sqs.get_queue_attributes(
            QueueUrl=rig.stack.queues["transform"],
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]["ApproximateNumberOfMessages"]
        return statuses.get("orders/b.csv") == "VALIDATING" and int(waiting) == 1

    rig.pump(until=validate_settled, timeout=60)
    victim = file_of(rig, "orders/a.csv")
    attacker = file_of(rig, "orders/b.csv")
    assert victim["status"] != "COMPLETED"
    [b_staged] = [
        o["Key"]
        for o in rig.stack.client("s3").list_objects_v2(
            Bucket=rig.stack.work, Prefix=f"stage/{attacker['file_id']}/validated/"
        )["Contents"]
    ]
    b_prefix = b_staged.rsplit("/", 1)[0] + "/"  # the attempt area holding B's rows
    # WHEN one PutEvents announces A as validated, its rows staged under B's prefix
    forged = FileValidatedV3(  # the major the stages' rules route
        file_id=victim["file_id"],
        dataset=DatasetRef(name="orders", version=1),
        bucket=rig.stack.raw,
        key="orders/a.csv",
        staged_prefix=f"s3://{rig.stack.work}/{b_prefix}",
        bucket_count=1,
        rows_in=3,
        rows_valid=3,
        rows_quarantined=0,
        bytes_in=len(ATTACKER_ORDERS),
        object_created_at=victim["created_at"],
    )
    put_event(rig, Envelope.wrap(forged, correlationid=victim["file_id"]))
    rig.paused.clear()
    rig.settle(2)
    # THEN A never completes with B's rows: it ended FAILED for its own reason (its raw object
    # is gone), none of its Parquet exists, and B's rows appear once
    victim = file_of(rig, "orders/a.csv")
    assert (victim["status"], victim["error_code"]) == ("FAILED", "object_not_found")
    assert [k for k in processed_keys(rig) if victim["file_id"] in k] == []
    assert file_of(rig, "orders/b.csv")["status"] == "COMPLETED"
    # AND the forged event is parked with every differing field, both values
    parked = [
        m
        for m in dlq_messages(rig, "transform")
        if m["MessageAttributes"][REASON_CODE_ATTRIBUTE]["StringValue"] == MISMATCH
    ]
    assert len(parked) == 1
    reason = parked[0]["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    assert f"stage/{attacker['file_id']}/validated/" in reason
    assert f"stage/{victim['file_id']}/validated/" in reason
    # AND the ledger keeps the attempt in A's history, and the checker reports it
    [refused] = refusals(rig, victim["file_id"])
    assert refused["error_code"] == MISMATCH
    assert refused["event_type"] == FileValidatedV3.TYPE
    verdict = rig.reconcile()
    assert_reconciled(verdict)
    assert [(r.file_id, r.reason_code) for r in verdict.refused] == [(victim["file_id"], MISMATCH)]


@pytest.mark.parametrize("snapshot", [False, True], ids=["bare", "with_snapshot"])
def test_scenario_forged_ingested_event_naming_another_dataset_is_refused(
    rig: Rig, snapshot: bool
) -> None:
    # GIVEN orders-shaped rows uploaded where only sensor_readings may be written, registered by
    # ingest as a sensor_readings file; its genuine `file.ingested` held back
    # (`with_snapshot`: the forger copies the genuine fact's ledger record, which agrees with
    # the forged fact, since the record's dataset name is the fact's own: only the claim's
    # condition on every stored field stands between it and a claim without a read)
    rig.start()
    rig.paused.add("validate")
    rig.upload("sensor_readings/x.csv", ATTACKER_ORDERS)
    rig.pump(until=lambda: len(list(ledger_items(rig.stack))) == 1, timeout=60)
    target = file_of(rig, "sensor_readings/x.csv")
    assert target["dataset"] == "sensor_readings"
    sqs = rig.stack.client("sqs")
    [genuine] = sqs.receive_message(
        QueueUrl=rig.stack.queues["validate"],
        MaxNumberOfMessages=10,
        VisibilityTimeout=600,
        WaitTimeSeconds=5,
    )["Messages"]
    # WHEN one PutEvents announces the file as an `orders` file
    forged = FileIngestedV2(  # the major the stages' rules route
        file_id=target["file_id"],
        dataset=DatasetRef(name="orders", version=1),
        bucket=rig.stack.raw,
        key="sensor_readings/x.csv",
        etag=target["etag"],
        size_bytes=len(ATTACKER_ORDERS),
        object_created_at=target["created_at"],
        ledger=genuine_snapshot(genuine) if snapshot else None,
    )
    put_event(rig, Envelope.wrap(forged, correlationid=target["file_id"]))
    rig.paused.clear()

    def forged_handled() -> bool:
        status = file_of(rig, "sensor_readings/x.csv")["status"]
        return status in ("COMPLETED", "QUARANTINED") or bool(dlq_messages(rig, "validate"))

    rig.pump(until=forged_handled, timeout=60)
    sqs.change_message_visibility(
        QueueUrl=rig.stack.queues["validate"],
        ReceiptHandle=genuine["ReceiptHandle"],
        VisibilityTimeout=0,
    )
    rig.settle(1)
    # THEN nothing landed under dataset=orders, and the file ended as its own dataset decides
    assert processed_keys(rig, "dataset=orders/") == []
    assert processed_keys(rig, "_manifests/dataset=orders/") == []
    target = file_of(rig, "sensor_readings/x.csv")
    assert target["status"] == "QUARANTINED"  # orders rows are not sensor readings
    # AND the forged event is parked naming the dataset both ways; the attempt is reported
    [parked] = dlq_messages(rig, "validate")
    assert parked["MessageAttributes"][REASON_CODE_ATTRIBUTE]["StringValue"] == MISMATCH
    reason = parked["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    assert "dataset" in reason
    assert "'orders'" in reason
    assert "'sensor_readings'" in reason
    assert [r["error_code"] for r in refusals(rig, target["file_id"])] == [MISMATCH]
    verdict = rig.reconcile()
    assert_reconciled(verdict)
    assert [(r.file_id, r.reason_code) for r in verdict.refused] == [(target["file_id"], MISMATCH)]
