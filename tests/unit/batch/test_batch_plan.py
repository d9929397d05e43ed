"""Plan on in-memory fakes: manifest shape, ledger registration, idempotence."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from contracts.datasets import DatasetCatalog
from contracts.events import FileIngestedV1
from contracts.types import DatasetRef
from sluice.generate import generate
from sluice_batch.config import BatchSettings
from sluice_batch.deps import BatchDeps
from sluice_batch.items import bucket_items_from_jsonl, partition_items_from_jsonl
from sluice_batch.plan import PlanRequest, plan_run, run_id_for
from sluice_shared.errors import EventLedgerMismatch, PoisonInputError
from sluice_shared.keys import file_id_for
from sluice_shared.limits import Limits
from sluice_shared.ports import FileRecord, FileStatus
from tests.fakes import FakeDeps, fake_deps


def settings() -> BatchSettings:
    return BatchSettings(
        raw_bucket="raw-bucket",
        work_bucket="work-bucket",
        processed_bucket="processed-bucket",
        error_bucket="error-bucket",
        event_bus="bus",
        ledger_table="ledger",
        partition_bytes=20_000,
        cut_window_bytes=4096,
    )


def batch_deps(fakes: FakeDeps) -> BatchDeps:
    return BatchDeps(
        objects=fakes.objects,
        ledger=fakes.ledger,
        publisher=fakes.publisher,
        contracts=DatasetCatalog(),
        parker=fakes.parker,
    )


@pytest.fixture
def fakes(tmp_path: Path) -> FakeDeps:
    deps = fake_deps()
    for name, rows in (("big.csv", 2000), ("small.csv", 50)):
        path = tmp_path / name
        generate("orders", path, rows=rows, seed=rows)
        deps.objects.put("raw-bucket", f"orders/2024/{name}", path.read_bytes())
    deps.objects.put("raw-bucket", "nodataset.csv", b"a,b\n1,2\n")
    return deps


async def test_plan_run_prefix_writes_manifests_and_registers_files(fakes: FakeDeps) -> None:
    # GIVEN a big and a small orders file under a prefix
    deps = batch_deps(fakes)
    # WHEN a run is planned over the prefix
    report = await plan_run(
        PlanRequest(source="prefix", prefix="orders/"), deps, settings(), run_id="run-1"
    )
    # THEN the partition manifest cuts the big file and keeps the small one whole
    parts = partition_items_from_jsonl(
        fakes.objects.objects[("work-bucket", "batch/runs/run-1/partitions.jsonl")].data
    )
    by_key: dict[str, list[int]] = {}
    for item in parts:
        by_key.setdefault(item.source_key, []).append(item.partition)
    assert len(by_key["orders/2024/big.csv"]) > 3
    assert by_key["orders/2024/small.csv"] == [0]
    big = [p for p in parts if p.source_key == "orders/2024/big.csv"]
    assert big[0].start == 0
    assert big[-1].end == big[0].size_bytes
    assert all(a.end == b.start for a, b in itertools.pairwise(big))
    # AND one bucket item per (file, hash bucket)
    buckets = bucket_items_from_jsonl(
        fakes.objects.objects[("work-bucket", "batch/runs/run-1/buckets.jsonl")].data
    )
    assert len(buckets) == sum(1 for p in parts if p.partition == 0)
    # AND the payload names the manifests, and the files are claimed for the run
    payload = report.payload()
    assert payload["partitions"] == {
        "bucket": "work-bucket",
        "key": "batch/runs/run-1/partitions.jsonl",
    }
    assert payload["files"] == 2
    for item in parts:
        record = await fakes.ledger.get(item.file_id)
        assert record is not None
        assert (record.status, record.correlation_id) == (FileStatus.VALIDATING, "run-1")
    run = await fakes.ledger.get_run("run-1")
    assert run is not None
    assert sorted(run.details["file_ids"]) == sorted({p.file_id for p in parts})


async def test_plan_run_retried_keeps_own_files_and_skips_others(fakes: FakeDeps) -> None:
    # GIVEN a planned run
    deps = batch_deps(fakes)
    request = PlanRequest(source="prefix", prefix="orders/")
    first = await plan_run(request, deps, settings(), run_id="run-1")
    # WHEN plan is retried for the same run, and another run plans the same prefix
    again = await plan_run(request, deps, settings(), run_id="run-1")
    other = await plan_run(request, deps, settings(), run_id="run-2")
    # THEN the retry plans the same files, the other run none of them
    assert [f["file_id"] for f in again.files] == [f["file_id"] for f in first.files]
    assert other.files == []
    assert len(other.skipped) == 2


async def ingested_big_file(fakes: FakeDeps) -> FileIngestedV1:
    """The execution input ingest sends for a large file, after registering it."""
    info = await fakes.objects.head("raw-bucket", "orders/2024/big.csv")
    file_id = file_id_for("raw-bucket", "orders/2024/big.csv", None, info.etag)
    await fakes.ledger.register_file(
        FileRecord(
            file_id=file_id,
            dataset="orders",
            dataset_version=1,
            bucket="raw-bucket",
            key="orders/2024/big.csv",
            etag=info.etag,
            size_bytes=info.size,
        )
    )
    return FileIngestedV1(
        file_id=file_id,
        dataset=DatasetRef(name="orders", version=1),
        bucket="raw-bucket",
        key="orders/2024/big.csv",
        etag=info.etag,
        size_bytes=info.size,
        object_created_at=datetime.now(UTC),
        path="batch",
    )


def file_request(ingested: FileIngestedV1) -> PlanRequest:
    return PlanRequest.model_validate(
        orjson.loads(orjson.dumps({"file": ingested.model_dump(mode="json")}))
    )


async def test_plan_run_ingested_file_plans_the_registered_object(fakes: FakeDeps) -> None:
    # GIVEN the execution input ingest sends for a large file it registered
    ingested = await ingested_big_file(fakes)
    # WHEN it is planned
    report = await plan_run(
        file_request(ingested), batch_deps(fakes), settings(), run_id=run_id_for("file-x")
    )
    # THEN exactly that object is planned, as that file
    assert [(f["file_id"], f["key"]) for f in report.files] == [
        (ingested.file_id, "orders/2024/big.csv")
    ]
    assert report.files[0]["partitions"] > 1


async def test_plan_run_ingested_file_disagreeing_with_the_ledger_is_refused(
    fakes: FakeDeps,
) -> None:
    # GIVEN an execution input naming a registered file but another object
    ingested = await ingested_big_file(fakes)
    forged = ingested.model_copy(update={"key": "orders/2024/small.csv"})
    # WHEN it is planned
    with pytest.raises(EventLedgerMismatch) as refused:
        await plan_run(file_request(forged), batch_deps(fakes), settings(), run_id="evil")
    # THEN nothing is planned or claimed, and the attempt is in the file's history
    assert refused.value.differences == [("key", "orders/2024/small.csv", "orders/2024/big.csv")]
    assert fakes.ledger.records[ingested.file_id].status is FileStatus.PENDING
    assert not [k for _, k in fakes.objects.objects if k.startswith("batch/runs/")]
    steps = fakes.ledger.steps[ingested.file_id]
    assert [s["to_status"] for s in steps] == ["PENDING", "REFUSED"]
    assert (steps[-1]["event_id"], steps[-1]["error_code"]) == ("evil", "event_ledger_mismatch")


async def test_plan_run_request_without_source_is_poison(fakes: FakeDeps) -> None:
    # GIVEN/WHEN a request naming nothing / THEN it is rejected as poison
    with pytest.raises(PoisonInputError):
        await plan_run(PlanRequest(), batch_deps(fakes), settings(), run_id="r")


def test_run_id_for_execution_names_is_a_valid_run_id() -> None:
    assert run_id_for("file-0123abcd") == "file-0123abcd"
    assert run_id_for("odd name/with:chars") == "odd-name-with-chars"
    assert len(run_id_for("x" * 200)) == 80


async def test_plan_run_object_above_file_limit_is_quarantined_not_planned(
    fakes: FakeDeps,
) -> None:
    # GIVEN a file limit below the big file's size
    limited = settings().model_copy(update={"limits": Limits(max_file_bytes=100_000)})
    # WHEN a run is planned over the prefix
    report = await plan_run(
        PlanRequest(source="prefix", prefix="orders/"), batch_deps(fakes), limited, run_id="r"
    )
    # THEN only the small file is planned; the big one ends QUARANTINED with the reason
    assert [f["key"] for f in report.files] == ["orders/2024/small.csv"]
    (skipped,) = report.skipped
    assert skipped["reason"].startswith("file_too_large")
    big = [r for r in fakes.ledger.records.values() if r.key == "orders/2024/big.csv"]
    assert [(r.status, r.error_code) for r in big] == [(FileStatus.QUARANTINED, "file_too_large")]


@pytest.mark.parametrize("source", ["file", "prefix", "ingested"])
async def test_plan_run_refuses_a_bucket_other_than_the_raw_bucket(
    fakes: FakeDeps, source: str
) -> None:
    # GIVEN an object in the work bucket and a request naming that bucket
    fakes.objects.put("work-bucket", "orders/2024/inside.csv", b"order_id\nORD-000001\n")
    request = {
        "file": PlanRequest(source="file", bucket="work-bucket", key="orders/2024/inside.csv"),
        "prefix": PlanRequest(source="prefix", bucket="work-bucket", prefix="orders/"),
        "ingested": PlanRequest(
            file=FileIngestedV1(
                file_id="f" * 32,
                dataset=DatasetRef(name="orders", version=1),
                bucket="work-bucket",
                key="orders/2024/inside.csv",
                etag="e",
                size_bytes=20,
                object_created_at=datetime.now(UTC),
                path="batch",
            )
        ),
    }[source]
    # WHEN it is planned / THEN plan refuses it as poison, naming both buckets
    with pytest.raises(PoisonInputError) as refused:
        await plan_run(request, batch_deps(fakes), settings(), run_id="r")
    assert refused.value.code == "not_raw_bucket"
    assert "'raw-bucket'" in refused.value.message
    assert "'work-bucket'" in refused.value.message
    # AND nothing was registered or written
    assert fakes.ledger.records == {}
    assert not [key for bucket, key in fakes.objects.objects if key.startswith("batch/")]


async def test_plan_run_skips_a_manifest_entry_in_another_bucket(fakes: FakeDeps) -> None:
    # GIVEN a manifest listing one raw object and one object of the work bucket
    fakes.objects.put("work-bucket", "orders/2024/inside.csv", b"order_id\nORD-000001\n")
    entries = [
        {"key": "orders/2024/small.csv"},
        {"bucket": "work-bucket", "key": "orders/2024/inside.csv"},
    ]
    fakes.objects.put("work-bucket", "lists/m.jsonl", b"\n".join(orjson.dumps(e) for e in entries))
    # WHEN it is planned
    report = await plan_run(
        PlanRequest(source="manifest", manifest="s3://work-bucket/lists/m.jsonl"),
        batch_deps(fakes),
        settings(),
        run_id="r",
    )
    # THEN only the raw object is planned; the other is skipped with the reason, never registered
    assert [f["key"] for f in report.files] == ["orders/2024/small.csv"]
    assert [s["reason"].split(":")[0] for s in report.skipped] == ["not_raw_bucket"]
    assert [r.key for r in fakes.ledger.records.values()] == ["orders/2024/small.csv"]
