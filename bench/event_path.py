"""Event-path benchmark: small files/s and custom events/s through the whole local suite.

    .venv/bin/python -m bench.event_path          # fresh runtime, 200 files, 5,000 events
    .venv/bin/python -m bench.event_path --files 400 --rows 20 --events 0
    .venv/bin/python -m bench.event_path --port 4566 --reuse    # a runtime you started

Each run starts its own `sluice local up --detach` on a free port (fresh state: an empty ledger and
empty queues) unless `--reuse`. Then:

- **files**: uploads `--files` generated files (`--rows` rows each, alternating the two datasets)
  from `--threads` threads as fast as the endpoint takes them, and follows the ledger until every
  file is terminal. Reports files/s (completed ÷ first upload → last completion), end-to-end
  latency p50/p95 (PUT → ledger COMPLETED) and the time per hop from the ledger history.
- **events**: publishes `--events` custom envelopes (PutEvents, 10 per call) from `--threads`
  threads to the custom bus, with a rule sending them to a sink queue; reports events/s accepted
  by the bus, then drains the sink and counts lost and duplicated ids.

The local runtime's overhead is separated from the handlers' own time two ways:
- per function, from the `REPORT` lines of the phase: invocations, cold starts, Init Duration,
  handler Duration per message — against the hop's wall time (the rest is polling, batching
  window, queueing and invoke overhead);
- CPU seconds per file of the runtime process (endpoint, moto, pollers, runner) versus the worker
  processes (the handlers), from psutil.

Writes `bench/out/event_path-<time>.json` (and `.png`: per-hop latency against handler time)
and prints a markdown table; `--write` also puts the figures of record (date, tree, load, a
`figure | value` table) in the `latest` section of bench/RESULTS-events.md, which README's
event figures are generated from (`make docs-figures`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from bench import sections
from loadtests import report as rpt
from loadtests.events import (
    EventFactory,
    create_sink,
    delete_sink,
    drain_sink,
    entry_id,
    reconcile_events,
)
from loadtests.files import DATASETS, body, file_steps, raw_key, uploaded_file_id, wait_files
from loadtests.local import machine, stop_local_runtime
from loadtests.target import Target

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = REPO_ROOT / "bench" / "out"
RESULTS = REPO_ROOT / "bench" / "RESULTS-events.md"
FUNCTIONS = ("ingest", "validate", "transform", "output")
_REPORT = re.compile(r"REPORT RequestId: \S+\tDuration: (?P<duration>[\d.]+) ms")
_INIT = re.compile(r"\tInit Duration: (?P<init>[\d.]+) ms")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def report_lines(log: Path, offset: int) -> tuple[list[tuple[float, float | None]], int]:
    """(Duration ms, Init Duration ms or None) of every REPORT line after byte `offset`; and the
    new end offset."""
    if not log.exists():
        return [], 0
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", errors="replace")
        end = handle.tell()
    found = []
    for line in text.splitlines():
        if line.startswith("REPORT "):
            match = _REPORT.match(line)
            if match:
                init = _INIT.search(line)
                found.append(
                    (float(match.group("duration")), float(init.group("init")) if init else None)
                )
    return found, end


class Runtime:
    """A `sluice local up --detach` of this benchmark (or an existing one with `reuse`)."""

    def __init__(self, port: int, state_dir: Path, max_concurrency: int, reuse: bool) -> None:
        self.port = port
        self.state_dir = state_dir
        self.pid: int | None = None
        self.reuse = reuse
        self.max_concurrency = max_concurrency

    def __enter__(self) -> Runtime:
        from sluice.commands.local import running, start_detached

        if self.reuse:
            health = running(self.port)
            if not health:
                raise SystemExit(f"no sluice local runtime on port {self.port}")
            self.pid = int(health["pid"])
            state = _state(self.port)
            self.state_dir = Path(state.get("state_dir") or self.state_dir)
            return self
        args = ["--stage", "dev", "local", "up", "--port", str(self.port)]
        args += ["--state-dir", str(self.state_dir), "--no-schedules"]
        args += ["--max-concurrency", str(self.max_concurrency)]
        self.pid = start_detached(args, self.state_dir, self.port, timeout=180.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.reuse or self.pid is None:
            return
        stop_local_runtime(self.port, self.pid)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: `runtime` (the runtime process), `workers` (its children) and
        `worker:<function>` (the live workers of each function, by their
        AWS_LAMBDA_FUNCTION_NAME; a worker that already exited counts in `workers` only)."""
        assert self.pid is not None
        proc = psutil.Process(self.pid)
        times = proc.cpu_times()
        workers = 0.0
        by_function = dict.fromkeys((f"worker:{f}" for f in FUNCTIONS), 0.0)
        for child in proc.children(recursive=True):
            try:
                t = child.cpu_times()
                name = child.environ().get("AWS_LAMBDA_FUNCTION_NAME", "")
            except psutil.Error:
                continue
            workers += t.user + t.system
            function = f"worker:{name.rsplit('-', 1)[-1]}"
            if function in by_function:
                by_function[function] += t.user + t.system
        # Children that already exited (cold workers killed) are in children_user/system.
        workers += times.children_user + times.children_system
        return {"runtime": times.user + times.system, "workers": workers, **by_function}

    def logs(self) -> dict[str, Path]:
        """Function log file by short name."""
        return {f: self.state_dir / "logs" / f"sluice-dev-{f}.log" for f in FUNCTIONS}


