"""`python -m loadtests.run` (`make loadtest`): Locust headless against the local runtime (started
or reused) or a deployed stage, then drain, reconcile and report.

Steps: 1. make sure a runtime answers (local target: `sluice local up --detach` on `--port` unless
one runs there); 2. create this run's sink (a rule on the custom bus → an SQS queue); 3. run the
Locust users of `--profile` with the `--shape`, sampling request rates and queue depths every
second; 4. wait until every uploaded file is terminal in the ledger and the service queues are
empty; 5. drain the sink; 6. reconcile every file (`sluice.verify`: terminal, counts, manifest,
no row twice, ground truth, DLQs) and every event (received exactly once); 7. write
`report.md`, `report.json`, `report.png` under `--out`; exit 1 if anything was lost, duplicated or
failed to reconcile.

Locust is imported first: it monkey-patches the process with gevent, which must happen before
sockets and SSL are imported.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import locust  # noqa: F401  (first: gevent monkey-patching; see the module docstring)

from loadtests import report as rpt
from loadtests.events import (
    TeamEventError,
    create_sink,
    delete_sink,
    drain_sink,
    reconcile_events,
    team_events,
)
from loadtests.files import TERMINAL, file_steps, ledger_by_key, wait_files
from loadtests.local import ensure_local_runtime, machine, stop_local_runtime
from loadtests.shapes import SHAPES, make_shape
from loadtests.target import SERVICES, Target

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see `--help`)."""
    p = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__.split("\n")[0])
    p.add_argument("--profile", choices=("events", "files", "mixed"), default="mixed")
    p.add_argument("--shape", choices=SHAPES, default="steady")
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--spawn-rate", type=float, default=2.0)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    p.add_argument("--event-rate", type=float, default=2.0, help="PutEvents/s per user")
    p.add_argument("--batch", type=int, default=10, help="entries per PutEvents (1..10)")
    p.add_argument(
        "--event-example",
        type=Path,
        default=None,
        metavar="PATH",
        help="send a team's event type: a golden example <fact>/v<N>/examples/<case>.json, or a "
        "contract folder for all of its examples (validated against schema.json first)",
    )
    p.add_argument("--file-rate", type=float, default=1.0, help="uploads/s per file user")
    p.add_argument("--dataset", choices=("orders", "sensor_readings", "mixed"), default="mixed")
    p.add_argument("--rows", type=int, default=50, help="rows per uploaded file")
    p.add_argument("--bad-ratio", type=float, default=0.05)
    p.add_argument("--endpoint", default=None, help="AWS endpoint (default: the local runtime)")
    p.add_argument("--aws-profile", default=None, help="AWS profile: test a deployed stage")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--stage", default="dev")
    p.add_argument("--port", type=int, default=int(os.environ.get("SLUICE_LOCAL_PORT", "4566")))
    p.add_argument("--state-dir", default=None, help="local runtime state dir (default .sluice)")
    p.add_argument("--max-concurrency", type=int, default=2, help="local ESM concurrency cap")
    p.add_argument("--keep-runtime", action="store_true", help="leave a runtime we started up")
    p.add_argument("--drain-timeout", type=float, default=300.0)
    p.add_argument("--out", default=None, help="report folder (default loadtests/out/<run>)")
    p.add_argument("--run-id", default=None)
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------ sampling


def queue_urls(target: Target) -> dict[str, str]:
    """URL by short name (`ingest`, `ingest-dlq`, …) of every service queue and DLQ present."""
    sqs = target.client("sqs")
    urls = {}
    for service in SERVICES:
        for dlq in (False, True):
            try:
                url = sqs.get_queue_url(QueueName=target.queue_name(service, dlq))["QueueUrl"]
            except Exception:
                continue  # a stage without that service: nothing to watch
            urls[f"{service}-dlq" if dlq else service] = str(url)
    return urls


def depths(sqs: Any, urls: dict[str, str]) -> dict[str, int]:
    """Visible + in-flight messages per queue."""
    found = {}
    for name, url in urls.items():
        attrs = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        found[name] = int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
            attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
        )
    return found


