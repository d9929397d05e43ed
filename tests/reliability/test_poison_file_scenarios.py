"""Scenarios of a file whose own message is poison: the message is parked at once, and the file
does not stay in a working state for ever: the ledger moves it to FAILED with the reason code,
so every file ends terminal and the run reconciles."""

from __future__ import annotations

from sluice_shared.ports import REASON_CODE_ATTRIBUTE
from tests.e2e.harness import ledger_items
from tests.reliability.scenario import Rig, assert_reconciled
from tests.reliability.test_message_scenarios import ORDERS, deliveries_of, dlq_messages


def test_scenario_raw_object_deleted_before_validate_runs_fails_the_file(rig: Rig) -> None:
    # GIVEN two files ingested, and the raw object of one deleted before validate runs
    rig.start()
    rig.paused.add("validate")
    rig.upload("orders/gone.csv", ORDERS)
    rig.upload("orders/kept.csv", ORDERS.replace(b"ORD-00000", b"ORD-10000"))
    rig.pump(until=lambda: len(list(ledger_items(rig.stack))) == 2, timeout=60)
    rig.stack.client("s3").delete_object(Bucket=rig.stack.raw, Key="orders/gone.csv")
    rig.paused.clear()
    # WHEN the pipeline settles
    files = rig.settle(2)
    # THEN the file whose object is gone is FAILED with the reason, the other COMPLETED
    by_key = {f["key"]: f for f in files.values()}
    gone, kept = by_key["orders/gone.csv"], by_key["orders/kept.csv"]
    assert (gone["status"], gone["error_code"]) == ("FAILED", "object_not_found")
    assert kept["status"] == "COMPLETED"
    # AND its message was parked once with the same reason, never retried
    [parked] = dlq_messages(rig, "validate")
    assert parked["MessageAttributes"][REASON_CODE_ATTRIBUTE]["StringValue"] == "object_not_found"
    validate_ids = [ids for service, ids, _ in rig.responses if service == "validate"]
    assert all(deliveries_of(rig, m) == 1 for ids in validate_ids for m in ids)
    # AND nothing is lost or doubled: every file terminal, output exactly the kept file's
    assert_reconciled(rig.reconcile())
    assert [k for k in rig.output_snapshot() if gone["file_id"] in k] == []
    # AND a late duplicate of its file.ingested finds it FAILED and does nothing
    rig.stack.client("sqs").send_message(
        QueueUrl=rig.stack.queues["validate"], MessageBody=parked["Body"]
    )
    rig.settle(2)
    assert {f["key"]: f["status"] for f in ledger_items(rig.stack)} == {
        "orders/gone.csv": "FAILED",
        "orders/kept.csv": "COMPLETED",
    }
    assert len(dlq_messages(rig, "validate")) == 1
    assert_reconciled(rig.reconcile())
