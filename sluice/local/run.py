"""`sluice local run`: upload files to the raw bucket, follow each in the ledger to a terminal
state, and summarise (rows in/out/quarantined, end-to-end latency, p50/p95).

A sample may sit next to a `<name>.truth.json` with the expected outcome (`status`, `rows_in`,
`rows_out`, `rows_quarantined`, any subset); when present the file is checked against it,
otherwise it must reach `COMPLETED`. Every file must reconcile: `rows_in = rows_out +
rows_quarantined`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluice.ops.metrics import MetricsSummary

TERMINAL = frozenset({"COMPLETED", "FAILED", "QUARANTINED"})


@dataclass
class FileRun:
    """One uploaded file and what the ledger says about it."""

    path: Path
    dataset: str
    key: str
    file_id: str = ""
    uploaded_at: float = 0.0
    status: str = "UPLOADING"
    rows_in: int | None = None
    rows_out: int | None = None
    rows_quarantined: int | None = None
    error: str = ""
    latency_s: float | None = None
    expected: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """Reached COMPLETED, FAILED or QUARANTINED."""
        return self.status in TERMINAL

    def problems(self) -> list[str]:
        """Why this file does not pass (empty when it does)."""
        found = []
        want_status = str(self.expected.get("status", "COMPLETED"))
        if self.status != want_status:
            found.append(f"status {self.status}, expected {want_status}")
        for name in ("rows_in", "rows_out", "rows_quarantined"):
            if name in self.expected and getattr(self, name) != self.expected[name]:
                found.append(f"{name} {getattr(self, name)}, expected {self.expected[name]}")
        if self.status == "COMPLETED" and not reconciles(
            self.rows_in, self.rows_out, self.rows_quarantined
        ):
            found.append(
                f"rows do not reconcile: {self.rows_in} != {self.rows_out} + "
                f"{self.rows_quarantined}"
            )
        return found


def reconciles(rows_in: int | None, rows_out: int | None, rows_quarantined: int | None) -> bool:
    """`rows_in == rows_out + rows_quarantined`, all three known."""
    if rows_in is None or rows_out is None or rows_quarantined is None:
        return False
    return rows_in == rows_out + rows_quarantined


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def sample_files(samples_dir: Path) -> list[tuple[Path, str, str]]:
    """Every sample under `samples/<dataset>/` except `*.truth.json`: (path, dataset, key)."""
    found = []
    for dataset_dir in sorted(p for p in samples_dir.iterdir() if p.is_dir()):
        for path in sorted(dataset_dir.rglob("*")):
            if path.is_file() and not path.name.endswith(".truth.json"):
                rel = path.relative_to(dataset_dir).as_posix()
                found.append((path, dataset_dir.name, f"{dataset_dir.name}/{rel}"))
    return found


def expected_outcome(path: Path) -> dict[str, Any]:
    """The expected outcome from the `<file>.truth.json` (or `<stem>.truth.json`) next to a sample.

    Understands both the outcome keys themselves (`status`, `rows_in`, `rows_out`,
    `rows_quarantined`) and the sample generator's ground truth (`rows_total`,
    `expected_good_keys`, `rows_bad` by reason, `rows_duplicate`). Empty when there is none.
    """
    for candidate in (
        path.with_name(path.name + ".truth.json"),
        path.with_name(path.stem + ".truth.json"),
    ):
        if candidate.is_file():
            doc = json.loads(candidate.read_text(encoding="utf-8"))
            return _normalize_truth(doc) if isinstance(doc, dict) else {}
    return {}


def _normalize_truth(doc: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "rows_in", "rows_out", "rows_quarantined")
    out: dict[str, Any] = {k: doc[k] for k in keys if k in doc}
    if "rows_total" in doc:
        out.setdefault("rows_in", int(doc["rows_total"]))
    if "expected_good_keys" in doc:
        out.setdefault("rows_out", int(doc["expected_good_keys"]))
    bad = doc.get("rows_bad")
    if isinstance(bad, dict) and "rows_duplicate" in doc:
        quarantined = sum(int(v) for v in bad.values()) + int(doc["rows_duplicate"])
        out.setdefault("rows_quarantined", quarantined)
    return out


def update_from_item(run: FileRun, item: dict[str, Any], now: float) -> None:
    """Copy a ledger META item (DynamoDB attribute-value form) into `run`."""

    def value(name: str) -> Any:
        attr = item.get(name)
        if not attr:
            return None
        if "N" in attr:
            return int(float(attr["N"]))
        if "S" in attr:
            return attr["S"]
        return None

    run.status = str(value("status") or run.status)
    run.rows_in = value("rows_in")
    run.rows_out = value("rows_out")
    run.rows_quarantined = value("rows_quarantined")
    run.error = str(value("error") or value("error_code") or "")
    if run.terminal and run.latency_s is None:
        finished = now
        updated = value("updated_at")
        if isinstance(updated, str):
            try:
                finished = datetime.fromisoformat(updated.replace("Z", "+00:00")).timestamp()
            except ValueError:
                finished = now
        run.latency_s = max(0.0, finished - run.uploaded_at)


def summary_table(runs: list[FileRun]) -> str:
    """The human summary: one row per file, then totals with p50/p95 latency."""
    header = ("file", "dataset", "status", "rows in", "out", "quarantined", "latency s")
    rows = [
        (
            r.key,
            r.dataset,
            r.status,
            _n(r.rows_in),
            _n(r.rows_out),
            _n(r.rows_quarantined),
            "-" if r.latency_s is None else f"{r.latency_s:.2f}",
        )
        for r in runs
    ]
    latencies = [r.latency_s for r in runs if r.latency_s is not None]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    totals = (
        f"{len(runs)} files",
        "",
        f"{sum(r.status == 'COMPLETED' for r in runs)} completed",
        str(sum(r.rows_in or 0 for r in runs)),
        str(sum(r.rows_out or 0 for r in runs)),
        str(sum(r.rows_quarantined or 0 for r in runs)),
        "",
    )
    widths = [max(len(str(x[i])) for x in [header, *rows, totals]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(header), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)]
    out.append(line(tuple("-" * w for w in widths)))
    out.append(line(totals))
    out.append(
        "end-to-end latency: "
        + (f"p50 {p50:.2f} s, p95 {p95:.2f} s" if p50 is not None and p95 is not None else "n/a")
    )
    return "\n".join(out)


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def progress_line(runs: list[FileRun], started: float) -> str:
    """One line: how many files are in which status."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items()))
    return f"[{time.monotonic() - started:6.1f}s] {parts}"


