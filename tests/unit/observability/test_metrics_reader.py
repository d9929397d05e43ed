"""Reading EMF lines back from function logs: parsing, windows, the summary, the CLI views."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from sluice.cli import cli
from sluice.local.run import collect_run_metrics
from sluice.ops.metrics import (
    MetricPoint,
    parse_emf_line,
    read_emf_logs,
    summarize,
    summary_text,
)


def emf(service: str, stamp_ms: int, **values: tuple[str, Any]) -> str:
    """One Powertools-shaped EMF line; `values` maps a metric name to (unit, value or list)."""
    doc: dict[str, Any] = {
        "_aws": {
            "Timestamp": stamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Sluice",
                    "Dimensions": [["service"]],
                    "Metrics": [{"Name": n, "Unit": u} for n, (u, _) in values.items()],
                }
            ],
        },
        "service": service,
    }
    doc.update({n: v for n, (_, v) in values.items()})
    return json.dumps(doc)


NOW_MS = int(time.time() * 1000)
REPORT = "REPORT RequestId: r1\tDuration: 10.00 ms\tBilled Duration: 10 ms\tMemory Size: 1024 MB"


def write_state_dir(root: Path, stamp_ms: int = NOW_MS) -> Path:
    logs = root / "logs"
    logs.mkdir(parents=True)
    (logs / "sluice-dev-validate.log").write_text(
        "\n".join(
            [
                "START RequestId: r1",
                '{"level":"INFO","message":"step done","correlation_id":"f1"}',
                emf("validate", stamp_ms, RowsIn=("Count", [100.0, 50.0])),
                emf("validate", stamp_ms, RowsQuarantined=("Count", [7.0, 3.0])),
                emf("validate", stamp_ms, StageLatency=("Milliseconds", [40.0, 60.0])),
                emf("validate", stamp_ms, FilesValidated=("Count", [1.0, 1.0])),
                REPORT,
                '{"_aws": broken',
            ]
        )
        + "\n"
    )
    (logs / "sluice-dev-output.log").write_text(
        emf(
            "output",
            stamp_ms,
            RowsOut=("Count", 135.0),
            EndToEndLatency=("Milliseconds", [1000.0, 3000.0]),
            FilesProcessed=("Count", [1.0, 1.0]),
            ColdStart=("Count", 1.0),
        )
        + "\n"
        + emf("transform", stamp_ms, RowsDuplicate=("Count", 5.0))
        + "\n"
    )
    return root


def test_parse_emf_line_list_values_become_one_point_each() -> None:
    line = emf("output", 1700, EndToEndLatency=("Milliseconds", [1.0, 2.5]))

    points = parse_emf_line(line, "sluice-dev-output")

    assert points == [
        MetricPoint("sluice-dev-output", "output", "EndToEndLatency", "Milliseconds", 1.0, 1700),
        MetricPoint("sluice-dev-output", "output", "EndToEndLatency", "Milliseconds", 2.5, 1700),
    ]


def test_parse_emf_line_plain_or_broken_lines_give_no_points() -> None:
    assert parse_emf_line(REPORT, "f") == []
    assert parse_emf_line('{"level":"INFO","message":"x"}', "f") == []
    assert parse_emf_line('{"_aws": {"Timestamp": 1', "f") == []


def test_read_emf_logs_window_keeps_only_newer_points(tmp_path: Path) -> None:
    write_state_dir(tmp_path / "old", stamp_ms=NOW_MS - 7_200_000)
    state = write_state_dir(tmp_path / "new")

    assert read_emf_logs(state / "logs" / "sluice-dev-output.log")
    assert len(read_emf_logs(state)) == 15
    assert len(read_emf_logs(state, since_ms=NOW_MS - 3_600_000)) == 15
    assert read_emf_logs(tmp_path / "old", since_ms=NOW_MS - 3_600_000) == []


def test_summarize_rows_reconcile_and_latency_percentiles(tmp_path: Path) -> None:
    summary = summarize(read_emf_logs(write_state_dir(tmp_path)))

    assert (summary.rows_in, summary.rows_out, summary.rows_quarantined) == (150, 135, 15)
    assert summary.cold_starts == 1
    assert summary.files == {"validate": {"Validated": 2}, "output": {"Processed": 2}}
    assert summary.stage_latency["validate"].p50_ms == 40.0
    assert summary.stage_latency["validate"].p95_ms == 60.0
    assert (summary.end_to_end.count, summary.end_to_end.p50_ms) == (2, 1000.0)
    assert summary.end_to_end.p95_ms == 3000.0


def test_summarize_percentiles_are_nearest_rank() -> None:
    points = [
        MetricPoint("f", "output", "EndToEndLatency", "Milliseconds", float(v), 0)
        for v in range(20, 0, -1)
    ]

    latency = summarize(points).end_to_end

    assert (latency.p50_ms, latency.p95_ms) == (10.0, 19.0)


def test_summary_text_names_rows_outcomes_and_latencies(tmp_path: Path) -> None:
    text = summary_text(summarize(read_emf_logs(write_state_dir(tmp_path))))

    assert "rows in 150, out 135, quarantined 15; cold starts 1" in text
    assert "files output: Processed 2" in text
    assert "p50 1,000 ms, p95 3,000 ms (n=2)" in text
    assert summary_text(summarize([])) == "metrics (EMF): none found"


def test_collect_run_metrics_waits_for_a_late_completion(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    late = emf("output", NOW_MS, EndToEndLatency=("Milliseconds", 500.0))

    def flush() -> None:
        (logs / "sluice-dev-output.log").write_text(late + "\n")

    timer = threading.Timer(0.3, flush)
    timer.start()
    try:
        summary = collect_run_metrics(tmp_path, NOW_MS - 1, completed=1, wait_s=5, poll_s=0.05)
    finally:
        timer.join()

    assert summary.end_to_end.count == 1


def test_collect_run_metrics_without_logs_is_empty(tmp_path: Path) -> None:
    summary = collect_run_metrics(tmp_path / "absent", 0, completed=3, wait_s=0)

    assert summary.points == 0


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["--endpoint-url", "http://127.0.0.1:9", *args])


def test_status_metrics_summarises_logs_without_the_network(tmp_path: Path) -> None:
    state = write_state_dir(tmp_path)

    human = invoke("status", "--metrics", "--logs", str(state), "--since", "1h")
    as_json = invoke("--json", "status", "--metrics", "--logs", str(state))

    assert human.exit_code == 0, human.output
    assert "rows in 150, out 135, quarantined 15" in human.output
    doc = json.loads(as_json.output)
    assert doc["end_to_end_latency_ms"] == {"count": 2, "p50": 1000.0, "p95": 3000.0}


def test_status_metrics_missing_logs_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("status", "--metrics", "--logs", str(tmp_path / "nope"))

    assert result.exit_code == 2
    assert "no such log file or directory" in result.output
