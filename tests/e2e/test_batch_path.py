"""The batch path end to end: the state machine (orchestration/statemachines/batch.asl.json) on
the local workflow engine, its functions (`sluice_batch.handlers`) invoked in-process as Lambda
would, every AWS call over HTTP to a moto server.

A large file split into partitions must produce the same Parquet rows as the real-time path
processing it whole; backfills and scheduled runs cover many files; a poisoned partition is
tolerated below the threshold and fails the run above it; a failed run is redriven to
completion without duplicating outputs.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from sluice.generate import generate
from tests.e2e.harness import close_handlers, load_handlers, pump
from tests.integration.batch.batch_stack import BatchStack, batch_stack

__all__ = ["batch_stack"]

TERMINAL = {"COMPLETED", "FAILED", "QUARANTINED"}


def parquet_rows(batch: BatchStack, file_id: str) -> list[dict[str, Any]]:
    """Every row of a file's Parquet objects, with its Hive partition values, sorted."""
    rows: list[dict[str, Any]] = []
    for key, data in batch.objects(batch.stack.processed).items():
        if f"part-{file_id}-" not in key:
            continue
        partition = dict(part.split("=", 1) for part in key.split("/")[:-1])
        rows.extend({**row, **partition} for row in pq.read_table(io.BytesIO(data)).to_pylist())
    return sorted(rows, key=lambda r: orjson.dumps(r, default=str))


def manifest(batch: BatchStack, dataset: str, file_id: str) -> dict[str, Any]:
    key = f"_manifests/dataset={dataset}/{file_id}.json"
    data: dict[str, Any] = orjson.loads(batch.objects(batch.stack.processed, key)[key])
    return data


def assert_reconciled(record: dict[str, Any]) -> tuple[int, int, int]:
    rows_in, rows_out, rows_q = (
        int(record[k]) for k in ("rows_in", "rows_out", "rows_quarantined")
    )
    assert rows_in == rows_out + rows_q, record
    return rows_in, rows_out, rows_q


