"""The status page the local runtime serves (`/_sluice/status`), in headless Chromium: labelled
axes, the ledger's row counts, a working `why` link per file, and a visible error once the
endpoint is down. `sluice status --serve` (a stage on AWS) serves the same page."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioboto3
import aiohttp
import pytest

from sluice.context import CliContext
from sluice.local.provisioner import Limits
from sluice.local.runtime import LocalRuntime, RuntimeOptions
from sluice.ops.ledger import LedgerReader
from sluice.ops.why import explain
from sluice_shared.aws.dynamodb import DynamoDbLedger
from sluice_shared.ports import FileRecord, FileStatus
from tests.browser import Browser
from tests.integration.cli.support import Invoke, Platform
from tests.processes import free_port

REPO = Path(__file__).resolve().parents[3]
STAGE = "staging"
# (file number, end status, rows in, rows out, rows quarantined, error code)
TRAFFIC = (
    (1, FileStatus.COMPLETED, 120, 117, 3, None),
    (2, FileStatus.COMPLETED, 80, 80, 0, None),
    (3, FileStatus.QUARANTINED, 40, 0, 40, "bad_row_ratio_exceeded"),
)
_PATH = (FileStatus.VALIDATING, FileStatus.TRANSFORMING, FileStatus.WRITING, FileStatus.COMPLETED)


@pytest.fixture
async def runtime(moto_endpoint: str, tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    """A runtime with the platform only (buckets, bus, ledger, names in SSM): no functions."""
    options = RuntimeOptions(
        repo_root=REPO,
        state_dir=tmp_path / "state",
        port=free_port(),
        stage=STAGE,
        templates=[REPO / "deploy" / "platform.yaml"],
        limits=Limits(max_concurrency=1),
        schedules_enabled=False,
        prewarm=False,
    )
    rt = LocalRuntime(options)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


def _ctx(runtime: LocalRuntime) -> CliContext:
    return CliContext.build(
        endpoint_url=runtime.endpoint_url,
        profile=None,
        region="us-east-1",
        stage=STAGE,
        as_json=False,
    )


async def _traffic(runtime: LocalRuntime) -> list[str]:
    """Three files through the ledger as the stages would move them; their ids."""
    # Synchronous clients call the runtime, which serves on this very loop: off it, always.
    table = (await asyncio.to_thread(_ctx(runtime).names))["ledger_table"]
    session = aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    ids = []
    async with session.client("dynamodb", endpoint_url=runtime.endpoint_url) as client:
        ledger = DynamoDbLedger(client, table)
        for n, to, rows_in, rows_out, rows_q, error in TRAFFIC:
            file_id = f"{n:032x}"
            ids.append(file_id)
            await ledger.register_file(
                FileRecord(
                    file_id=file_id,
                    dataset="orders",
                    bucket="raw",
                    key=f"orders/{n}.csv",
                    size_bytes=1000 * n,
                )
            )
            counted: dict[str, Any] = {
                "rows_in": rows_in,
                "rows_out": rows_out,
                "rows_quarantined": rows_q,
            }
            if to is FileStatus.COMPLETED:
                previous = FileStatus.PENDING
                for step in _PATH:
                    fields = counted if step is FileStatus.COMPLETED else {}
                    await ledger.transition(file_id, step, expected=[previous], **fields)
                    previous = step
            else:
                await ledger.transition(
                    file_id, to, expected=[FileStatus.PENDING], error_code=error, **counted
                )
    return ids


async def _cells(page: Browser, table: str, key: str) -> dict[str, str]:
    """The cells of one row of a page table, by column header."""
    expression = (
        f"Object.fromEntries([...document.querySelectorAll('#{table} tr[data-key=\"{key}\"] td')]"
        ".map(td => [td.dataset.col, td.textContent]))"
    )
    cells: dict[str, str] = await page.evaluate(expression)
    return cells


async def test_runtime_status_page_axes_row_counts_and_why_links(runtime: LocalRuntime) -> None:
    # GIVEN three files in the runtime's ledger
    ids = await _traffic(runtime)
    ctx = _ctx(runtime)
    reader = LedgerReader(
        ctx.client("dynamodb"), (await asyncio.to_thread(ctx.names))["ledger_table"]
    )
    records = []
    for file_id in ids:
        detail = await asyncio.to_thread(reader.file, file_id)
        assert detail is not None
        records.append(detail.record)

    async with Browser() as page:
        # WHEN the page the runtime serves is opened
        await page.goto(runtime.status_url)

        # THEN both throughput charts have labelled axes with ticks
        for chart, unit in (("chart-files", "files per minute"), ("chart-rows", "rows per minute")):
            labels = await page.evaluate(
                f"[...document.querySelectorAll('#{chart} .axis-label')].map(t => t.textContent)"
            )
            assert labels[0].startswith("time (UTC")
            assert labels[1] == unit
            y_ticks = await page.evaluate(
                f"[...document.querySelectorAll('#{chart} .ytick')].map(t => t.textContent)"
            )
            assert len(y_ticks) == 5
            assert y_ticks[0] == "0"
            assert float(y_ticks[-1]) > 0
            x_ticks = await page.evaluate(
                f"[...document.querySelectorAll('#{chart} .xtick')].map(t => t.textContent)"
            )
            assert len(x_ticks) >= 3
            assert all(len(t) == 5 and t[2] == ":" for t in x_ticks)
        # AND the bars add up to the completed files and the rows they wrote
        completed = [r for r in records if r.status is FileStatus.COMPLETED]
        bar_files = await page.evaluate(
            "[...document.querySelectorAll('#chart-files rect')].map(r => +r.dataset.files)"
        )
        bar_rows = await page.evaluate(
            "[...document.querySelectorAll('#chart-rows rect')].map(r => +r.dataset.rows)"
        )
        assert sum(bar_files) == len(completed)
        assert sum(bar_rows) == sum(r.rows_out or 0 for r in completed)

        # AND the row counts per file and per dataset are the ledger's
        for record in records:
            cells = await _cells(page, "recent", record.file_id)
            assert cells["status"] == record.status.value
            assert cells["rows in"] == str(record.rows_in)
            assert cells["rows out"] == str(record.rows_out)
            assert cells["quarantined"] == str(record.rows_quarantined)
        dataset = await _cells(page, "datasets", "orders")
        assert dataset["files"] == str(len(records))
        assert dataset["rows in"] == str(sum(r.rows_in or 0 for r in records))
        assert dataset["rows out"] == str(sum(r.rows_out or 0 for r in records))
        assert dataset["quarantined"] == str(sum(r.rows_quarantined or 0 for r in records))

        # AND a file's link opens what `sluice why` shows for that file
        quarantined = ids[2]
        await page.evaluate(f"document.querySelector('a.why[data-file=\"{quarantined}\"]').click()")
        await page.wait_for(
            f"location.pathname.endsWith('/why/{quarantined}') && "
            "document.readyState === 'complete' && !!document.getElementById('why')"
        )
        shown = await page.evaluate("document.getElementById('why').textContent")
        report = await asyncio.to_thread(explain, ctx, quarantined, rows=10, dlq=False)
        assert shown == report[1]
        assert f"file {quarantined}  QUARANTINED" in shown
        assert "rows in/out/quarantined: 40/0/40" in shown
        command = await page.evaluate("document.getElementById('command').textContent")
        assert command == f"sluice why {quarantined}"


async def test_runtime_status_page_shows_the_error_once_the_endpoint_is_down(
    runtime: LocalRuntime,
) -> None:
    async with Browser() as page:
        # GIVEN the page loaded and refreshing from a runtime that answers
        await page.goto(runtime.status_url)
        assert await page.evaluate("document.getElementById('banner').hidden") is True

        # WHEN the runtime stops
        await runtime.stop()

        # THEN the next refresh puts the fetch error in a visible banner
        text = await page.wait_for(
            "!document.getElementById('banner').hidden && "
            "document.getElementById('banner').textContent",
            timeout=30,
        )
        assert text.startswith(f"cannot refresh from {runtime.status_url}api/status")
        assert "retrying every 5 s" in text
        # AND the page keeps retrying (each failure counted on the banner)
        await page.wait_for("+document.getElementById('banner').dataset.failures >= 2", timeout=30)
        # AND the last data stays on the page under the banner
        assert await page.evaluate("document.querySelectorAll('#chart-files rect').length") == 12


async def test_status_page_unknown_file_is_a_clear_404(runtime: LocalRuntime) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(runtime.status_url + "why/" + "f" * 32) as missing:
            assert missing.status == 404
            text = await missing.text()
        assert f"file {'f' * 32} is not in the ledger of stage {STAGE}" in text
        async with http.get(runtime.status_url + "why/<script>") as bad:
            assert bad.status == 400
        async with http.get(runtime.status_url + "api/status") as answer:
            doc = json.loads(await answer.read())
    assert doc["stage"] == STAGE
    assert doc["errors"] == []


def test_status_serve_option_rejects_busy_port(platform: Platform, sluice: Invoke) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = sluice("status", "--serve", "--port", str(port))

    assert result.exit_code == 2
    assert "cannot listen" in result.stderr
