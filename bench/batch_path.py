"""Batch-path benchmark: one large orders CSV through the batch workflow on the local runtime.

    python -m bench.batch_path                    # ~2 GB, 1 then 2 workers → bench/RESULTS-batch.md
    python -m bench.batch_path --size 256MB       # a quicker run (also written to RESULTS-batch.md)
    python -m bench.batch_path --workers 2 --no-identity

For each worker count W it brings up the local runtime (`sluice local up --detach`, the real
templates) with `BatchMaxConcurrency=W` (children of each Distributed Map running at once, each a
worker process of the function runner), uploads the CSV to the raw bucket with its EventBridge
notification switched off (a batch run reads only the raw bucket; without the notification,
ingest starts no execution of its own and the real-time path stays out of it), starts the batch
state machine on it and times the execution from StartExecution to its end. Peak RSS per worker
comes from the runner's Lambda-style `REPORT ... Max Memory Used` lines; CPU seconds of the
runtime process (in-process moto, workflow engine, runner) and of its worker processes come from
psutil (pid from `runtime.json`), for the upload and for the execution separately. Identity: the
Parquet the batch run wrote is compared, per Hive partition and after sorting by the primary key,
with the Parquet of the same file processed whole by the same data-path functions the real-time
services call (one partition, in one process).

Targets (issue 5): 2 workers take at most 0.65x the 1-worker wall time; every worker peaks under
300 MB; the output is row for row the whole-file output.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import sections
from bench.datapath import DATA_DIR, ensure_csv

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out" / "batch"
RESULTS = BENCH_DIR / "RESULTS-batch.md"
SLUICE = str(Path(sys.executable).parent / "sluice")
KEY = "orders/bench/input.csv"
RSS_TARGET_MB = 300
SPEEDUP_TARGET = 0.65
BATCH_FUNCTIONS = ("plan", "run-partition", "run-bucket", "reconcile")
_REPORT = re.compile(r"REPORT RequestId: \S+\s+Duration: ([\d.]+) ms.*Max Memory Used: (\d+) MB")


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]B)?", text.strip().upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    scale = {"KB": 10**3, "MB": 10**6, "GB": 10**9, None: 1}[match.group(2)]
    return int(float(match.group(1)) * scale)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client(endpoint: str, service: str) -> Any:
    import boto3
    from botocore.config import Config

    factory: Any = boto3.client
    return factory(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(read_timeout=600, retries={"max_attempts": 2}),
    )


def run_once(
    csv_path: Path, workers: int, partition_bytes: int, keep_output: bool
) -> dict[str, Any]:
    """One batch run of `csv_path` with `workers` concurrent children; returns its figures."""
    port = free_port()
    state = OUT_DIR / f"state-w{workers}"
    shutil.rmtree(state, ignore_errors=True)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
    up = subprocess.run(
        [
            SLUICE, "local", "up", "--port", str(port), "--state-dir", str(state), "--detach",
            "--no-schedules",
            "--param", f"BatchMaxConcurrency={workers}",
            "--param", f"BatchPartitionBytes={partition_bytes}",
        ],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    if up.returncode != 0:
        raise SystemExit(f"sluice local up failed:\n{up.stdout}\n{up.stderr}")
    endpoint = f"http://127.0.0.1:{port}"
    try:
        s3, sfn = client(endpoint, "s3"), client(endpoint, "stepfunctions")
        ssm = client(endpoint, "ssm")
        machine = ssm.get_parameter(Name="/sluice/dev/batch-state-machine-arn")["Parameter"][
            "Value"
        ]
        processed = ssm.get_parameter(Name="/sluice/dev/processed-bucket-name")["Parameter"][
            "Value"
        ]
        raw = ssm.get_parameter(Name="/sluice/dev/raw-bucket-name")["Parameter"]["Value"]
        # No S3 -> EventBridge notification for the upload: the execution below is the only run
        s3.put_bucket_notification_configuration(Bucket=raw, NotificationConfiguration={})
        runtime = RuntimeCpu(state)
        print(f"  [w={workers}] uploading {csv_path.stat().st_size / 1e9:.2f} GB ...", flush=True)
        upload_started = time.monotonic()
        s3.upload_file(str(csv_path), raw, KEY)
        upload_s = time.monotonic() - upload_started
        upload_cpu = runtime.lap()
        request = f'{{"source": "file", "bucket": "{raw}", "key": "{KEY}"}}'
        started = time.monotonic()
        arn = sfn.start_execution(stateMachineArn=machine, name=f"bench-w{workers}", input=request)[
            "executionArn"
        ]
        while True:
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                break
            time.sleep(0.25)
        wall = time.monotonic() - started
        run_cpu = runtime.lap()
        workers_cpu = runtime.children_cpu()
        print(
            f"  [w={workers}] {described['status']} in {wall:.1f} s; runtime process CPU "
            f"{run_cpu:.1f} s (upload {upload_cpu:.1f} s in {upload_s:.1f} s), "
            f"workers CPU {workers_cpu:.1f} s",
            flush=True,
        )
        maps = {}
        for run in sfn.list_map_runs(executionArn=arn)["mapRuns"]:
            info = sfn.describe_map_run(mapRunArn=run["mapRunArn"])
            label = str(run["mapRunArn"]).rsplit("/", 1)[-1].split(":")[0]
            maps[label] = {
                "items": info["itemCounts"]["total"],
                "seconds": (info["stopDate"] - info["startDate"]).total_seconds(),
            }
        out_dir = OUT_DIR / f"parquet-w{workers}"
        if keep_output and described["status"] == "SUCCEEDED":
            shutil.rmtree(out_dir, ignore_errors=True)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=processed):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith(".parquet"):
                        target = out_dir / obj["Key"]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        s3.download_file(processed, obj["Key"], str(target))
        return {
            "workers": workers,
            "status": described["status"],
            "wall_s": wall,
            "runtime_cpu_s": run_cpu,
            "workers_cpu_s": workers_cpu,
            "upload_s": upload_s,
            "upload_cpu_s": upload_cpu,
            "maps": maps,
            "workers_rss": worker_rss(state / "logs"),
            "output": out_dir,
        }
    finally:
        subprocess.run(
            [SLUICE, "local", "down", "--port", str(port), "--state-dir", str(state)],
            cwd=REPO, capture_output=True, env=env, timeout=120,
        )  # fmt: skip


class RuntimeCpu:
    """CPU seconds of the detached runtime process (in-process moto S3, workflow engine,
    runner) and of its worker processes, read with psutil from the pid in `runtime.json`."""

    def __init__(self, state_dir: Path) -> None:
        import json

        import psutil

        pid = int(json.loads((state_dir / "runtime.json").read_text())["pid"])
        self.process = psutil.Process(pid)
        self.last = self._own()

    def _own(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def lap(self) -> float:
        """CPU seconds of the runtime process itself since the previous lap."""
        now = self._own()
        spent, self.last = now - self.last, now
        return spent

    def children_cpu(self) -> float:
        """CPU seconds of the live worker processes (and of the exited ones they waited for)."""
        import psutil

        total = 0.0
        for child in self.process.children(recursive=True):
            try:
                times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        times = self.process.cpu_times()
        return total + float(times.children_user + times.children_system)


def worker_rss(log_dir: Path) -> dict[str, dict[str, float]]:
    """Per batch function: invocations, peak `Max Memory Used` (MB), total duration (s)."""
    figures: dict[str, dict[str, float]] = {}
    for fn in BATCH_FUNCTIONS:
        path = log_dir / f"sluice-dev-batch-{fn}.log"
        if not path.exists():
            continue
        peaks = [
            (float(m.group(1)), int(m.group(2)))
            for m in _REPORT.finditer(path.read_text(errors="replace"))
        ]
        if peaks:
            figures[fn] = {
                "invocations": len(peaks),
                "peak_mb": max(p for _, p in peaks),
                "busy_s": sum(d for d, _ in peaks) / 1000,
            }
    return figures


def whole_file_output(csv_path: Path) -> tuple[Path, float]:
    """Process the file whole (one partition) with the data-path functions, in a child process."""
    out = OUT_DIR / "parquet-whole"
    shutil.rmtree(out, ignore_errors=True)
    code = f"""