def _state(port: int) -> dict[str, Any]:
    from sluice.commands.local import _call

    doc = _call(port, "state")
    return doc if isinstance(doc, dict) else {}


def files_phase(args: argparse.Namespace, target: Target, runtime: Runtime) -> dict[str, Any]:
    """Upload the files, follow them to terminal, and measure (see the module docstring)."""
    names = target.names()
    s3, dynamodb = target.client("s3"), target.client("dynamodb")
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    bodies = [body(d, args.rows, bad_ratio=0.05, seed=1) for d in DATASETS]
    offsets = {f: (p.stat().st_size if p.exists() else 0) for f, p in runtime.logs().items()}
    cpu_before = runtime.cpu()
    state_before = _state(runtime.port)
    requests_before = int(state_before.get("requests", 0))
    actions_before: dict[str, int] = dict(state_before.get("requests_by_action") or {})
    callers_before = caller_totals(state_before)
    uploads: list[dict[str, Any]] = []

    def put(n: int) -> dict[str, Any]:
        made = bodies[n % len(bodies)]
        key = raw_key(made.dataset, run_id, f"f{n:06d}")
        started = time.time()
        response = s3.put_object(Bucket=names["raw_bucket"], Key=key, Body=made.data)
        file_id = uploaded_file_id(names["raw_bucket"], key, response)
        return {"key": key, "started_at": started, "truth": made.truth, "file_id": file_id}

    began = time.time()
    with ThreadPoolExecutor(args.threads) as pool:
        uploads = list(pool.map(put, range(args.files)))
    uploaded_in = time.time() - began
    by_id = wait_files(
        dynamodb, names["ledger_table"], [u["file_id"] for u in uploads], timeout_s=args.timeout
    )
    records = {str(r["key"]): [r] for r in by_id.values()}
    cpu_after = runtime.cpu()
    state_after = _state(runtime.port)
    requests = int(state_after.get("requests", 0)) - requests_before
    actions = {
        action: count - actions_before.get(action, 0)
        for action, count in (state_after.get("requests_by_action") or {}).items()
        if count > actions_before.get(action, 0)
    }
    latencies = rpt.file_latencies(uploads, records)
    completed = len(latencies)
    callers = {
        who: {a: n - callers_before.get(who, {}).get(a, 0) for a, n in counts.items()}
        for who, counts in caller_totals(state_after).items()
    }
    first = min(u["started_at"] for u in uploads)
    last = max((d for d, _ in latencies), default=first)
    steps = {
        key: file_steps(dynamodb, names["ledger_table"], str(recs[0]["file_id"]))
        for key, recs in records.items()
        if recs
    }
    hops = rpt.hop_latencies(uploads, steps)
    functions = {}
    for name, path in runtime.logs().items():
        lines, _ = report_lines(path, offsets[name])
        durations = [d for d, _ in lines]
        inits = [i for _, i in lines if i is not None]
        functions[name] = {
            "invocations": len(lines),
            "cold_starts": len(inits),
            "init_ms_total": round(sum(inits), 1),
            "handler_ms_total": round(sum(durations), 1),
            "handler_ms_per_file": round(sum(durations) / max(completed, 1), 1),
            "files_per_invocation": round(completed / max(len(lines), 1), 2),
        }
    statuses: dict[str, int] = {}
    for recs in records.values():
        status = str(recs[0].get("status"))
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "files": args.files,
        "rows_per_file": args.rows,
        "uploaded_in_s": round(uploaded_in, 2),
        "statuses": statuses,
        "completed": completed,
        "files_per_s": round(completed / max(last - first, 1e-9), 2),
        "latency_s": rpt.summary([lat for _, lat in latencies]),
        "hops": {name: rpt.summary(values) for name, values in hops.items()},
        "functions": functions,
        "endpoint_requests_per_file": round(requests / max(completed, 1), 1),
        "endpoint_requests_per_file_by_action": {
            action: round(count / max(completed, 1), 2)
            for action, count in sorted(actions.items(), key=lambda kv: -kv[1])
        },
        "endpoint_requests_per_file_by_caller": {
            who: round(sum(counts.values()) / max(completed, 1), 2)
            for who, counts in sorted(callers.items())
            if sum(counts.values()) > 0
        },
        "pipeline_requests_per_file": pipeline_requests(callers, completed),
        "cpu_s_per_file": {
            k: round((cpu_after[k] - cpu_before[k]) / max(completed, 1), 4) for k in cpu_after
        },
    }


