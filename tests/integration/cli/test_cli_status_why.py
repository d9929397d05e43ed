"""`sluice status` and `sluice why` against a stage provisioned on the moto server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from sluice_shared.keys import StageKeys
from sluice_shared.ports import FileRecord, FileStatus
from tests.integration.cli.support import Invoke, Platform

ORDERS_ID = "a" * 32
SENSOR_ID = "b" * 32
FAILED_ID = "c" * 32


def _record(file_id: str, dataset: str, **fields: object) -> FileRecord:
    return FileRecord(
        file_id=file_id,
        dataset=dataset,
        bucket="it-raw",
        key=f"{dataset}/2024/01/{file_id[:4]}.csv",
        size_bytes=1234,
        correlation_id=file_id,
        **fields,
    )


async def _three_files(platform: Platform) -> None:
    ledger = platform.ledger
    await ledger.register_file(_record(ORDERS_ID, "orders"))
    await ledger.register_file(_record(SENSOR_ID, "sensor_readings"))
    await ledger.register_file(_record(FAILED_ID, "orders"))
    await ledger.transition(ORDERS_ID, FileStatus.VALIDATING, expected=[FileStatus.PENDING])
    await ledger.transition(
        FAILED_ID,
        FileStatus.FAILED,
        expected=[FileStatus.PENDING],
        error_code="too_many_bad_rows",
        error="bad-row ratio 0.40 above the contract's 0.05",
        rows_in=10,
        rows_out=0,
        rows_quarantined=4,
    )


async def test_status_without_filters_lists_every_status_in_window(
    platform: Platform, sluice: Invoke
) -> None:
    await _three_files(platform)

    result = sluice("--json", "status", "--since", "1h")

    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    statuses = {f["file_id"]: f["status"] for f in report["files"]}
    assert statuses == {ORDERS_ID: "VALIDATING", SENSOR_ID: "PENDING", FAILED_ID: "FAILED"}
    assert report["counts"] == {"VALIDATING": 1, "PENDING": 1, "FAILED": 1}


async def test_status_with_status_and_dataset_filters_narrows_the_list(
    platform: Platform, sluice: Invoke
) -> None:
    await _three_files(platform)

    failed = sluice("--json", "status", "--status", "failed")
    orders = sluice("--json", "status", "--dataset", "orders")

    assert [f["file_id"] for f in orjson.loads(failed.stdout)["files"]] == [FAILED_ID]
    assert {f["file_id"] for f in orjson.loads(orders.stdout)["files"]} == {ORDERS_ID, FAILED_ID}


async def test_status_outside_window_finds_nothing(platform: Platform, sluice: Invoke) -> None:
    # GIVEN a file last updated three days ago
    old = _record(SENSOR_ID, "sensor_readings")
    past = datetime.now(UTC) - timedelta(days=3)
    await platform.ledger.register_file(
        old.model_copy(update={"created_at": past, "updated_at": past})
    )

    recent = sluice("--json", "status", "--since", "1d")
    wide = sluice("--json", "status", "--since", "4d")

    assert orjson.loads(recent.stdout)["files"] == []
    assert [f["file_id"] for f in orjson.loads(wide.stdout)["files"]] == [SENSOR_ID]


async def test_status_of_one_failed_file_prints_it_and_exits_1(
    platform: Platform, sluice: Invoke
) -> None:
    await _three_files(platform)

    result = sluice("--json", "status", FAILED_ID)

    assert result.exit_code == 1
    record = orjson.loads(result.stdout)
    assert record["status"] == "FAILED"
    assert record["error_code"] == "too_many_bad_rows"
    assert "FAILED" in result.stderr


async def test_status_of_healthy_file_exits_0_and_prints_table(
    platform: Platform, sluice: Invoke
) -> None:
    await _three_files(platform)

    one = sluice("status", ORDERS_ID)
    listing = sluice("status")

    assert one.exit_code == 0
    assert "VALIDATING" in one.stdout
    assert listing.exit_code == 0
    assert listing.stdout.splitlines()[0].split()[:3] == ["FILE_ID", "STATUS", "DATASET"]
    assert "3 file(s)" in listing.stdout


async def test_status_of_unknown_file_exits_3(platform: Platform, sluice: Invoke) -> None:
    result = sluice("status", "f" * 32)

    assert result.exit_code == 3
    assert "not in the ledger" in result.stderr


async def test_status_with_bad_since_exits_2(platform: Platform, sluice: Invoke) -> None:
    result = sluice("status", "--since", "yesterday")

    assert result.exit_code == 2
    assert "not a duration" in result.stderr


async def test_status_of_unprovisioned_stage_exits_3(moto_endpoint: str, sluice: Invoke) -> None:
    result = sluice("status")

    assert result.exit_code == 3
    assert "not provisioned" in result.stderr


def test_status_with_unreachable_endpoint_exits_3() -> None:
    from click.testing import CliRunner

    from sluice.cli import cli

    # GIVEN a loopback port nothing listens on
    result = CliRunner().invoke(cli, ["--endpoint-url", "http://127.0.0.1:9", "status"])

    assert result.exit_code == 3
    assert "cannot reach http://127.0.0.1:9" in result.stderr


async def test_why_shows_history_quarantine_and_dlq_entries(
    platform: Platform, sluice: Invoke
) -> None:
    # GIVEN a failed file with quarantined rows in two objects and a parked message
    await _three_files(platform)
    keys = StageKeys(file_id=FAILED_ID, dataset="orders")
    s3 = platform.client("s3")
    rows = [
        {
            "row_number": n,
            "partition": 0,
            "byte_offset": 40 * n,
            "reason_code": "not_a_number",
            "reason": f"amount 'x{n}' is not a decimal",
            "column": "amount",
            "raw_record": f"o-{n},x{n}",
            "raw_truncated": False,
        }
        for n in range(1, 4)
    ]
    s3.put_object(
        Bucket="it-error",
        Key=keys.quarantine_validate(0),
        Body=b"\n".join(orjson.dumps(r) for r in rows) + b"\n",
    )
    s3.put_object(Bucket="it-error", Key=keys.quarantine_validate(1), Body=orjson.dumps(rows[0]))
    sqs = platform.client("sqs")
    sqs.send_message(
        QueueUrl=platform.dlq_urls["transform"],
        MessageBody=orjson.dumps({"detail": {"correlationid": FAILED_ID}}).decode(),
        MessageAttributes={
            "sluice-reason-code": {"DataType": "String", "StringValue": "invalid_contract"},
            "sluice-reason": {"DataType": "String", "StringValue": "data.rows_in: missing"},
        },
    )
    sqs.send_message(QueueUrl=platform.dlq_urls["transform"], MessageBody="other file")

    result = sluice("--json", "why", FAILED_ID, "--rows", "2")

    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert [s["to_status"] for s in report["history"]] == ["PENDING", "FAILED"]
    assert report["history"][1]["error_code"] == "too_many_bad_rows"
    quarantine = report["quarantine"]
    assert quarantine["objects"] == 2
    assert [r["row_number"] for r in quarantine["rows"]] == [1, 2]
    assert quarantine["truncated"] is True
    assert quarantine["rows"][0]["reason"] == "amount 'x1' is not a decimal"
    matches = report["dlq"]["matches"]
    assert [(m["queue"], m["reason_code"]) for m in matches] == [
        ("sluice-it-transform-dlq", "invalid_contract")
    ]
    assert report["dlq"]["scanned"]["sluice-it-transform-dlq"] == 2
    assert report["execution"] is None


async def test_why_peek_leaves_dlq_messages_receivable(platform: Platform, sluice: Invoke) -> None:
    await _three_files(platform)
    sqs = platform.client("sqs")
    sqs.send_message(QueueUrl=platform.dlq_urls["ingest"], MessageBody=f"parked {FAILED_ID}")

    sluice("--json", "why", FAILED_ID)
    again = sqs.receive_message(QueueUrl=platform.dlq_urls["ingest"], WaitTimeSeconds=0)

    assert [m["Body"] for m in again.get("Messages", [])] == [f"parked {FAILED_ID}"]


async def test_why_human_output_names_reason_and_rows(platform: Platform, sluice: Invoke) -> None:
    await _three_files(platform)

    result = sluice("why", FAILED_ID, "--no-dlq")

    assert result.exit_code == 0, result.output
    assert "error: too_many_bad_rows" in result.stdout
    assert "quarantine: no rows under quarantine/dataset=orders/" in result.stdout
    assert "dlq: not checked" in result.stdout


async def test_why_of_unknown_file_exits_3(platform: Platform, sluice: Invoke) -> None:
    result = sluice("why", "0" * 32)

    assert result.exit_code == 3