import sys
from pathlib import Path
from contracts.datasets import load_contract
from sluice_shared.datapath.buckets import bucket_count_for
from sluice_shared.datapath.output import write_partitioned
from sluice_shared.datapath.transform import load_lookups, transform_bucket
from sluice_shared.datapath.validate import validate_file
from sluice_shared.limits import Limits
src, out = Path({str(csv_path)!r}), Path({str(out)!r})
contract = load_contract("orders")
work = out.parent / "whole-work"
result = validate_file(src, contract, work / "v", limits=Limits(), key={KEY!r},
                       bucket_count=bucket_count_for(src.stat().st_size))
lookups = load_lookups(contract)
for bucket, staged in sorted(result.staged.items()):
    t = transform_bucket([staged], contract, work / f"t{{bucket}}.arrow", lookups=lookups,
                         quarantine_path=work / f"q{{bucket}}.jsonl")
    staged.unlink()
    if t.staged is not None:
        written = write_partitioned([t.staged], contract, out, file_id="whole", bucket=bucket)
        t.staged.unlink()
"""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    shutil.rmtree(OUT_DIR / "whole-work", ignore_errors=True)
    return out, time.monotonic() - started


def compare(batch_dir: Path, whole_dir: Path) -> tuple[bool, int, str]:
    """Row-for-row comparison per Hive partition, each side sorted by order_id."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def by_partition(root: Path) -> dict[str, list[Path]]:
        groups: dict[str, list[Path]] = defaultdict(list)
        for path in root.rglob("*.parquet"):
            groups[str(path.parent.relative_to(root))].append(path)
        return groups

    batch, whole = by_partition(batch_dir), by_partition(whole_dir)
    if set(batch) != set(whole):
        return False, 0, f"partitions differ: {sorted(set(batch) ^ set(whole))[:5]}"
    rows = 0
    for partition in sorted(batch):
        left = pa.concat_tables(pq.read_table(p) for p in batch[partition]).sort_by("order_id")
        right = pa.concat_tables(pq.read_table(p) for p in whole[partition]).sort_by("order_id")
        if not left.equals(right):
            return False, rows, f"{partition}: {left.num_rows} vs {right.num_rows} rows differ"
        rows += left.num_rows
    return True, rows, f"{len(batch)} partitions"


