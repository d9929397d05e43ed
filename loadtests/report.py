"""The load-test report: figures from the journal, the ledger and the samples; markdown, JSON
and a PNG of throughput and latency over time. No Locust import (usable from unit tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sluice.local.run import percentile

if TYPE_CHECKING:
    from pathlib import Path

HOPS = (
    ("ingest", "upload", "PENDING"),
    ("to-validate", "PENDING", "VALIDATING"),
    ("validate", "VALIDATING", "TRANSFORMING"),
    ("transform", "TRANSFORMING", "WRITING"),
    ("output", "WRITING", "COMPLETED"),
)
"""(name, from, to) between two ledger steps (`upload` is the client's PUT). A hop named after a
function holds that function's work plus the delivery of its output event to the next queue and
the next poll: `ingest` = S3 notification + ingest; `to-validate` = publish + bus + queue + poll
(ingest publishes after registering); `validate`, `transform`, `output` = that stage's work and
what follows until the next stage claims the file (`output`: until COMPLETED)."""


def epoch(value: Any) -> float | None:
    """An ISO 8601 timestamp (the ledger's `created_at`/`updated_at`) as epoch seconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def summary(values: list[float]) -> dict[str, float | None]:
    """count, p50, p95, p99, max (seconds) of `values`."""
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


@dataclass
class Sample:
    """One second of the run: elapsed time, users, request rates, latency, queue depths."""

    t: float
    users: int
    rps: float
    fail_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    depths: dict[str, int] = field(default_factory=dict)


def file_latencies(
    uploads: list[dict[str, Any]], records: dict[str, list[dict[str, Any]]]
) -> list[tuple[float, float]]:
    """(completion epoch, end-to-end seconds) per COMPLETED upload: ledger `updated_at` of the
    COMPLETED item minus the moment the client started the PUT."""
    found = []
    for upload in uploads:
        for record in records.get(str(upload["key"]), []):
            if record.get("status") != "COMPLETED":
                continue
            done = epoch(record.get("updated_at"))
            if done is not None:
                found.append((done, max(0.0, done - float(upload["started_at"]))))
    return sorted(found)


def hop_latencies(
    uploads: list[dict[str, Any]], steps: dict[str, dict[str, float]]
) -> dict[str, list[float]]:
    """Seconds spent per hop (see `HOPS`), from each file's history (`steps[key][status]` = epoch
    of the first step item with that status)."""
    found: dict[str, list[float]] = {name: [] for name, _, _ in HOPS}
    for upload in uploads:
        times = dict(steps.get(str(upload["key"]), {}))
        times["upload"] = float(upload["started_at"])
        for name, start, end in HOPS:
            if start in times and end in times:
                found[name].append(max(0.0, times[end] - times[start]))
    return found


def per_second(stamps: list[float], origin: float) -> list[tuple[int, int]]:
    """(second since `origin`, how many `stamps` fall in it), for every second up to the last."""
    if not stamps:
        return []
    counts: dict[int, int] = {}
    for stamp in stamps:
        second = int(stamp - origin)
        counts[second] = counts.get(second, 0) + 1
    return [(s, counts.get(s, 0)) for s in range(0, max(counts) + 1)]


def render_markdown(doc: dict[str, Any]) -> str:
    """The human report (what `make loadtest` prints and writes as report.md)."""
    verdict = "PASS" if doc["ok"] else "FAIL"
    cfg = doc["config"]
    lines = [
        f"# Load test {doc['run_id']}: {verdict}",
        "",
        f"Target: {cfg['target']} (stage {cfg['stage']}); profile {cfg['profile']}, shape "
        f"{cfg['shape']}, {cfg['users']} users, spawn rate {cfg['spawn_rate']}/s, "
        f"{cfg['duration_s']} s. Machine: {doc['machine']}.",
        "",
        "## Requests (Locust)",
        "",
        "| name | requests | failures | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in doc["requests"]:
        lines.append(
            f"| {row['name']} | {row['requests']} | {row['failures']} | {row['rps']:.1f} | "
            f"{_ms(row['p50_ms'])} | {_ms(row['p95_ms'])} | {_ms(row['p99_ms'])} |"
        )
    ev = doc["events"]
    files = doc["files"]
    lines += [
        "",
        "## Custom events (bus → sink)",
        "",
        f"- accepted by the bus: {ev['published']} ({ev['accepted_per_s']:.1f}/s), "
        f"rejected entries: {ev['rejected']}",
        f"- delivered once: {ev['delivered_unique']}; **lost: {ev['lost']}**; "
        f"**duplicated ids: {ev['duplicated']}**; unexpected: {ev['unexpected']}; "
        f"unreadable: {ev['unreadable']}",
        f"- publish → sink latency: {_lat(ev['latency_s'])}",
        "",
        "## Files (upload → `file.processed`)",
        "",
        f"- uploaded: {files['uploaded']}; completed: {files['completed']}; other terminal: "
        f"{files['other_terminal']}; not terminal: {files['not_terminal']}; "
        f"**missing from the ledger: {files['missing']}**; **registered twice: "
        f"{files['duplicated']}**",
        f"- throughput: {files['completed_per_s']:.2f} files/s "
        "(completed ÷ first upload → last completion)",
        f"- end-to-end latency: {_lat(files['latency_s'])}",
        "- per hop: "
        + "; ".join(f"{name} {_lat(stats, short=True)}" for name, stats in files["hops"].items()),
        f"- rows in/out/quarantined: {files['rows_in']}/{files['rows_out']}/"
        f"{files['rows_quarantined']}",
        "",
        "## Queues",
        "",
        "| queue | max depth | final depth |",
        "|---|---:|---:|",
    ]
    for name, stats in doc["queues"].items():
        lines.append(f"| {name} | {stats['max']} | {stats['final']} |")
    lines += ["", f"DLQ messages at the end: {doc['dlq_total']}", ""]
    if doc["problems"]:
        lines += ["## Problems", ""] + [f"- {p}" for p in doc["problems"][:50]]
        if len(doc["problems"]) > 50:
            lines.append(f"- … and {len(doc['problems']) - 50} more (report.json)")
        lines.append("")
    if doc.get("notes"):
        lines += ["## Notes (not counted against this run)", ""]
        lines += [f"- {n}" for n in doc["notes"][:20]] + [""]
    lines.append("Plot: report.png (throughput and latency over time, queue depths).")
    return "\n".join(lines) + "\n"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _lat(stats: dict[str, Any], short: bool = False) -> str:
    if not stats or not stats.get("count"):
        return "n/a"
    text = f"p50 {stats['p50']:.2f} s, p95 {stats['p95']:.2f} s"
    return text if short else f"{text}, p99 {stats['p99']:.2f} s (n={stats['count']})"


def write_report(doc: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write report.json and report.md into `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    json_path.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    md_path.write_text(render_markdown(doc), encoding="utf-8")
    return json_path, md_path


def plot(doc: dict[str, Any], path: Path) -> Path:
    """Three panels over run time: request and completion throughput, latency, queue depths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = doc["timeline"]["samples"]
    t = [s["t"] for s in samples]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    ax1.plot(t, [s["rps"] for s in samples], label="requests/s (Locust)")
    ax1.plot(t, [s["fail_per_s"] for s in samples], label="failures/s")
    done = doc["timeline"]["files_completed_per_s"]
    if done:
        ax1.step(
            [d[0] for d in done],
            [d[1] for d in done],
            where="post",
            color="tab:purple",
            label="files completed/s",
        )
    ev = doc["timeline"]["events_accepted_per_s"]
    if ev:
        ax1b = ax1.twinx()
        ax1b.step(
            [d[0] for d in ev],
            [d[1] for d in ev],
            where="post",
            color="tab:green",
            label="events accepted/s",
        )
        ax1b.set_ylabel("events/s")
        ax1b.legend(loc="upper right")
    ax1.set_ylabel("per second")
    ax1.legend(loc="upper left")
    ax2.plot(t, [s["p95_ms"] or 0 for s in samples], label="request p95 ms")
    lat = doc["timeline"]["file_latency"]
    if lat:
        ax2b = ax2.twinx()
        ax2b.scatter(
            [x[0] for x in lat],
            [x[1] for x in lat],
            s=6,
            color="tab:red",
            label="file end-to-end s (at completion)",
        )
        ax2b.set_ylabel("end-to-end s")
        ax2b.legend(loc="upper right")
    ax2.set_ylabel("request ms")
    ax2.legend(loc="upper left")
    # The sink only fills until the drain: it would flatten every service queue's line.
    names = sorted({name for s in samples for name in s["depths"] if name != "sink"})
    for name in names:
        ax3.plot(t, [s["depths"].get(name, 0) for s in samples], label=name)
    ax3.set_ylabel("messages (service queues, DLQs)")
    ax3.set_xlabel("seconds since start")
    if names:
        ax3.legend(loc="upper right", fontsize="small")
    fig.suptitle(f"sluice load test {doc['run_id']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
