"""The CI-sized load test: a few users for a few seconds against a fresh `sluice local up`, then
drain, reconcile and report — it must reconcile (nothing lost, nothing duplicated).

Runs `python -m loadtests.run` in a subprocess: Locust monkey-patches the process it runs in
(gevent), which the rest of the test session must not inherit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_loadtest_mixed_profile_few_users_reconciles_every_file_and_event(tmp_path: Path) -> None:
    out = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_LOADTEST_")}
    command = [
        sys.executable,
        "-m",
        "loadtests.run",
        "--port",
        str(free_port()),
        "--state-dir",
        str(tmp_path / "state"),
        "--profile",
        "mixed",
        "--users",
        "3",
        "--spawn-rate",
        "3",
        "--duration",
        "6",
        "--event-rate",
        "2",
        "--rows",
        "10",
        "--drain-timeout",
        "240",
        "--out",
        str(out),
    ]
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=540, check=False
    )

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    doc = json.loads((out / "report.json").read_text())
    assert doc["ok"] is True
    assert doc["problems"] == []
    events, files = doc["events"], doc["files"]
    assert events["published"] > 0
    assert events["delivered_unique"] == events["published"]
    assert (events["lost"], events["duplicated"], events["unexpected"]) == (0, 0, 0)
    assert files["uploaded"] > 0
    assert files["completed"] == files["uploaded"]
    assert (files["missing"], files["duplicated"], files["not_terminal"]) == (0, 0, 0)
    assert files["rows_in"] == files["rows_out"] + files["rows_quarantined"]
    assert files["latency_s"]["p95"] is not None
    assert {r["name"] for r in doc["requests"]} >= {"PutEvents", "Aggregated"}
    assert doc["timeline"]["samples"], "queue depth and request rate were sampled"
    assert (out / "report.png").stat().st_size > 10_000
    assert "PASS" in (out / "report.md").read_text()
