"""The operator's recovery tools against the scenario stack: `sluice verify`, `sluice dlq list`,
`sluice dlq redrive` (with SendMessageBatch partial failures) and `sluice replay`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from sluice.cli import cli
from sluice.commands import dlq
from sluice.context import NAME_PARAMETERS
from sluice_shared.faults import FaultInjector, FaultRule
from sluice_shared.keys import StageKeys
from sluice_shared.ports import REASON_ATTRIBUTE, REASON_CODE_ATTRIBUTE
from tests.e2e.harness import ledger_items
from tests.reliability.scenario import Rig, assert_reconciled

STAGE = "e2e"  # the harness names its resources sluice-e2e-*, as a stage called e2e would be


def publish_names(rig: Rig) -> None:
    ssm = rig.stack.client("ssm")
    values = {
        "raw_bucket": rig.stack.raw,
        "work_bucket": rig.stack.work,
        "processed_bucket": rig.stack.processed,
        "error_bucket": rig.stack.errors,
        "event_bus": rig.stack.bus,
        "ledger_table": rig.stack.table,
    }
    for key, value in values.items():
        ssm.put_parameter(
            Name=f"/sluice/{STAGE}/{NAME_PARAMETERS[key]}", Value=value, Type="String"
        )


def sluice(rig: Rig, *args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(
        cli, ["--endpoint-url", rig.stack.endpoint, "--stage", STAGE, "--json", *args]
    )
    try:
        return result.exit_code, orjson.loads(result.stdout)
    except orjson.JSONDecodeError:
        return result.exit_code, result.output


def completed_rig(rig: Rig, tmp_path: Path) -> Path:
    """Two generated files through the pipeline; returns the truth directory."""
    rig.start()
    publish_names(rig)
    truth_dir = tmp_path / "truth"
    for n, key in enumerate(["orders/2024/a.csv", "sensor_readings/2024/b.jsonl"]):
        truth = rig.upload_generated(tmp_path, key, seed=n)
        path = truth_dir / f"{key}.truth.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(truth.to_json())
    rig.settle(2)
    return truth_dir


def test_verify_cli_reconciled_exit_0_then_stray_object_exit_1(rig: Rig, tmp_path: Path) -> None:
    # GIVEN two files through the pipeline and their ground truth
    truth_dir = completed_rig(rig, tmp_path)
    # WHEN verify runs, THEN it reconciles with the truth
    code, report = sluice(rig, "verify", "--truth", str(truth_dir))
    assert code == 0, report
    assert report["ok"] is True
    assert len(report["files"]) == 2
    # WHEN a Parquet object of a file is copied under another part name (a duplicate write)
    s3 = rig.stack.client("s3")
    key = next(
        o["Key"]
        for o in s3.list_objects_v2(Bucket=rig.stack.processed, Prefix="dataset=orders/")[
            "Contents"
        ]
    )
    stray = key.replace(".parquet", "9.parquet")
    s3.copy_object(
        Bucket=rig.stack.processed,
        Key=stray,
        CopySource={"Bucket": rig.stack.processed, "Key": key},
    )
    # THEN verify fails, naming the stray object and the doubled rows
    code, report = sluice(rig, "verify", "--truth", str(truth_dir))
    assert code == 1
    problems = "\n".join(report["problems"])
    assert stray in problems
    assert "more than once" in problems


def park(rig: Rig, service: str, bodies: list[str], *, reason: bool = True) -> None:
    sqs = rig.stack.client("sqs")
    for body in bodies:
        attributes = (
            {
                REASON_CODE_ATTRIBUTE: {
                    "DataType": "String",
                    "StringValue": "unknown_contract_type",
                },
                REASON_ATTRIBUTE: {"DataType": "String", "StringValue": "no such contract"},
            }
            if reason
            else {}
        )
        sqs.send_message(
            QueueUrl=rig.stack.dlqs[service], MessageBody=body, MessageAttributes=attributes
        )


def depth(rig: Rig, url: str) -> int:
    attrs = rig.stack.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def test_dlq_list_cli_counts_reasons_and_samples(rig: Rig) -> None:
    rig.start()
    park(rig, "transform", ["{}", "{}"])
    park(rig, "transform", ["{}"], reason=False)
    code, listing = sluice(rig, "dlq", "list", "transform", "--sample", "2")
    assert code == 0, listing
    assert listing["count"] == 3
    assert listing["reasons"] == {"unknown_contract_type": 2, "max_receives_exceeded": 1}
    assert len(listing["sample"]) == 2
    assert listing["oldest_age_s"] is not None
    assert depth(rig, rig.stack.dlqs["transform"]) == 3  # listing consumed nothing


def test_dlq_redrive_cli_moves_at_most_max_once_each(rig: Rig) -> None:
    rig.start()
    rig.paused.update({"ingest", "validate", "transform", "output"})
    park(rig, "output", [f'{{"n": {n}}}' for n in range(5)])
    code, report = sluice(rig, "dlq", "redrive", "output", "--max", "3")
    assert code == 0, report
    assert report["moved"] == 3
    assert depth(rig, rig.stack.queues["output"]) == 3
    assert depth(rig, rig.stack.dlqs["output"]) == 2


def test_dlq_redrive_partial_send_failures_resend_only_failed_entries(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 12 parked messages and SendMessageBatch answering 2 of the first batch's entries as
    # failed (they were not delivered: a clean failure)
    monkeypatch.setattr(dlq, "SLEEP", lambda seconds: None)
    rig.start()
    park(rig, "validate", [f'{{"n": {n}}}' for n in range(12)])
    sqs = rig.stack.client("sqs")
    sent_entries: list[int] = []
    sqs.meta.events.register(
        "before-parameter-build.sqs.SendMessageBatch",
        lambda params, **_: sent_entries.append(len(params["Entries"])),
    )
    injector = FaultInjector(
        [FaultRule("sqs", "SendMessageBatch", "partial", fraction=1.0, skip=8, times=2)]
    )
    injector.attach(sqs)
    # WHEN the DLQ is redriven
    report = dlq.redrive(sqs, rig.stack.dlqs["validate"], rig.stack.queues["validate"])
    # THEN the two failed entries were resent alone, everything moved, the DLQ is empty
    assert injector.fired("sqs", "SendMessageBatch") == 2
    assert sent_entries == [10, 2, 2]
    assert report.moved == 12
    assert depth(rig, rig.stack.dlqs["validate"]) == 0
    # (the "failed" entries had been applied by the server: the two extra copies are the
    # at-least-once duplicates every consumer absorbs)
    assert depth(rig, rig.stack.queues["validate"]) == 14


def test_dlq_redrive_source_from_naming_convention() -> None:
    class FakeSqs:
        def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
            return {"Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:1:sluice-dev-validate-dlq"}}

        def get_queue_url(self, QueueName: str, **_: Any) -> dict[str, str]:
            return {"QueueUrl": f"https://sqs/1/{QueueName}"}

    assert dlq.source_queue_url(FakeSqs(), "https://sqs/1/sluice-dev-validate-dlq") == (
        "https://sqs/1/sluice-dev-validate-queue"
    )


def staged_objects(rig: Rig, file_id: str) -> list[str]:
    listed = rig.stack.client("s3").list_objects_v2(
        Bucket=rig.stack.work, Prefix=StageKeys(file_id, "orders").staging_prefix
    )
    return [str(obj["Key"]) for obj in listed.get("Contents", [])]


def test_replay_cli_reruns_file_output_identical_and_reconciled(rig: Rig, tmp_path: Path) -> None:
    # GIVEN two completed files (their rows staged, as large files' are) and a snapshot of the
    # output
    rig.monkeypatch.setenv("SLUICE_INLINE_MAX_BYTES", "0")
    truth_dir = completed_rig(rig, tmp_path)
    before = rig.output_snapshot()
    file_id = next(i["file_id"] for i in ledger_items(rig.stack) if i["dataset"] == "orders")
    assert staged_objects(rig, file_id)
    # WHEN one is replayed and the pipeline runs again
    code, replayed = sluice(rig, "replay", file_id)
    assert code == 0, replayed
    # (the stages key their staging by ledger version, which restarts: the old staging is gone)
    assert staged_objects(rig, file_id) == []
    assert replayed == [
        {
            "file_id": file_id,
            "key": "orders/2024/a.csv",
            "previous_status": "COMPLETED",
            "replayed": True,
            "reason": "",
        }
    ]
    rig.settle(2)
    # THEN it ran again (a fresh record after a REPLAY step), and the output is unchanged
    history = rig.stack.client("dynamodb").query(
        TableName=rig.stack.table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :s)",
        ExpressionAttributeValues={":pk": {"S": f"FILE#{file_id}"}, ":s": {"S": "STEP#"}},
    )["Items"]
    to_statuses = [i["to_status"]["S"] for i in sorted(history, key=lambda i: i["SK"]["S"])]
    assert to_statuses.count("COMPLETED") == 2
    assert "REPLAY" in to_statuses
    assert rig.output_snapshot() == before
    code, report = sluice(rig, "verify", "--truth", str(truth_dir))
    assert code == 0, report


def test_replay_prefix_replays_terminal_files_refuses_in_flight_and_unknown(
    rig: Rig, tmp_path: Path
) -> None:
    # GIVEN two completed files, one registered but not validated yet (in flight), and one
    # object never notified to ingest
    completed_rig(rig, tmp_path)
    rig.paused.add("validate")
    rig.upload("orders/2024/in-flight.csv", b"order_id\n")
    rig.pump(until=lambda: len(list(ledger_items(rig.stack))) == 3, timeout=20)
    rig.paused.add("ingest")
    rig.upload("orders/2024/unknown.csv", b"order_id\n")
    # WHEN everything under orders/ is replayed
    code, replayed = sluice(rig, "replay", "--prefix", "orders/")
    # THEN the completed file is replayed, the others are refused with the reason
    assert code == 1
    by_key = {r["key"]: r for r in replayed}
    assert by_key["orders/2024/a.csv"]["replayed"] is True
    assert by_key["orders/2024/in-flight.csv"]["reason"].startswith("in flight (PENDING)")
    assert by_key["orders/2024/unknown.csv"]["reason"].startswith("never ingested")
    rig.paused.clear()
    rig.settle(4)
    assert_reconciled(rig.reconcile())