def render(args: argparse.Namespace, csv_path: Path, runs: list[dict[str, Any]],
           identity: tuple[bool, int, str] | None, whole_s: float | None) -> str:  # fmt: skip
    size_gb = csv_path.stat().st_size / 1e9
    lines = [
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- tree: {sections.tree()}",
        f"- load: at the start {args.load_at_start}; at the end {sections.load()}",
        f"- command: `python -m bench.batch_path --size {args.size_text} --partition-bytes "
        f"{args.partition_bytes}`",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical "
        f"CPUs, Python {platform.python_version()}",
        "",
        f"Input: `{csv_path.name}` ({size_gb:.2f} GB, generated orders with 1% bad rows and 1% "
        "duplicates), uploaded to the raw bucket of the local runtime (its notification off) and "
        "processed by the batch state machine (`sluice local up`, real templates, functions in "
        "worker processes).",
        "",
        "| workers | status | wall time | validate map | buckets map | runtime CPU | workers CPU "
        "| upload (runtime CPU) | peak RSS per worker (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        rss = ", ".join(
            f"{fn} {v['peak_mb']:.0f} ({v['invocations']:.0f} calls)"
            for fn, v in run["workers_rss"].items()
        )
        maps = run["maps"]
        validate = maps.get("Validate Partitions", {})
        buckets = maps.get("Transform And Write Buckets", {})
        lines.append(
            f"| {run['workers']} | {run['status']} | {run['wall_s']:.1f} s | "
            f"{validate.get('items', '?')} partitions, {validate.get('seconds', 0):.1f} s | "
            f"{buckets.get('items', '?')} buckets, {buckets.get('seconds', 0):.1f} s | "
            f"{run['runtime_cpu_s']:.1f} s | {run['workers_cpu_s']:.1f} s | "
            f"{run['upload_s']:.1f} s ({run['upload_cpu_s']:.1f} s) | {rss} |"
        )
    by_workers = {r["workers"]: r for r in runs}
    if 1 in by_workers and 2 in by_workers:
        ratio = by_workers[2]["wall_s"] / by_workers[1]["wall_s"]
        verdict = "meets" if ratio <= SPEEDUP_TARGET else "misses"
        lines += ["", f"2 workers / 1 worker wall time: **{ratio:.2f}x** ({verdict} the "
                  f"{SPEEDUP_TARGET}x target)."]  # fmt: skip
    peak = max((v["peak_mb"] for r in runs for v in r["workers_rss"].values()), default=0)
    lines.append(
        f"Peak RSS of any batch worker: **{peak:.0f} MB** "
        f"({'under' if peak < RSS_TARGET_MB else 'above'} the {RSS_TARGET_MB} MB target)."
    )
    if identity is not None:
        same, rows, note = identity
        lines.append(
            f"Output identical to the whole-file processing (row for row per Hive partition, "
            f"sorted by order_id): **{'yes' if same else 'NO'}** — {rows} rows, {note}"
            + (f"; whole-file processing took {whole_s:.1f} s in one process." if whole_s else ".")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", dest="size_text", default="2GB", help="input size (2GB)")
    parser.add_argument("--partition-bytes", type=int, default=128 * 2**20)
    parser.add_argument("--workers", default="1,2", help="worker counts to run (1,2)")
    parser.add_argument("--no-identity", action="store_true", help="skip the output comparison")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS-batch.md")
    parser.add_argument("--keep", action="store_true", help="keep the Parquet under bench/out/")
    args = parser.parse_args(argv)
    args.load_at_start = sections.load()
    size = parse_size(args.size_text)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    csv_path = ensure_csv(None, size_bytes=size)
    runs = []
    counts = [int(w) for w in args.workers.split(",")]
    for workers in counts:
        keep = not args.no_identity and workers == max(counts)
        runs.append(run_once(csv_path, workers, args.partition_bytes, keep_output=keep))
    identity = whole_s = None
    if not args.no_identity:
        print("  processing the file whole for the identity check ...", flush=True)
        whole, whole_s = whole_file_output(csv_path)
        identity = compare(runs[-1]["output"], whole)
        if not args.keep:
            for path in (runs[-1]["output"], whole):
                shutil.rmtree(path, ignore_errors=True)
    text = render(args, csv_path, runs, identity, whole_s)
    print(text)
    if not args.no_write:
        sections.replace_section(RESULTS, "batch", text)
    if any(r["status"] != "SUCCEEDED" for r in runs) or (identity is not None and not identity[0]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
