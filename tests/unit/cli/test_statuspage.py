"""The status page's data and HTML (no network, no browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from sluice.ops.statuspage import (
    Snapshot,
    StatusPage,
    StatusPageServer,
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
