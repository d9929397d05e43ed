"""The status page rendered by headless Chromium, fed from a stage on the moto server."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pytest

from sluice.ops.ledger import LedgerReader
from sluice.ops.statuspage import Snapshot, StatusPageServer, collect
from sluice_shared.ports import FileRecord, FileStatus, RunRecord
from tests.integration.cli.support import STAGE, Invoke, Platform

CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")


@pytest.fixture(autouse=True)
def _chromium_installed() -> None:
    # `make test` installs it (`make browser`); a missing browser is a failure, never a skip.
    if CHROMIUM is None:
        pytest.fail("needs Chromium: run `make browser` (apt-get install chromium-headless-shell)")


def _dom(url: str, budget_ms: int = 0) -> str:
    assert CHROMIUM is not None
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"]
    if budget_ms:
        args.append(f"--virtual-time-budget={budget_ms}")
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


async def _stage_with_traffic(platform: Platform) -> None:
    ledger = platform.ledger
    for n, to in ((1, FileStatus.COMPLETED), (2, FileStatus.COMPLETED), (3, FileStatus.FAILED)):
        file_id = f"{n:032x}"
        await ledger.register_file(
            FileRecord(
                file_id=file_id,
                dataset="orders",
                bucket="it-raw",
                key=f"orders/{n}.csv",
                size_bytes=1000 * n,
            )
        )
        if to is FileStatus.COMPLETED:
            for step, prev in (
                (FileStatus.VALIDATING, FileStatus.PENDING),
                (FileStatus.TRANSFORMING, FileStatus.VALIDATING),
                (FileStatus.WRITING, FileStatus.TRANSFORMING),
                (FileStatus.COMPLETED, FileStatus.WRITING),
            ):
                await ledger.transition(file_id, step, expected=[prev])
        else:
            await ledger.transition(
                file_id, to, expected=[FileStatus.PENDING], error_code="bad_row_ratio_exceeded"
            )
    await ledger.put_run(RunRecord(run_id="run-page-1", status="RUNNING", files=2))
    platform.client("sqs").send_message(
        QueueUrl=platform.dlq_urls["validate"], MessageBody="parked"
    )


@pytest.fixture
def page(platform: Platform) -> Iterator[StatusPageServer]:
    reader = LedgerReader(platform.client("dynamodb"), platform.names["ledger_table"])
    sqs = platform.client("sqs")

    def snapshot() -> Snapshot:
        return collect(stage=STAGE, ledger=reader, sqs=sqs, window=timedelta(hours=1))

    server = StatusPageServer(snapshot, "127.0.0.1", 0)
    server.serve_in_thread()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def test_status_page_shows_counts_runs_dlq_and_throughput(
    platform: Platform, page: StatusPageServer
) -> None:
    await _stage_with_traffic(platform)

    dom = _dom(page.url)

    completed = re.search(r'data-status="COMPLETED"><b>(\d+)</b>', dom)
    failed = re.search(r'data-status="FAILED"><b>(\d+)</b>', dom)
    assert completed is not None
    assert completed.group(1) == "2"
    assert failed is not None
    assert failed.group(1) == "1"
    assert re.search(r'data-queue="sluice-it-validate-dlq">1<', dom)
    assert re.search(r'data-queue="sluice-it-ingest-dlq">0<', dom)
    assert "run-page-1" in dom
    assert f"{3:032x}" in dom
    assert "bad_row_ratio_exceeded" in dom
    bars = [int(n) for n in re.findall(r'data-files="(\d+)"', dom)]
    assert len(bars) == 12
    assert sum(bars) == 2


async def test_status_page_refreshes_from_api(platform: Platform, page: StatusPageServer) -> None:
    # GIVEN the page loaded with an empty stage, THEN traffic arrives before the refresh
    calls = 0
    original = page.snapshot

    def changing() -> Snapshot:
        nonlocal calls
        calls += 1
        snapshot = original()
        if calls > 1:
            snapshot.recent.append({"file_id": "arrived-later", "status": "PENDING"})
        return snapshot

    page.snapshot = changing

    dom = _dom(page.url, budget_ms=8000)

    assert calls >= 2
    assert "arrived-later" in dom


def test_status_serve_option_rejects_busy_port(platform: Platform, sluice: Invoke) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = sluice("status", "--serve", "--port", str(port))

    assert result.exit_code == 2
    assert "cannot listen" in result.stderr