def collect_run_metrics(
    state_dir: Path,
    since_ms: int,
    completed: int,
    *,
    wait_s: float = 3.0,
    poll_s: float = 0.25,
) -> MetricsSummary:
    """The EMF metrics the functions wrote to `<state_dir>/logs/` since `since_ms`.

    A function flushes its metrics when its invocation returns, just after the ledger says the
    file is done, so this waits up to `wait_s` for an end-to-end latency per `completed` file.
    Returns an empty summary when there are no logs.
    """
    from sluice.ops.metrics import read_emf_logs, summarize

    deadline = time.monotonic() + wait_s
    while True:
        points = read_emf_logs(state_dir, since_ms=since_ms) if state_dir.exists() else []
        summary = summarize(points)
        if summary.end_to_end.count >= completed or time.monotonic() >= deadline:
            return summary
        time.sleep(poll_s)


CRASH_LOOP_ERRORS = 3
"""Invocation errors of one function during a run from which `local run` calls it a crash loop."""


@dataclass
class LiveWatch:
    """What went wrong since the last look, as lines `local run` prints while it follows files:
    function errors (with the function's log), messages a batch failed and their redeliveries,
    messages parked in a DLQ, and — once per function — a crash loop with the log's last error.

    Feed it the runtime's state (`/_sluice/state`) and the DLQ depths; the first call sets the
    baseline (what happened before the run is not reported).
    """

    logs_dir: Path
    crash_loop: int = CRASH_LOOP_ERRORS
    _errors: dict[str, int] | None = None
    _pollers: dict[str, tuple[int, int]] = field(default_factory=dict)
    _dlqs: dict[str, int] = field(default_factory=dict)
    _run_errors: dict[str, int] = field(default_factory=dict)
    _flagged: set[str] = field(default_factory=set)

    def log_of(self, function: str) -> Path:
        """The runner's log of `function`."""
        return self.logs_dir / f"{function}.log"

    def update(self, state: dict[str, Any], dlq_depths: dict[str, int]) -> list[str]:
        """Lines for what changed since the previous call (none on the first)."""
        errors = {n: int(f.get("errors", 0)) for n, f in (state.get("functions") or {}).items()}
        pollers = {
            f"{p['function']} {p['queue_arn']}": (
                int(p.get("failed", 0)),
                int(p.get("redelivered", 0)),
            )
            for p in state.get("pollers") or []
        }
        if self._errors is None:
            self._errors, self._pollers, self._dlqs = errors, pollers, dict(dlq_depths)
            return []
        lines: list[str] = []
        for name, count in sorted(errors.items()):
            new = count - self._errors.get(name, 0)
            if new <= 0:
                continue
            self._run_errors[name] = self._run_errors.get(name, 0) + new
            lines.append(f"error: {name} failed {new} invocation(s) (log: {self.log_of(name)})")
            if self._run_errors[name] >= self.crash_loop and name not in self._flagged:
                self._flagged.add(name)
                last = last_error_line(self.log_of(name))
                lines.append(
                    f"crash loop: {name} failed {self._run_errors[name]} invocations in this run; "
                    f"see {self.log_of(name)}" + (f" — last error: {last}" if last else "")
                )
        for key, (failed, redelivered) in sorted(pollers.items()):
            function, queue_arn = key.split(" ", 1)
            queue = queue_arn.rsplit(":", 1)[-1]
            old_failed, old_redelivered = self._pollers.get(key, (0, 0))
            if failed > old_failed:
                lines.append(
                    f"retry: {failed - old_failed} message(s) of {queue} failed in {function}; "
                    "redelivered after the visibility timeout"
                )
            if redelivered > old_redelivered:
                lines.append(
                    f"retry: {redelivered - old_redelivered} message(s) of {queue} redelivered "
                    f"to {function}"
                )
        for queue, depth in sorted(dlq_depths.items()):
            if depth > self._dlqs.get(queue, 0):
                lines.append(
                    f"parked: {depth - self._dlqs.get(queue, 0)} message(s) moved to {queue} "
                    f"(now {depth}; `sluice dlq list {queue}`)"
                )
        self._errors, self._pollers = errors, pollers
        self._dlqs.update(dlq_depths)
        return lines


def last_error_line(log: Path, scan_bytes: int = 64 * 1024) -> str:
    """The last line of a function log that is not a START/END/REPORT line ('' if none)."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - scan_bytes))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line and not line.startswith(("START ", "END ", "REPORT ", "INIT_START")):
            return line[:300]
    return ""


VISIBLE = "ApproximateNumberOfMessages"


def dlq_depths(sqs: Any, prefix: str) -> dict[str, int]:
    """Visible messages in each queue named `<prefix>…-dlq` (a boto3 SQS client)."""
    urls = sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    depths: dict[str, int] = {}
    for url in urls:
        name = url.rsplit("/", 1)[-1]
        if not name.endswith("-dlq"):
            continue
        attrs = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        depths[name] = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
    return depths
