"""The batch handlers against a moto server: ranged reads, the real ledger table, error names."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contracts.datasets import load_contract
from contracts.datasets.loader import DATASETS_DIR
from sluice.generate import generate
from sluice_batch import handlers, work
from sluice_shared.datapath import output
from sluice_shared.datapath.ahead import usable_cpus
from sluice_shared.datapath.split import plan_byte_ranges
from sluice_shared.errors import PoisonInputError
from sluice_shared.published_contracts import DEFAULT_PREFIX, publish
from tests.integration.batch.batch_stack import BatchStack, batch_stack

__all__ = ["batch_stack"]


def plan_event(name: str, request: dict[str, object]) -> dict[str, object]:
    return {
        "request": request,
        "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:m:{name}",
        "execution_name": name,
    }


def test_plan_handler_large_object_cut_by_ranged_gets_like_sequential_scan(
    batch_stack: BatchStack, tmp_path: Path
) -> None:
    # GIVEN a ~400 KB orders CSV in the raw bucket
    src = tmp_path / "o.csv"
    generate("orders", src, rows=4000, bad_ratio=0.02, seed=1)
    batch_stack.put_raw("orders/x/o.csv", src.read_bytes())
    # WHEN the plan function runs for it
    payload = handlers.plan(plan_event("p1", {"source": "file", "key": "orders/x/o.csv"}), None)
    # THEN its partitions are the exact record cuts of the whole-object scan
    key = payload["partitions"]["key"]
    lines = batch_stack.objects(batch_stack.stack.work, key)[key].splitlines()
    items = [json.loads(line) for line in lines]
    expected, _ = plan_byte_ranges(src, load_contract("orders"), target_bytes=64 * 1024)
    assert [(i["start"], i["end"]) for i in items] == [(r.start, r.end) for r in expected]
    assert payload["partition_count"] == len(items) > 4
    # AND plan read only windows around the cuts, not the object
    plan_key = payload["plan"]["key"]
    (planned,) = orjson.loads(batch_stack.objects(batch_stack.stack.work, plan_key)[plan_key])[
        "files"
    ]
    read, size = (
        int(w) for w in re.findall(r"ranged reads of (\d+) of (\d+) bytes", planned["note"])[0]
    )
    assert read < size // 3
    # AND the file is claimed by the run in the DynamoDB ledger
    record = batch_stack.files()["orders/x/o.csv"]
    assert (record["status"], record["correlation_id"]) == ("VALIDATING", "p1")
    assert batch_stack.run_record("p1")["status"] == "RUNNING"


def test_run_partition_handler_rejected_range_raises_poison_with_rows(
    batch_stack: BatchStack,
) -> None:
    # GIVEN a planned file whose second partition is all lines that are not orders
    header = b"order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
    good = b"".join(b"ORD-%06d,c,2024-03-01T10:00:00Z,S,1,2.5,EUR,DE,n\n" % i for i in range(1500))
    bad = b"not an order\n" * 6000
    batch_stack.put_raw("orders/x/bad.csv", header + good + bad)
    payload = handlers.plan(plan_event("p2", {"source": "file", "key": "orders/x/bad.csv"}), None)
    key = payload["partitions"]["key"]
    items = [json.loads(x) for x in batch_stack.objects(batch_stack.stack.work, key)[key].split()]
    last = items[-1]
    # WHEN run_partition validates the poisoned range
    with pytest.raises(PoisonInputError) as raised:
        handlers.run_partition({"run_id": "p2", "partition": last}, None)
    # THEN the error is exactly PoisonInputError (what the Catch matches), its message carries
    # the range, reason and row count, and the range is described in the quarantine prefix
    assert type(raised.value) is PoisonInputError
    detail = orjson.loads(str(raised.value))
    assert (detail["start"], detail["end"]) == (last["start"], last["end"])
    assert detail["reason_code"] == "bad_row_ratio_exceeded"
    assert detail["rows_in"] > 0
    prefix = f"quarantine/dataset=orders/file_id={last['file_id']}/"
    stored = batch_stack.objects(batch_stack.stack.errors, prefix)
    assert f"{prefix}p{last['partition']:05d}.rejected.json" in stored


def test_run_partition_handler_missing_object_is_poison(batch_stack: BatchStack) -> None:
    # GIVEN an item naming an object that does not exist
    item = {
        "run_id": "r",
        "file_id": "0" * 32,
        "dataset": {"name": "orders", "version": 1},
        "source_bucket": batch_stack.stack.raw,
        "source_key": "orders/gone.csv",
        "size_bytes": 10,
        "bucket_count": 1,
        "partitions": 1,
        "partition": 0,
        "start": 0,
        "end": 10,
    }
    # WHEN/THEN run_partition raises PoisonInputError, not ObjectNotFoundError
    with pytest.raises(PoisonInputError) as raised:
        handlers.run_partition({"run_id": "r", "partition": item}, None)
    assert type(raised.value) is PoisonInputError


def test_run_partition_handler_disk_full_is_poison_with_the_reason(
    batch_stack: BatchStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a planned file, and a disk that is full when the partition's rows are staged
    src = tmp_path / "o.csv"
    generate("orders", src, rows=200, seed=3)
    batch_stack.put_raw("orders/x/full.csv", src.read_bytes())
    payload = handlers.plan(plan_event("p4", {"source": "file", "key": "orders/x/full.csv"}), None)
    key = payload["partitions"]["key"]
    (item,) = [json.loads(x) for x in batch_stack.objects(batch_stack.stack.work, key)[key].split()]
    real_new_stream = pa.ipc.new_stream

    class FullStream:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.writer = real_new_stream(*args, **kwargs)

        def write_batch(self, *args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            self.writer.close()

    monkeypatch.setattr(pa.ipc, "new_stream", FullStream)
    # WHEN run_partition validates it / THEN the item is poison (caught, never retried) with
    # the reason, not an OSError the state machine would retry as an unknown failure
    with pytest.raises(PoisonInputError) as raised:
        handlers.run_partition({"run_id": "p4", "partition": item}, None)
    assert type(raised.value) is PoisonInputError
    assert raised.value.code == "ephemeral_storage_exhausted"
    assert "No space left on device" in raised.value.message


def test_reconcile_handler_record_item_failure_keeps_file_redrivable(
    batch_stack: BatchStack, tmp_path: Path
) -> None:
    # GIVEN a planned file
    src = tmp_path / "o.csv"
    generate("orders", src, rows=100, seed=2)
    batch_stack.put_raw("orders/x/o.csv", src.read_bytes())
    payload = handlers.plan(plan_event("p3", {"source": "file", "key": "orders/x/o.csv"}), None)
    key = payload["partitions"]["key"]
    item = json.loads(batch_stack.objects(batch_stack.stack.work, key)[key])
    # WHEN one of its partitions is recorded as failed after its retries
    handlers.reconcile(
        {
            "action": "record_item_failure",
            "run_id": "p3",
            "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:m:p3",
            "partition": item,
            "error": {"Error": "States.Timeout", "Cause": "took too long"},
        },
        None,
    )
    # THEN the file keeps a non-terminal status with the reason, and the run is FAILED
    record = batch_stack.files()["orders/x/o.csv"]
    assert record["status"] == "VALIDATING"
    assert record["error_code"] == "partition_failed"
    assert "States.Timeout" in record["error"]
    run = batch_stack.run_record("p3")
    assert run["status"] == "FAILED"
    assert run["details"]["failed_items"] == [f"partition 0 of file {item['file_id']}"]


@pytest.mark.parametrize(("setting", "cpus"), [(None, 1), ("2", 2)])
def test_partition_and_bucket_steps_run_the_data_path_on_the_batch_data_cpus(
    batch_stack: BatchStack,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setting: str | None,
    cpus: int,
) -> None:
    # GIVEN a process that may run on four CPUs, the data steps watched as they start, and a
    # planned file of several partitions
    if setting is not None:
        monkeypatch.setenv("SLUICE_BATCH_DATA_CPUS", setting)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    seen: list[tuple[str, int]] = []

    def watched(module: object, name: str) -> None:
        real = getattr(module, name)

        def step(*args: object, **kwargs: object) -> object:
            seen.append((name, usable_cpus()))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, step)

    watched(work, "validate_file")
    watched(work, "transform_bucket")
    watched(output, "write_partitioned")
    src = tmp_path / "o.csv"
    generate("orders", src, rows=3000, seed=5)
    batch_stack.put_raw("orders/x/cpus.csv", src.read_bytes())
    payload = handlers.plan(plan_event("p6", {"source": "file", "key": "orders/x/cpus.csv"}), None)
    work_objects = batch_stack.objects(batch_stack.stack.work, "batch/runs/p6/")
    partitions = [json.loads(x) for x in work_objects[payload["partitions"]["key"]].split()]
    buckets = [json.loads(x) for x in work_objects[payload["buckets"]["key"]].split()]
    # WHEN run_partition and run_bucket process every item
    for item in partitions:
        handlers.run_partition({"run_id": "p6", "partition": item}, None)
    for bucket in buckets:
        handlers.run_bucket({"run_id": "p6", "bucket": bucket}, None)
    # THEN every data step used the CPUs SLUICE_BATCH_DATA_CPUS allows (1 unless set), not the
    # process's four, and the limit ended with the steps
    steps = len(partitions) + 2 * len(buckets)
    assert len(partitions) > 1
    assert seen == [(n, cpus) for n, _ in seen]
    assert len(seen) == steps
    assert {n for n, _ in seen} == {"validate_file", "transform_bucket", "write_partitioned"}
    assert usable_cpus() == 4


def _published_orders(batch_stack: BatchStack, tmp_path: Path, countries: str) -> dict[str, str]:
    """Publish the orders contract to the processed bucket with `countries` as its lookup
    table (the functions read it when SLUICE_CONTRACTS_PREFIX is set); return the manifest."""
    root = tmp_path / "datasets"
    shutil.copytree(DATASETS_DIR / "orders", root / "orders")
    (root / "orders/lookups/countries.csv").write_text(countries)
    return publish(batch_stack.stack.client("s3"), batch_stack.stack.processed, root)


def _run_items(batch_stack: BatchStack, run_id: str, key: str) -> list[dict[str, Any]]:
    """Plan `key`, run every partition; return the planned bucket items."""
    payload = handlers.plan(plan_event(run_id, {"source": "file", "key": key}), None)
    work_objects = batch_stack.objects(batch_stack.stack.work, f"batch/runs/{run_id}/")
    for item in (json.loads(x) for x in work_objects[payload["partitions"]["key"]].split()):
        handlers.run_partition({"run_id": run_id, "partition": item}, None)
    return [json.loads(x) for x in work_objects[payload["buckets"]["key"]].split()]


def test_run_bucket_joins_the_published_lookup_table_not_the_packaged_one(
    batch_stack: BatchStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN orders published with a countries table whose names differ from the packaged one
    monkeypatch.setenv("SLUICE_CONTRACTS_PREFIX", DEFAULT_PREFIX)
    packaged = (DATASETS_DIR / "orders/lookups/countries.csv").read_text().splitlines()
    published = [packaged[0]] + [
        ",".join(f"{v} (published)" if i == 1 else v for i, v in enumerate(line.split(",")))
        for line in packaged[1:]
    ]
    _published_orders(batch_stack, tmp_path, "\n".join(published) + "\n")
    src = tmp_path / "o.csv"
    generate("orders", src, rows=600, seed=7)
    batch_stack.put_raw("orders/x/lookups.csv", src.read_bytes())
    # WHEN the batch path validates its partitions and transforms its buckets
    for bucket in _run_items(batch_stack, "p7", "orders/x/lookups.csv"):
        handlers.run_bucket({"run_id": "p7", "bucket": bucket}, None)
    # THEN every joined country name is the published one
    written = {
        k: v
        for k, v in batch_stack.objects(batch_stack.stack.processed).items()
        if k.endswith(".parquet")
    }
    assert written
    names = [
        name
        for body in written.values()
        for name in pq.read_table(pa.BufferReader(body)).column("country_name").to_pylist()
        if name is not None
    ]
    assert names
    assert all(name.endswith(" (published)") for name in names), sorted(set(names))[:5]


def test_unusable_published_lookup_table_quarantines_the_file_once_with_the_reason(
    batch_stack: BatchStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN orders published with a countries table whose join key repeats
    monkeypatch.setenv("SLUICE_CONTRACTS_PREFIX", DEFAULT_PREFIX)
    packaged = (DATASETS_DIR / "orders/lookups/countries.csv").read_text()
    _published_orders(batch_stack, tmp_path, packaged + "DE,Deutschland,EU\n")
    src = tmp_path / "o.csv"
    generate("orders", src, rows=600, seed=8)
    batch_stack.put_raw("orders/x/dupes.csv", src.read_bytes())
    # WHEN the batch state machine runs the file
    done = batch_stack.run("p8", {"source": "file", "key": "orders/x/dupes.csv"})
    # THEN the file ends QUARANTINED invalid_lookup_table, as on the real-time path, with the
    # table and the repeated key named, every row counted as quarantined
    assert done["status"] == "SUCCEEDED", done
    record = batch_stack.files()["orders/x/dupes.csv"]
    assert (record["status"], record["error_code"]) == ("QUARANTINED", "invalid_lookup_table")
    assert "'countries'" in record["error"]
    assert "DE" in record["error"]
    assert int(record["rows_quarantined"]) == int(record["rows_in"]) == 600
    # AND each bucket step ran once: an unusable table is an outcome, never retried
    called = batch_stack.invoker.items_called("run_bucket")
    assert called
    assert len(called) == len(set(called))


def test_run_partition_handler_contract_altered_after_plan_is_poison_with_the_reason(
    batch_stack: BatchStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN orders published and a file planned with them, then the published contract's object
    # altered, and a function that has not read it yet (a cold one)
    monkeypatch.setenv("SLUICE_CONTRACTS_PREFIX", DEFAULT_PREFIX)
    packaged = (DATASETS_DIR / "orders/lookups/countries.csv").read_text()
    files = _published_orders(batch_stack, tmp_path, packaged)
    src = tmp_path / "o.csv"
    generate("orders", src, rows=200, seed=9)
    batch_stack.put_raw("orders/x/altered.csv", src.read_bytes())
    payload = handlers.plan(
        plan_event("p9", {"source": "file", "key": "orders/x/altered.csv"}), None
    )
    key = payload["partitions"]["key"]
    (item,) = [json.loads(x) for x in batch_stack.objects(batch_stack.stack.work, key)[key].split()]
    s3 = batch_stack.stack.client("s3")
    contract_key = f"{DEFAULT_PREFIX}objects/{files['orders/v1.yaml']}"
    body = s3.get_object(Bucket=batch_stack.stack.processed, Key=contract_key)["Body"].read()
    s3.put_object(Bucket=batch_stack.stack.processed, Key=contract_key, Body=body + b"\n# x\n")
    handlers.close_runtimes()
    # WHEN run_partition runs the partition
    with pytest.raises(PoisonInputError) as raised:
        handlers.run_partition({"run_id": "p9", "partition": item}, None)
    # THEN it is poison (caught, never retried) whose JSON message carries contract_invalid and
    # the reason naming the altered file, which Reconcile makes the file's verdict
    assert type(raised.value) is PoisonInputError
    detail = orjson.loads(str(raised.value))
    assert (detail["partition"], detail["reason_code"]) == (0, "contract_invalid")
    assert "orders/v1.yaml: sha256" in detail["reason"]