def caller_totals(state: dict[str, Any]) -> dict[str, dict[str, int]]:
    """`requests_by_caller` of the runtime's state, with each function's role named by its
    function (`sluice-dev-…-validate` → `validate`); other callers keep their label (`root`: this
    harness, the producer of the files)."""
    totals: dict[str, dict[str, int]] = {}
    for who, counts in (state.get("requests_by_caller") or {}).items():
        name = next((f for f in FUNCTIONS if who.endswith(f"-{f}")), str(who))
        merged = totals.setdefault(name, {})
        for action, n in dict(counts).items():
            merged[action] = merged.get(action, 0) + int(n)
    return totals


def pipeline_requests(callers: dict[str, dict[str, int]], completed: int) -> float | None:
    """Requests per file the pipeline makes: the four functions' own, plus the producer's one
    upload. Not the harness's polling of the ledger (`root`'s other requests), which is the
    benchmark following its files. None when the runtime did not tell callers apart (IAM
    enforcement off: every caller is `-`)."""
    if not any(f in callers for f in FUNCTIONS):
        return None
    functions = sum(sum(callers.get(f, {}).values()) for f in FUNCTIONS)
    uploads = callers.get("root", {}).get("s3.PUT", 0)
    return round((functions + uploads) / max(completed, 1), 2)


