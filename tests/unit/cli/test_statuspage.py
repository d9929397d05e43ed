"""The status page's data and HTML (no network, no browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from sluice.ops.calls import Missing
from sluice.ops.statuspage import (
    Snapshot,
    StatusPage,
    StatusPageServer,
    dataset_rows,
    render_page,
    run_progress,
    throughput,
)
from sluice_shared.ports import FileRecord, FileStatus, RunRecord

T0 = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)


def _file(n: int, status: FileStatus, minute: int, size: int = 100) -> FileRecord:
    moment = T0 + timedelta(minutes=minute)
    return FileRecord(
        file_id=f"{n:032x}",
        status=status,
        dataset="orders",
        bucket="b",
        key=f"orders/{n}.csv",
        size_bytes=size,
        created_at=moment,
        updated_at=moment,
    )


def test_throughput_counts_completed_files_per_bucket() -> None:
    records = [
        _file(1, FileStatus.COMPLETED, 1, 10),
        _file(2, FileStatus.COMPLETED, 9, 20),
        _file(3, FileStatus.COMPLETED, 59, 30),
        _file(4, FileStatus.FAILED, 2),
        _file(5, FileStatus.COMPLETED, 61),  # outside the window
    ]

    rows = throughput(records, since=T0, until=T0 + timedelta(hours=1), buckets=6)

    assert [r["files"] for r in rows] == [2, 0, 0, 0, 0, 1]
    assert [r["bytes"] for r in rows] == [30, 0, 0, 0, 0, 30]
    assert rows[1]["start"] == (T0 + timedelta(minutes=10)).isoformat()


def test_throughput_rejects_empty_window() -> None:
    with pytest.raises(ValueError, match="window"):
        throughput([], since=T0, until=T0, buckets=3)


def test_run_progress_uses_map_run_item_counts() -> None:
    run = RunRecord(run_id="r1", status="RUNNING", files=3, created_at=T0, updated_at=T0)
    counts = {"items": {"total": 10, "succeeded": 6, "failed": 1}}

    assert run_progress(run, counts)["done"] == 7
    assert run_progress(run, counts)["total"] == 10
    assert run_progress(run, None)["total"] is None


def test_render_page_embeds_snapshot_that_cannot_close_its_script() -> None:
    snapshot = Snapshot(stage="dev", generated_at=T0.isoformat(), window_s=3600)
    snapshot.recent = [{"file_id": "x", "key": "</script><script>alert(1)</script>"}]

    page = render_page(snapshot)

    embedded = page.split('<script id=snapshot type="application/json">', 1)[1]
    embedded = embedded.split("</script>", 1)[0]
    assert orjson.loads(embedded.replace("<\\/", "</"))["recent"][0]["key"].startswith("</script>")
    assert page.count("</script>") == 2


def test_status_page_server_refuses_non_loopback_host() -> None:
    def snapshot() -> Snapshot:
        return Snapshot(stage="dev", generated_at="", window_s=60)

    with pytest.raises(ValueError, match="loopback"):
        StatusPageServer(StatusPage(snapshot, lambda file_id: ""), "0.0.0.0", 0)


def test_throughput_rates_per_minute_and_rows_written() -> None:
    # GIVEN two completed files in the first 10-minute bucket, 300 and 100 rows written
    records = [
        _file(1, FileStatus.COMPLETED, 1).model_copy(update={"rows_out": 300}),
        _file(2, FileStatus.COMPLETED, 2).model_copy(update={"rows_out": 100}),
    ]

    rows = throughput(records, since=T0, until=T0 + timedelta(hours=1), buckets=6)

    assert rows[0]["rows"] == 400
    assert rows[0]["files_per_min"] == 0.2
    assert rows[0]["rows_per_min"] == 40.0
    assert rows[1]["rows_per_min"] == 0.0


def test_dataset_rows_sum_the_ledger_counts_per_dataset() -> None:
    records = [
        _file(1, FileStatus.COMPLETED, 1).model_copy(
            update={"rows_in": 10, "rows_out": 9, "rows_quarantined": 1}
        ),
        _file(2, FileStatus.VALIDATING, 2),  # not counted yet: adds a file, no rows
        _file(3, FileStatus.QUARANTINED, 3).model_copy(
            update={"dataset": "sensors", "rows_in": 5, "rows_out": 0, "rows_quarantined": 5}
        ),
    ]

    assert dataset_rows(records) == [
        {"dataset": "orders", "files": 2, "rows_in": 10, "rows_out": 9, "rows_quarantined": 1},
        {"dataset": "sensors", "files": 1, "rows_in": 5, "rows_out": 0, "rows_quarantined": 5},
    ]


def test_status_page_routes_below_its_base() -> None:
    def snapshot() -> Snapshot:
        return Snapshot(stage="dev", generated_at="", window_s=60)

    def explain(file_id: str) -> str:
        if file_id != "abc":
            raise Missing(f"file {file_id} is not in the ledger of stage dev")
        return "file abc  COMPLETED <b>"

    page = StatusPage(snapshot, explain, base="/_sluice/status/")

    assert page.respond("/_sluice/status")[0] == 200
    assert page.respond("/_sluice/status/?x=1")[1].startswith("text/html")
    code, kind, body = page.respond("/_sluice/status/api/status")
    assert (code, kind) == (200, "application/json")
    assert orjson.loads(body)["stage"] == "dev"
    code, _, body = page.respond("/_sluice/status/why/abc")
    assert code == 200
    assert b"file abc  COMPLETED &lt;b&gt;" in body
    assert b"<code id=command>sluice why abc</code>" in body
    assert page.respond("/_sluice/status/why/zzz")[0] == 404
    assert page.respond("/_sluice/status/why/a%20b")[0] == 400
    assert page.respond("/_sluice/other")[0] == 404