def test_batch_large_csv_split_into_partitions_matches_realtime_output(
    batch_stack: BatchStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a CSV of ~300 KiB with bad rows, duplicates and quoted multi-line notes
    source = tmp_path / "big.csv"
    truth = generate("orders", source, rows=3000, bad_ratio=0.04, duplicate_ratio=0.03, seed=11)
    data = source.read_bytes()
    # AND the same bytes processed whole by the real-time services
    handlers = load_handlers(batch_stack.stack, monkeypatch)
    try:
        batch_stack.put_raw("orders/2024/05/realtime.csv", data)
        pump(
            batch_stack.stack,
            handlers,
            until=lambda: any(
                f["status"] in TERMINAL for k, f in batch_stack.files().items() if "realtime" in k
            ),
            timeout=90,
        )
    finally:
        close_handlers()
    realtime = batch_stack.files()["orders/2024/05/realtime.csv"]
    # AND the first copy put only now, so that no real-time pump completes it before the batch
    # run plans it (a run skips a file that is already terminal)
    batch_stack.put_raw("orders/2024/05/big.csv", data)
    # WHEN the batch workflow runs on the first copy
    done = batch_stack.run("big", {"source": "file", "key": "orders/2024/05/big.csv"})
    # THEN the run succeeds and the file was cut into several partitions
    assert done["status"] == "SUCCEEDED", done
    run = batch_stack.run_record("big")
    assert run["status"] == "COMPLETED", run
    assert run["details"]["partitions"] >= 4
    record = batch_stack.files()["orders/2024/05/big.csv"]
    assert record["status"] == "COMPLETED", record
    rows_in, rows_out, rows_q = assert_reconciled(record)
    assert rows_in == truth.rows_total
    assert (rows_in, rows_out, rows_q) == assert_reconciled(realtime)
    # AND its Parquet equals the real-time output row for row (sorted)
    batch_rows = parquet_rows(batch_stack, str(record["file_id"]))
    realtime_rows = parquet_rows(batch_stack, str(realtime["file_id"]))
    assert len(batch_rows) == rows_out == truth.expected_good_keys
    assert batch_rows == realtime_rows
    # AND the manifest, written last, lists exactly the Parquet objects
    doc = manifest(batch_stack, "orders", str(record["file_id"]))
    assert doc["rows_out"] == rows_out
    assert sum(o["rows"] for o in doc["objects"]) == rows_out
    processed = batch_stack.objects(batch_stack.stack.processed)
    written = {k for k in processed if str(record["file_id"]) in k}
    assert {o["key"] for o in doc["objects"]} == written - {
        f"_manifests/dataset=orders/{record['file_id']}.json"
    }


def test_batch_prefix_backfill_of_several_files_completes_each(
    batch_stack: BatchStack, tmp_path: Path
) -> None:
    # GIVEN three objects under one prefix: a small CSV, a gzip CSV and a CSV large enough to split
    sizes = {"small.csv": 200, "packed.csv.gz": 1500, "large.csv": 2500}
    truths = {}
    for name, rows in sizes.items():
        path = tmp_path / name
        truths[name] = generate(
            "orders",
            path,
            rows=rows,
            bad_ratio=0.02,
            duplicate_ratio=0.01,
            seed=rows,
            gzip=name.endswith(".gz"),
        )
        batch_stack.put_raw(f"orders/2024/06/{name}", path.read_bytes())
    # WHEN a backfill runs over the prefix
    done = batch_stack.run("backfill", {"source": "prefix", "prefix": "orders/2024/06/"})
    # THEN every file is COMPLETED and reconciles with its ground truth
    assert done["status"] == "SUCCEEDED", done
    files = batch_stack.files()
    for name, truth in truths.items():
        record = files[f"orders/2024/06/{name}"]
        assert record["status"] == "COMPLETED", record
        rows_in, rows_out, _ = assert_reconciled(record)
        assert rows_in == truth.rows_total
        assert (
            rows_out
            == truth.expected_good_keys
            == len(parquet_rows(batch_stack, str(record["file_id"])))
        )
    # AND the plan cut the large file, kept the gzip one whole and said why
    plan = orjson.loads(
        batch_stack.objects(batch_stack.stack.work, "batch/runs/backfill/plan.json")[
            "batch/runs/backfill/plan.json"
        ]
    )
    by_key = {f["key"]: f for f in plan["files"]}
    assert by_key["orders/2024/06/large.csv"]["partitions"] > 1
    assert by_key["orders/2024/06/packed.csv.gz"]["partitions"] == 1
    assert "gzip" in by_key["orders/2024/06/packed.csv.gz"]["note"]
    run = batch_stack.run_record("backfill")
    assert run["status"] == "COMPLETED"
    assert sorted(run["details"]["file_ids"]) == sorted(
        str(files[f"orders/2024/06/{n}"]["file_id"]) for n in sizes
    )


def test_batch_scheduled_window_processes_only_new_objects_once(
    batch_stack: BatchStack, tmp_path: Path
) -> None:
    # GIVEN a CSV and a JSONL object created now
    for dataset, name in (("orders", "a.csv"), ("sensor_readings", "b.jsonl")):
        path = tmp_path / name
        generate(dataset, path, rows=300, seed=3)
        batch_stack.put_raw(f"{dataset}/2024/07/{name}", path.read_bytes())
    now = datetime.now(UTC)
    # WHEN the schedule fires for a window that ended before they were created
    early = batch_stack.run(
        "sched-early",
        {
            "source": "schedule",
            "schedule": {"window_end": (now - timedelta(hours=2)).isoformat(), "window_hours": 1},
        },
    )
    # THEN that run covers no file
    assert early["status"] == "SUCCEEDED", early
    assert batch_stack.run_record("sched-early")["details"]["file_ids"] == []
    assert batch_stack.files() == {}
    # WHEN it fires for the window holding them (the scheduler's input shape)
    window = {"window_end": (now + timedelta(minutes=5)).isoformat(), "window_hours": 1}
    done = batch_stack.run("sched-now", {"source": "schedule", "schedule": window})
    # THEN both files are processed and reconciled
    assert done["status"] == "SUCCEEDED", done
    files = batch_stack.files()
    assert {k: f["status"] for k, f in files.items()} == {
        "orders/2024/07/a.csv": "COMPLETED",
        "sensor_readings/2024/07/b.jsonl": "COMPLETED",
    }
    for record in files.values():
        assert_reconciled(record)
    # WHEN the same window fires again
    again = batch_stack.run("sched-again", {"source": "schedule", "schedule": window})
    # THEN the completed files are skipped, not processed twice
    assert again["status"] == "SUCCEEDED", again
    run = batch_stack.run_record("sched-again")
    assert run["details"]["file_ids"] == []
    assert len(run["details"]["skipped"]) == 2


def poisoned_csv(tmp_path: Path, rows: int, garbage_at: int, garbage_bytes: int) -> bytes:
    """An orders CSV with a block of lines that are not orders at `garbage_at` (moved to the
    next record end): every line there is a bad row, so its partition is rejected whole."""
    path = tmp_path / "poisoned.csv"
    generate("orders", path, rows=rows, seed=5)
    data = path.read_bytes()
    cut = data.index(b"\n", garbage_at) + 1
    line = b"this line is not an order at all\n"
    garbage = line * (garbage_bytes // len(line))
    return data[:cut] + garbage + data[cut:]


def test_batch_poisoned_partition_below_tolerance_completes_with_rows_accounted(
    batch_stack: BatchStack, tmp_path: Path
) -> None:
    # GIVEN a file of ~13 partitions (64 KiB), one of which is half lines that are not orders
    data = poisoned_csv(tmp_path, rows=8000, garbage_at=5 * 65536 + 12000, garbage_bytes=30000)
    batch_stack.put_raw("orders/2024/08/poisoned.csv", data)
    # WHEN the batch workflow runs
    done = batch_stack.run("poison-low", {"source": "file", "key": "orders/2024/08/poisoned.csv"})
    # THEN the run completes (1 bad partition of more than 10 is within the 10% tolerance)
    assert done["status"] == "SUCCEEDED", done
    run = batch_stack.run_record("poison-low")
    assert run["status"] == "COMPLETED", run
    assert run["details"]["partitions"] > 10
    (bad,) = run["details"]["bad_partitions"]
    assert bad["reason_code"] == "bad_row_ratio_exceeded"
    # AND the file is COMPLETED with the bad partition's rows counted as quarantined
    record = batch_stack.files()["orders/2024/08/poisoned.csv"]
    assert record["status"] == "COMPLETED", record
    rows_in, _, rows_q = assert_reconciled(record)
    assert rows_in == 8000 + data.count(b"this line is not an order")
    assert rows_q >= bad["rows_in"]
    # AND the rejected partition is in the quarantine prefix with its range and reason
    key = f"quarantine/dataset=orders/file_id={record['file_id']}/p{bad['partition']:05d}"
    rejected = orjson.loads(
        batch_stack.objects(batch_stack.stack.errors, key + ".rejected.json")[
            key + ".rejected.json"
        ]
    )
    assert (rejected["start"], rejected["end"]) == (bad["start"], bad["end"])
    assert rejected["start"] <= data.index(b"this line is not") < rejected["end"]
    assert rejected["reason_code"] == "bad_row_ratio_exceeded"


def test_batch_poisoned_partition_above_tolerance_fails_run_and_no_file_completes(
    batch_stack: BatchStack, tmp_path: Path
) -> None:
    # GIVEN a file of ~8 partitions, one of them poisoned (12% > the 10% tolerance), with too
    # few bad rows overall (~17%) for the contract (20%) to reject the file itself
    data = poisoned_csv(tmp_path, rows=5000, garbage_at=2 * 65536 + 12000, garbage_bytes=15000)
    batch_stack.put_raw("orders/2024/08/poisoned.csv", data)
    # WHEN the batch workflow runs
    done = batch_stack.run("poison-high", {"source": "file", "key": "orders/2024/08/poisoned.csv"})
    # THEN the execution and the run fail, with the reason in the ledger
    assert done["status"] == "FAILED", done
    run = batch_stack.run_record("poison-high")
    assert run["status"] == "FAILED"
    assert run["details"]["reason_code"] == "tolerated_failures_exceeded"
    # AND the file is not COMPLETED and has no manifest
    record = batch_stack.files()["orders/2024/08/poisoned.csv"]
    assert record["status"] == "FAILED", record
    assert record["error_code"] == "batch_run_failed"
    assert batch_stack.objects(batch_stack.stack.processed, "_manifests/") == {}


def _finished_partitions(batch_stack: BatchStack) -> set[int]:
    return {
        int(event["partition"]["partition"])
        for name, event in list(batch_stack.invoker.finished)
        if name == "run_partition"
    }


def test_batch_failed_partitions_above_tolerance_redrive_completes_without_duplicates(
    batch_stack: BatchStack, tmp_path: Path
) -> None:
    # GIVEN a file of ~8 partitions (children of 2) whose partition 1 crashes on the first try
    path = tmp_path / "crashy.csv"
    generate("orders", path, rows=5000, duplicate_ratio=0.02, seed=9)
    batch_stack.put_raw("orders/2024/09/crashy.csv", path.read_bytes())
    crashing = {1}

    def fault(handler: str, event: dict[str, Any]) -> Exception | None:
        if handler == "run_partition" and event["partition"]["partition"] in crashing:
            # Die only once every other partition has finished (a Map over its tolerance stops
            # the children still running, and a redrive would re-run those too). Waiting for
            # that, not for a fixed time, keeps the test right on a slow machine.
            others = event["partition"]["partitions"] - len(crashing)
            deadline = time.monotonic() + 120
            while len(_finished_partitions(batch_stack) - crashing) < others:
                assert time.monotonic() < deadline, "the other partitions never finished"
                time.sleep(0.05)
            return RuntimeError("worker died")
        return None

    batch_stack.invoker.fault = fault
    # WHEN the batch workflow runs
    arn = batch_stack.start("crashy", {"source": "file", "key": "orders/2024/09/crashy.csv"})
    failed = batch_stack.wait(arn)
    # THEN the Map exceeds its tolerance, the execution fails and the ledger says why
    assert failed["status"] == "FAILED", failed
    run = batch_stack.run_record("crashy")
    assert run["status"] == "FAILED"
    assert run["details"]["failed_items"]
    record = batch_stack.files()["orders/2024/09/crashy.csv"]
    assert record["status"] == "VALIDATING", record
    assert record["error_code"] == "partition_failed"
    assert batch_stack.objects(batch_stack.stack.processed) == {}
    partitions = run["details"]["partitions"]
    assert partitions >= 6
    # WHEN the cause is gone and the execution is redriven
    crashing.clear()
    calls_before = len(batch_stack.invoker.calls)
    done = batch_stack.redrive(arn)
    # THEN it completes, and only the unsuccessful children ran again
    assert done["status"] == "SUCCEEDED", done
    rerun = [
        item
        for name, event in batch_stack.invoker.calls[calls_before:]
        if name == "run_partition"
        for item in [event["partition"]["partition"]]
    ]
    # (partition 1 shares its child with partition 0: the pair is re-run, nothing else)
    assert sorted(rerun) == [0, 1]
    # AND the file is COMPLETED, reconciled, with each row written exactly once
    record = batch_stack.files()["orders/2024/09/crashy.csv"]
    assert record["status"] == "COMPLETED", record
    _, rows_out, _ = assert_reconciled(record)
    rows = parquet_rows(batch_stack, str(record["file_id"]))
    assert len(rows) == rows_out
    assert len({r["order_id"] for r in rows}) == rows_out
    doc = manifest(batch_stack, "orders", str(record["file_id"]))
    parquet_keys = {
        k for k in batch_stack.objects(batch_stack.stack.processed) if k.endswith(".parquet")
    }
    assert {o["key"] for o in doc["objects"]} == parquet_keys
    assert batch_stack.run_record("crashy")["status"] == "COMPLETED"