def events_phase(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """Publish custom events, measure acceptance, drain the sink and count loss/duplicates."""
    names = target.names()
    sqs, events = target.client("sqs"), target.client("events")
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    sink = create_sink(sqs, events, bus_name=names["event_bus"], stage=target.stage, run_id=run_id)
    try:
        calls = (args.events + 9) // 10

        def publish(worker: int) -> tuple[list[str], int]:
            factory = EventFactory(run_id, prefix=f"w{worker}-")
            accepted: list[str] = []
            rejected = 0
            for _ in range(worker, calls, args.threads):
                entries = factory.entries(names["event_bus"], 10)
                response = events.put_events(Entries=entries)
                for entry, result in zip(entries, response["Entries"], strict=True):
                    if result.get("EventId") and not result.get("ErrorCode"):
                        accepted.append(entry_id(entry))
                    else:
                        rejected += 1
            return accepted, rejected

        began = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            results = list(pool.map(publish, range(args.threads)))
        elapsed = time.perf_counter() - began
        accepted = {i for ids, _ in results for i in ids}
        rejected = sum(r for _, r in results)
        delivery = drain_sink(sqs, sink.queue_url, expected=len(accepted), timeout_s=args.timeout)
        verdict = reconcile_events(accepted, delivery)
    finally:
        delete_sink(sqs, events, sink)
    return {
        "events": args.events,
        "accepted": len(accepted),
        "rejected": rejected,
        "publish_s": round(elapsed, 2),
        "accepted_per_s": round(len(accepted) / elapsed, 1),
        "lost": len(verdict.lost),
        "duplicated": len(verdict.duplicated),
        "unexpected": len(verdict.unexpected),
        "delivery_latency_s": rpt.summary(delivery.latencies_s),
    }


def markdown(doc: dict[str, Any]) -> str:
    """The result as a short markdown section."""
    out = [f"### {doc['label']} — {doc['when']}", "", f"Machine: {doc['machine']}", ""]
    files = doc.get("files")
    if files:
        lat = files["latency_s"]
        out += [
            f"Files: {files['completed']}/{files['files']} of {files['rows_per_file']} rows, "
            f"**{files['files_per_s']} files/s**, end-to-end p50 {lat['p50']:.2f} s, "
            f"**p95 {lat['p95']:.2f} s**, statuses {files['statuses']}; CPU s per file: runtime "
            f"{files['cpu_s_per_file']['runtime']}, workers {files['cpu_s_per_file']['workers']}; "
            f"endpoint requests per file {files['endpoint_requests_per_file']} (incl. polls)",
            "",
            "Endpoint requests per file by action: "
            + ", ".join(
                f"{action} {count}"
                for action, count in files.get("endpoint_requests_per_file_by_action", {}).items()
            ),
            "",
            "| hop | p50 s | p95 s | function | invocations | cold | handler ms/file |",
            "|---|---:|---:|---|---:|---:|---:|",
        ]
        for hop, stats in files["hops"].items():
            fn = files["functions"].get(hop, {})
            out.append(
                f"| {hop} | {_f(stats['p50'])} | {_f(stats['p95'])} | {hop if fn else '-'} | "
                f"{fn.get('invocations', '-')} | {fn.get('cold_starts', '-')} | "
                f"{fn.get('handler_ms_per_file', '-')} |"
            )
        out.append("")
    events = doc.get("events")
    if events:
        lat = events["delivery_latency_s"]
        out += [
            f"Events: {events['accepted']}/{events['events']} accepted in {events['publish_s']} s"
            f" = **{events['accepted_per_s']} events/s**; lost {events['lost']}, duplicated "
            f"{events['duplicated']}, unexpected {events['unexpected']}; publish → sink p50 "
            f"{_f(lat['p50'])} s, p95 {_f(lat['p95'])} s",
            "",
        ]
    return "\n".join(out)


def figures_of_record(doc: dict[str, Any], command: str) -> str:
    """The `latest` section of RESULTS-events.md: provenance and one row per figure."""
    lines = [
        f"- date: {doc['when'][:16]} UTC",
        f"- tree: {doc['tree']}",
        f"- load: before {_load(doc['load_average'])}; after {_load(doc['load_average_after'])}"
        f" on {os.cpu_count()} CPUs",
        f"- command: {command}",
        f"- machine: {doc['machine']}",
        "",
        "| figure | value |",
        "|---|---:|",
    ]
    files = doc.get("files")
    if files:
        cpu = files["cpu_s_per_file"]
        by_action = files.get("endpoint_requests_per_file_by_action", {})
        handler = ", ".join(
            f"{name} {fn['handler_ms_per_file']:.0f}" for name, fn in files["functions"].items()
        )
        by_function = ", ".join(
            f"{name} {cpu.get(f'worker:{name}', 0.0) * 1000:.0f}" for name in FUNCTIONS
        )
        lines += [
            f"| files | {files['files']} |",
            f"| files completed | {files['completed']} |",
            f"| rows per file | {files['rows_per_file']} |",
            f"| small files/s | {files['files_per_s']:.2f} |",
            f"| end-to-end p50 / p95 s | {_f(files['latency_s']['p50'])} / "
            f"{_f(files['latency_s']['p95'])} |",
            f"| CPU-s per file | {cpu['runtime'] + cpu['workers']:.3f} |",
            f"| runtime CPU-s per file | {cpu['runtime']:.3f} |",
            f"| functions CPU-s per file | {cpu['workers']:.3f} |",
            f"| endpoint requests per file | {files['endpoint_requests_per_file']:.1f} |",
        ]
        by_caller = files.get("endpoint_requests_per_file_by_caller") or {}
        if files.get("pipeline_requests_per_file") is not None:
            lines += [
                f"| pipeline requests per file | {files['pipeline_requests_per_file']:.2f} |",
                "| requests per file by caller | "
                + ", ".join(f"{who} {count:g}" for who, count in by_caller.items())
                + " |",
            ]
        lines += [
            "| requests per file by action | "
            + ", ".join(f"{_action(action)} {count:g}" for action, count in by_action.items())
            + " |",
            f"| handler ms per file | {handler} |",
            f"| worker CPU ms per file by function | {by_function} |",
        ]
    events = doc.get("events")
    if events:
        lines += [
            f"| custom events/s | {events['accepted_per_s']:,.0f} |",
            f"| events lost | {events['lost']} |",
            f"| events duplicated | {events['duplicated']} |",
            f"| publish → sink p95 s | {_f(events['delivery_latency_s']['p95'])} |",
        ]
    return "\n".join(lines)


def _action(name: str) -> str:
    """`DynamoDB_20120810.GetItem` → `GetItem`, `AWSEvents.PutEvents` → `PutEvents`; S3's
    `s3.PUT` stays as it is (its action is the HTTP method)."""
    return name if name.startswith("s3.") else name.rsplit(".", 1)[-1]


def _load(values: Any) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def plot(doc: dict[str, Any], path: Path) -> Path:
    """Per hop: p50 and p95 wall time against the handler's own time per file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = doc["files"]
    hops = list(files["hops"])
    p50 = [files["hops"][h]["p50"] or 0 for h in hops]
    p95 = [files["hops"][h]["p95"] or 0 for h in hops]
    handler = [files["functions"].get(h, {}).get("handler_ms_per_file", 0) / 1000 for h in hops]
    x = range(len(hops))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar([i - 0.27 for i in x], p50, width=0.27, label="hop p50 s")
    ax.bar(list(x), p95, width=0.27, label="hop p95 s")
    ax.bar([i + 0.27 for i in x], handler, width=0.27, label="handler s per file")
    ax.set_xticks(list(x), hops)
    ax.set_ylabel("seconds")
    ax.set_title(f"{doc['label']}: {files['files_per_s']} files/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 1 when an event was lost/duplicated or a file not terminal."""
    p = argparse.ArgumentParser(prog="python -m bench.event_path", description=__doc__)
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--rows", type=int, default=20)
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--port", type=int, default=0, help="0: a free port")
    p.add_argument("--reuse", action="store_true", help="use the runtime already on --port")
    p.add_argument("--max-concurrency", type=int, default=2)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--label", default="event path")
    p.add_argument(
        "--write", action="store_true", help="put the figures in bench/RESULTS-events.md (latest)"
    )
    args = p.parse_args(argv)
    command = "`python -m bench.event_path " + " ".join(argv or sys.argv[1:]) + "`"
    port = args.port or free_port()
    with (
        tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp,
        Runtime(port, Path(tmp), args.max_concurrency, args.reuse) as runtime,
    ):
        target = Target(endpoint_url=f"http://127.0.0.1:{port}")
        doc: dict[str, Any] = {
            "label": args.label,
            "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "machine": machine(),
            "load_average": os.getloadavg(),
            "tree": sections.tree(),
            "args": vars(args),
        }
        if args.files:
            doc["files"] = files_phase(args, target, runtime)
        if args.events:
            doc["events"] = events_phase(args, target)
        doc["load_average_after"] = os.getloadavg()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"event_path-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    if "files" in doc:
        plot(doc, path.with_suffix(".png"))
    print(markdown(doc))
    print(f"load average before/after: {doc['load_average']} / {doc['load_average_after']}")
    print(f"written: {path}")
    if args.write:
        sections.replace_section(RESULTS, "latest", figures_of_record(doc, command))
        print(f"written: {RESULTS.relative_to(REPO_ROOT)} (latest)")
    bad = doc.get("events", {}).get("lost") or doc.get("events", {}).get("duplicated")
    not_done = doc.get("files", {}).get("completed", 0) < args.files
    return 1 if bad or not_done else 0


if __name__ == "__main__":
    sys.exit(main())