class Sampler:
    """A greenlet that records a `report.Sample` every second until `stop()`."""

    def __init__(self, env: Any, target: Target, urls: dict[str, str]) -> None:
        self.env = env
        self.sqs = target.client("sqs")
        self.urls = urls
        self.samples: list[rpt.Sample] = []
        self.started = time.time()
        self._running = True
        self._greenlet: Any = None

    def start(self) -> None:
        """Begin sampling (time 0 is now)."""
        import gevent  # type: ignore[import-untyped]

        self.started = time.time()
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        import gevent

        while self._running:
            total = self.env.stats.total
            try:
                queue_depths = depths(self.sqs, self.urls)
            except Exception:
                queue_depths = {}
            runner = self.env.runner
            self.samples.append(
                rpt.Sample(
                    t=round(time.time() - self.started, 2),
                    users=runner.user_count if runner is not None else 0,
                    rps=float(total.current_rps or 0.0),
                    fail_per_s=float(total.current_fail_per_sec or 0.0),
                    p50_ms=total.get_current_response_time_percentile(0.5),
                    p95_ms=total.get_current_response_time_percentile(0.95),
                    depths=queue_depths,
                )
            )
            gevent.sleep(1.0)

    def stop(self) -> None:
        """Stop after the current sample."""
        self._running = False
        if self._greenlet is not None:
            self._greenlet.join(timeout=5)


# ------------------------------------------------------------------------------------ the run


def run_locust(
    args: argparse.Namespace, sampler_urls: dict[str, str], target: Target
) -> tuple[Any, Sampler]:
    """Run the profile's users with the shape to its end; returns (environment, sampler)."""
    import gevent
    from locust import events
    from locust.env import Environment

    from loadtests import locustfile

    shape = make_shape(
        args.shape, users=args.users, spawn_rate=args.spawn_rate, duration_s=args.duration
    )
    env = Environment(
        user_classes=locustfile.PROFILES[args.profile],
        shape_class=shape(),
        events=events,
        # Let a user finish the request in flight when the test stops: a PutEvents the bus
        # accepted but whose answer was cut off would otherwise look like an unexpected event.
        stop_timeout=30,
    )
    runner = env.create_local_runner()
    sampler = Sampler(env, target, sampler_urls)
    sampler.start()
    runner.start_shape()
    deadline = time.monotonic() + args.duration + 60
    while runner.state not in ("stopped", "quit") and time.monotonic() < deadline:
        gevent.sleep(0.5)
    runner.quit()
    return env, sampler


def request_rows(env: Any) -> list[dict[str, Any]]:
    """Locust's statistics per request name, plus the aggregate."""
    rows = []
    entries = sorted(env.stats.entries.values(), key=lambda e: (e.method, e.name))
    for entry in [*entries, env.stats.total]:
        rows.append(
            {
                "name": entry.name if entry is not env.stats.total else "Aggregated",
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "rps": float(entry.total_rps or 0.0),
                "p50_ms": entry.get_response_time_percentile(0.5) if entry.num_requests else None,
                "p95_ms": entry.get_response_time_percentile(0.95) if entry.num_requests else None,
                "p99_ms": entry.get_response_time_percentile(0.99) if entry.num_requests else None,
            }
        )
    return rows


def wait_queues_empty(sqs: Any, urls: dict[str, str], timeout_s: float) -> dict[str, int]:
    """Wait until every service queue (not the DLQs) is empty; returns the last depths."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = depths(sqs, {k: v for k, v in urls.items() if not k.endswith("-dlq")})
        if not any(current.values()) or time.monotonic() >= deadline:
            return current
        time.sleep(1.0)


def execute(args: argparse.Namespace, target: Target, run_id: str, out_dir: Path) -> int:
    """Steps 2-7 of the module docstring; returns the exit status."""
    from loadtests.journal import JOURNAL
    from sluice.generate import GroundTruth
    from sluice.verify import Names, reconcile

    names = target.names()
    sqs, events_client = target.client("sqs"), target.client("events")
    s3, dynamodb = target.client("s3"), target.client("dynamodb")
    urls = queue_urls(target)
    team = team_events(args.event_example) if args.event_example else []
    sink = create_sink(
        sqs,
        events_client,
        bus_name=names["event_bus"],
        stage=target.stage,
        run_id=run_id,
        team=team,
    )
    try:
        JOURNAL.reset(run_id)
        began = time.time()
        print(f"load: {args.profile}/{args.shape}, {args.users} users, {args.duration:.0f} s …")
        env, sampler = run_locust(args, {**urls, "sink": sink.queue_url}, target)
        load_ended = time.time()
        uploads = [u.__dict__ for u in JOURNAL.uploads]
        accepted = dict(JOURNAL.events_accepted)
        keys = {str(u["key"]) for u in uploads}
        print(f"drain: {len(keys)} files, {len(accepted)} events …")
        wait_files(
            dynamodb,
            names["ledger_table"],
            [str(u["file_id"]) for u in uploads],
            timeout_s=args.drain_timeout,
        )
        wait_queues_empty(sqs, urls, timeout_s=60.0)
        delivery = drain_sink(sqs, sink.queue_url, expected=len(accepted), timeout_s=120.0)
        sampler.stop()
        # One scan by key at the end: it also finds a key registered twice.
        records = ledger_by_key(dynamodb, names["ledger_table"], f"/loadtest/{run_id}/")
        print("reconcile …")
        verdict_events = reconcile_events(set(accepted), delivery)
        truths = {str(u["key"]): GroundTruth(**u["truth"]) for u in uploads}
        checked = reconcile(
            s3=s3,
            dynamodb=dynamodb,
            sqs=sqs,
            names=Names(
                ledger_table=names["ledger_table"],
                processed_bucket=names["processed_bucket"],
                error_bucket=names["error_bucket"],
                dlq_urls={k[: -len("-dlq")]: v for k, v in urls.items() if k.endswith("-dlq")},
            ),
            truths=truths,
        )
        doc = build_doc(
            args,
            target,
            run_id,
            began,
            load_ended,
            env,
            sampler,
            uploads,
            accepted,
            records,
            delivery,
            verdict_events,
            checked,
            dynamodb,
            names["ledger_table"],
            JOURNAL.events_failed,
        )
    finally:
        try:
            delete_sink(sqs, events_client, sink)
        except Exception as exc:
            print(f"warning: could not delete the sink {sink.rule_name}: {exc}", file=sys.stderr)
    rpt.write_report(doc, out_dir)
    rpt.plot(doc, out_dir / "report.png")
    print(rpt.render_markdown(doc))
    print(f"report: {out_dir}/report.md, report.json, report.png")
    return 0 if doc["ok"] else 1


def build_doc(
    args: argparse.Namespace,
    target: Target,
    run_id: str,
    began: float,
    load_ended: float,
    env: Any,
    sampler: Sampler,
    uploads: list[dict[str, Any]],
    accepted: dict[str, float],
    records: dict[str, list[dict[str, Any]]],
    delivery: Any,
    verdict_events: Any,
    checked: Any,
    dynamodb: Any,
    ledger_table: str,
    rejected: int,
) -> dict[str, Any]:
    """Everything the report says, as one JSON-ready dict (see `report.render_markdown`)."""
    problems: list[str] = []
    notes: list[str] = []
    keys = {str(u["key"]) for u in uploads}
    mine = {str(r["file_id"]) for key in keys for r in records.get(key, [])}
    missing = sorted(k for k in keys if not records.get(k))
    twice = sorted(k for k in keys if len(records.get(k, [])) > 1)
    statuses = [r.get("status") for key in keys for r in records.get(key, [])[:1]]
    problems += [f"{k}: uploaded but not in the ledger (lost)" for k in missing]
    problems += [f"{k}: registered {len(records[k])} times (duplicated)" for k in twice]
    for check in checked.files:
        if check.file_id in mine:
            problems += [f"{check.key}: {p}" for p in check.problems]
    for problem in checked.problems:
        (problems if any(i in problem for i in mine | keys) else notes).append(problem)
    problems += [
        f"event {i}: accepted by the bus, never delivered (lost)" for i in verdict_events.lost[:100]
    ]
    problems += [
        f"event {i}: delivered {n} times (duplicated)"
        for i, n in list(verdict_events.duplicated.items())[:100]
    ]
    if verdict_events.unexpected:
        problems.append(f"{len(verdict_events.unexpected)} delivered events were never accepted")
    if verdict_events.unreadable:
        problems.append(f"{verdict_events.unreadable} sink messages did not parse")
    dlq_mine = [d for d in checked.dlq if d.file_id in mine]
    problems += [
        f"DLQ {d.queue}: message {d.message_id} about file {d.file_id} ({d.reason_code})"
        for d in dlq_mine
    ]

    latencies = rpt.file_latencies(uploads, records)
    steps = {}
    for key in keys:
        for record in records.get(key, [])[:1]:
            steps[key] = file_steps(dynamodb, ledger_table, str(record["file_id"]))
    hops = rpt.hop_latencies(uploads, steps)
    first_upload = min((float(u["started_at"]) for u in uploads), default=began)
    last_done = max((d for d, _ in latencies), default=first_upload)
    completed = sum(1 for s in statuses if s == "COMPLETED")
    accepted_span = max(load_ended - began, 1e-9)
    file_rows = [r for key in keys for r in records.get(key, [])[:1]]

    queues: dict[str, dict[str, int]] = {}
    for sample in sampler.samples:
        for name, depth in sample.depths.items():
            q = queues.setdefault(name, {"max": 0, "final": 0})
            q["max"] = max(q["max"], depth)
            q["final"] = depth
    dlq_total = sum(q["final"] for name, q in queues.items() if name.endswith("-dlq"))
    ok = not problems and all(s in TERMINAL for s in statuses) and len(statuses) == len(keys)
    if len(statuses) != len(keys) or not all(s in TERMINAL for s in statuses):
        problems.append(
            f"{sum(1 for s in statuses if s not in TERMINAL)} files not terminal after the drain"
        )
        ok = False
    return {
        "run_id": run_id,
        "ok": ok,
        "machine": machine(),
        "config": {
            "target": target.endpoint_url or f"AWS profile {target.profile} ({target.region})",
            "stage": target.stage,
            "profile": args.profile,
            "shape": args.shape,
            "users": args.users,
            "spawn_rate": args.spawn_rate,
            "duration_s": args.duration,
            "event_rate_per_user": args.event_rate,
            "batch": args.batch,
            "file_rate_per_user": args.file_rate,
            "dataset": args.dataset,
            "rows_per_file": args.rows,
        },
        "requests": request_rows(env),
        "events": {
            "published": verdict_events.published,
            "accepted_per_s": verdict_events.published / accepted_span,
            "rejected": rejected,
            "delivered_unique": verdict_events.delivered_unique,
            "lost": len(verdict_events.lost),
            "duplicated": len(verdict_events.duplicated),
            "unexpected": len(verdict_events.unexpected),
            "unreadable": verdict_events.unreadable,
            "latency_s": rpt.summary(delivery.latencies_s),
        },
        "files": {
            "uploaded": len(keys),
            "completed": completed,
            "other_terminal": sum(1 for s in statuses if s in TERMINAL and s != "COMPLETED"),
            "not_terminal": sum(1 for s in statuses if s not in TERMINAL),
            "missing": len(missing),
            "duplicated": len(twice),
            "completed_per_s": completed / max(last_done - first_upload, 1e-9)
            if completed
            else 0.0,
            "latency_s": rpt.summary([lat for _, lat in latencies]),
            "hops": {name: rpt.summary(values) for name, values in hops.items()},
            "rows_in": sum(int(r.get("rows_in") or 0) for r in file_rows),
            "rows_out": sum(int(r.get("rows_out") or 0) for r in file_rows),
            "rows_quarantined": sum(int(r.get("rows_quarantined") or 0) for r in file_rows),
        },
        "queues": queues,
        "dlq_total": dlq_total,
        "timeline": {
            "samples": [s.__dict__ for s in sampler.samples],
            "files_completed_per_s": rpt.per_second([d for d, _ in latencies], sampler.started),
            "events_accepted_per_s": rpt.per_second(list(accepted.values()), sampler.started),
            "file_latency": [(round(d - sampler.started, 2), lat) for d, lat in latencies],
        },
        "problems": problems,
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    """Run a whole load test; returns 0 when everything reconciled, 1 otherwise, 2 on setup
    errors (no runtime, stage not provisioned)."""
    args = parse_args(argv)
    if args.event_example is not None:
        try:
            for event in team_events(args.event_example):
                print(f"event type {event.type} from {event.example}: valid")
        except TeamEventError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    run_id = args.run_id or f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    target = Target(
        endpoint_url=None
        if args.aws_profile and not args.endpoint
        else (args.endpoint or f"http://127.0.0.1:{args.port}"),
        profile=args.aws_profile,
        region=args.region,
        stage=args.stage,
    )
    # The locustfile reads its settings from the environment when imported.
    os.environ.update(target.to_env())
    os.environ.update(
        {
            "SLUICE_LOADTEST_RUN_ID": run_id,
            "SLUICE_LOADTEST_EVENT_RATE": str(args.event_rate),
            "SLUICE_LOADTEST_BATCH": str(args.batch),
            "SLUICE_LOADTEST_FILE_RATE": str(args.file_rate),
            "SLUICE_LOADTEST_DATASET": args.dataset,
            "SLUICE_LOADTEST_FILE_ROWS": str(args.rows),
            "SLUICE_LOADTEST_BAD_RATIO": str(args.bad_ratio),
            "SLUICE_LOADTEST_EVENT_EXAMPLE": str(args.event_example or ""),
        }
    )
    out_dir = Path(args.out) if args.out else REPO_ROOT / "loadtests" / "out" / run_id
    started_pid: int | None = None
    if target.is_local and args.endpoint is None:
        state_dir = Path(args.state_dir) if args.state_dir else REPO_ROOT / ".sluice"
        print(f"local runtime on 127.0.0.1:{args.port} …")
        try:
            started_pid = ensure_local_runtime(
                args.port, args.stage, state_dir.resolve(), args.max_concurrency
            )
        except Exception as exc:
            print(f"error: the local runtime did not start: {exc}", file=sys.stderr)
            return 2
    try:
        try:
            target.names()
        except Exception as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return execute(args, target, run_id, out_dir)
    finally:
        if started_pid is not None and not args.keep_runtime:
            stop_local_runtime(args.port, started_pid)


if __name__ == "__main__":
    sys.exit(main())
