"""Reconcile arithmetic from fake ResultWriter output: per-file row identity across partitions,
one set of outputs per partition, tolerance of bad partitions."""

from __future__ import annotations

from typing import Any

import orjson

from contracts.types import DatasetRef
from sluice_batch.items import PartitionItem, bucket_items_for
from sluice_batch.reconcile import judge_run
from sluice_batch.results import ItemResult, read_map_results
from sluice_shared.ports import FileStatus
from tests.fakes import InMemoryObjectStore

FILE = "a" * 32


def partitions(n: int, file_id: str = FILE, buckets: int = 2) -> list[PartitionItem]:
    return [
        PartitionItem(
            run_id="r1",
            file_id=file_id,
            dataset=DatasetRef(name="orders", version=1),
            source_bucket="raw",
            source_key=f"orders/{file_id}.csv",
            size_bytes=n * 100,
            bucket_count=buckets,
            partitions=n,
            partition=p,
            start=p * 100,
            end=(p + 1) * 100,
        )
        for p in range(n)
    ]


def ok_partition(
    p: int, rows_in: int, bad: int, staged: list[int], file_id: str = FILE
) -> ItemResult:
    report = {
        "file_id": file_id,
        "partition": p,
        "rows_in": rows_in,
        "rows_valid": rows_in - bad,
        "rows_quarantined": bad,
        "staged_buckets": staged,
    }
    return ItemResult("partition", file_id, p, "ok", report=report)


def ok_bucket(b: int, rows_in: int, dupes: int, read: list[int], file_id: str = FILE) -> ItemResult:
    objects = (
        [
            {
                "key": f"dataset=orders/dt=2024-01-01/part-{file_id}-b{b:04d}-0000.parquet",
                "rows": rows_in - dupes,
                "bytes": 10,
            }
        ]
        if rows_in > dupes
        else []
    )
    report = {
        "file_id": file_id,
        "hash_bucket": b,
        "rows_in": rows_in,
        "rows_out": rows_in - dupes,
        "rows_quarantined": dupes,
        "partitions_read": read,
        "objects": objects,
    }
    return ItemResult("bucket", file_id, b, "ok", report=report)


def judge(
    parts: list[PartitionItem],
    p_results: list[ItemResult],
    b_results: list[ItemResult],
    tolerance: float = 10.0,
) -> Any:
    return judge_run(
        parts,
        bucket_items_for(parts),
        p_results,
        b_results,
        tolerated_failure_percent=tolerance,
        max_bad_ratio={"orders": 0.2},
        fail_on_bad_rows={"orders": False},
    )


def test_judge_run_rows_add_up_across_partitions_completes() -> None:
    # GIVEN two partitions (10 rows, 1 bad; 8 rows, 0 bad) and two buckets with 1 duplicate
    parts = partitions(2)
    p_results = [ok_partition(0, 10, 1, [0, 1]), ok_partition(1, 8, 0, [0, 1])]
    b_results = [ok_bucket(0, 9, 1, [0, 1]), ok_bucket(1, 8, 0, [0, 1])]
    # WHEN the run is judged
    run = judge(parts, p_results, b_results)
    # THEN the file is COMPLETED with rows_in = rows_out + rows_quarantined
    assert run.status == "COMPLETED"
    (file,) = run.files
    assert file.status is FileStatus.COMPLETED
    assert (file.rows_in, file.rows_out, file.rows_quarantined) == (18, 16, 2)
    assert len(file.objects) == 2


def test_judge_run_bucket_whose_contract_does_not_load_quarantines_file_with_its_reason() -> None:
    # GIVEN two good partitions, one good bucket, and one bucket rejected because the published
    # contract did not load (what run_bucket's PoisonInputError carries) or failed outright
    parts = partitions(2)
    p_results = [ok_partition(0, 10, 1, [0, 1]), ok_partition(1, 8, 0, [0, 1])]
    detail = {"reason_code": "contract_invalid", "reason": "orders/v1.yaml: sha256 differs"}
    bad = ItemResult("bucket", FILE, 1, "bad", detail=detail, error="PoisonInputError")
    other = ItemResult("bucket", FILE, 1, "bad", detail={}, error="PoisonInputError", cause="x")
    # WHEN the run is judged
    (file,) = judge(parts, p_results, [ok_bucket(0, 9, 1, [0, 1]), bad]).files
    (plain,) = judge(parts, p_results, [ok_bucket(0, 9, 1, [0, 1]), other]).files
    # THEN the file is QUARANTINED with the contract's reason, as transform ends it, every row
    # read; a bucket rejected for another reason still fails the file
    assert (file.status, file.reason_code) == (FileStatus.QUARANTINED, "contract_invalid")
    assert file.reason == "orders/v1.yaml: sha256 differs"
    assert file.rows_in == 18
    assert file.failed_buckets == [{"bucket": 1, "error": f"contract_invalid: {detail['reason']}"}]
    assert (plain.status, plain.reason_code) == (FileStatus.FAILED, "bucket_failed")


def test_judge_run_bucket_read_other_partitions_than_staged_fails_file() -> None:
    # GIVEN bucket 1 read only partition 0 although partition 1 staged rows into it
    parts = partitions(2)
    p_results = [ok_partition(0, 10, 0, [0, 1]), ok_partition(1, 8, 0, [1])]
    b_results = [ok_bucket(0, 5, 0, [0]), ok_bucket(1, 13, 0, [0])]
    # WHEN the run is judged
    (file,) = judge(parts, p_results, b_results).files
    # THEN the file fails: a partition's outputs were not read exactly once
    assert file.status is FileStatus.FAILED
    assert file.reason_code == "partition_outputs_mismatch"


def test_judge_run_staged_rows_lost_fails_file() -> None:
    # GIVEN buckets that read fewer rows than the partitions staged
    parts = partitions(2)
    p_results = [ok_partition(0, 10, 0, [0]), ok_partition(1, 8, 0, [0])]
    b_results = [ok_bucket(0, 15, 0, [0, 1]), ok_bucket(1, 0, 0, [])]
    # WHEN the run is judged
    (file,) = judge(parts, p_results, b_results).files
    # THEN the file fails with the mismatch as reason
    assert file.status is FileStatus.FAILED
    assert file.reason_code == "staging_mismatch"


def test_judge_run_two_different_results_for_one_partition_fails_file() -> None:
    # GIVEN partition 0 reported twice with different counts
    parts = partitions(1)
    p_results = [ok_partition(0, 10, 0, [0]), ok_partition(0, 11, 0, [0])]
    b_results = [ok_bucket(0, 10, 0, [0]), ok_bucket(1, 0, 0, [])]
    # WHEN the run is judged
    (file,) = judge(parts, p_results, b_results).files
    # THEN the file fails: a partition must have exactly one set of outputs
    assert file.status is FileStatus.FAILED
    assert "two different results" in (file.reason or "")


def test_judge_run_bad_partition_within_tolerance_counts_rows_as_quarantined() -> None:
    # GIVEN 20 partitions of 10 rows, one rejected whole (its 10 rows in the error detail)
    parts = partitions(20)
    p_results = [ok_partition(p, 10, 0, [0]) for p in range(20) if p != 7]
    p_results.append(
        ItemResult(
            "partition",
            FILE,
            7,
            "bad",
            error="PoisonInputError",
            detail={"rows_in": 10, "reason_code": "bad_row_ratio_exceeded", "reason": "x"},
        )
    )
    b_results = [ok_bucket(0, 190, 0, [p for p in range(20) if p != 7]), ok_bucket(1, 0, 0, [])]
    # WHEN the run is judged (1 of 20 = 5% <= 10%)
    run = judge(parts, p_results, b_results)
    # THEN run and file complete, the bad partition listed and its rows quarantined
    assert run.status == "COMPLETED"
    assert run.partitions_failed == 1
    (file,) = run.files
    assert file.status is FileStatus.COMPLETED
    assert (file.rows_in, file.rows_out, file.rows_quarantined) == (200, 190, 10)
    assert [b["partition"] for b in file.bad_partitions] == [7]


def test_judge_run_bad_partitions_above_tolerance_fail_run_and_every_file() -> None:
    # GIVEN two files of 4 partitions; one partition of the first is rejected (1/8 = 12.5%),
    # holding 10% of that file's rows (below the contract's 20%, so not a file rejection)
    first, second = partitions(4), partitions(4, file_id="b" * 32)
    p_results = [ok_partition(p, 30, 0, [0]) for p in range(1, 4)]
    p_results.append(
        ItemResult(
            "partition", FILE, 0, "bad", detail={"rows_in": 10, "reason_code": "x", "reason": "y"}
        )
    )
    p_results += [ok_partition(p, 10, 0, [0], file_id="b" * 32) for p in range(4)]
    b_results = [
        ok_bucket(0, 90, 0, [1, 2, 3]),
        ok_bucket(1, 0, 0, []),
        ok_bucket(0, 40, 0, [0, 1, 2, 3], file_id="b" * 32),
        ok_bucket(1, 0, 0, [], file_id="b" * 32),
    ]
    # WHEN the run is judged
    run = judge(first + second, p_results, b_results)
    # THEN the run fails with the reason and no file is COMPLETED
    assert run.status == "FAILED"
    assert run.reason_code == "tolerated_failures_exceeded"
    assert {f.status for f in run.files} == {FileStatus.FAILED}


def test_judge_run_failed_child_leaves_file_failed_with_partition_listed() -> None:
    # GIVEN partition 1's child failed after its retries (no row count known)
    parts = partitions(30)
    p_results = [ok_partition(p, 10, 0, [0]) for p in range(30) if p != 1]
    p_results.append(ItemResult("partition", FILE, 1, "failed", error="States.Timeout"))
    b_results = [ok_bucket(0, 290, 0, [p for p in range(30) if p != 1]), ok_bucket(1, 0, 0, [])]
    # WHEN the run is judged
    run = judge(parts, p_results, b_results)
    # THEN the file fails naming the partition; the run stays within tolerance
    (file,) = run.files
    assert file.status is FileStatus.FAILED
    assert file.reason_code == "partition_failed"
    assert file.failed_partitions[0]["partition"] == 1
    assert run.status == "COMPLETED"


def test_judge_run_partition_whose_contract_does_not_load_quarantines_file_not_run() -> None:
    # GIVEN a file of two partitions, one of them rejected because the published contract did
    # not load when it ran (no row of it read), in a run of two partitions (tolerance 10 %)
    parts = partitions(2)
    detail = {"reason_code": "contract_invalid", "reason": "orders/v1.yaml: sha256 differs"}
    p_results = [
        ok_partition(0, 10, 0, [0, 1]),
        ItemResult("partition", FILE, 1, "bad", detail=detail, error="PoisonInputError"),
    ]
    b_results = [ok_bucket(0, 5, 0, [0]), ok_bucket(1, 5, 0, [0])]
    # WHEN the run is judged
    run = judge(parts, p_results, b_results)
    # THEN the file is QUARANTINED with the contract's reason, as validate ends it, and the
    # partition is a file verdict, not a failure counted against the run's tolerance
    (file,) = run.files
    assert (file.status, file.reason_code) == (FileStatus.QUARANTINED, "contract_invalid")
    assert file.reason == "orders/v1.yaml: sha256 differs"
    assert file.bad_partitions[0]["partition"] == 1
    assert (run.status, run.partitions_failed) == ("COMPLETED", 0)


def test_judge_run_whole_file_rejection_is_a_file_verdict_not_a_run_failure() -> None:
    # GIVEN a one-partition file rejected whole (header mismatch)
    parts = partitions(1)
    rejected = ItemResult(
        "partition",
        FILE,
        0,
        "bad",
        detail={"rows_in": 0, "reason_code": "header_mismatch", "reason": "bad header"},
    )
    # WHEN the run is judged
    run = judge(parts, [rejected], [ok_bucket(0, 0, 0, []), ok_bucket(1, 0, 0, [])])
    # THEN the file is QUARANTINED with the reason, and the run completes
    (file,) = run.files
    assert (file.status, file.reason_code) == (FileStatus.QUARANTINED, "header_mismatch")
    assert run.status == "COMPLETED"


async def test_read_map_results_reads_manifest_succeeded_and_failed_files() -> None:
    # GIVEN a ResultWriter output: one succeeded child (an ok and a bad partition), one failed
    store = InMemoryObjectStore()
    item = partitions(3)[2].model_dump(mode="json")
    ok = {"outcome": "ok", "report": {"file_id": FILE, "partition": 0, "rows_in": 3}}
    cause = orjson.dumps(
        {"errorMessage": orjson.dumps({"rows_in": 4}).decode(), "errorType": "PoisonInputError"}
    ).decode()
    bad = {
        "outcome": "bad",
        "run_id": "r1",
        "partition": partitions(3)[1].model_dump(mode="json"),
        "error": {"Error": "PoisonInputError", "Cause": cause},
    }
    succeeded = [{"Status": "SUCCEEDED", "Output": orjson.dumps([ok, bad]).decode()}]
    failed = [
        {
            "Status": "FAILED",
            "Error": "States.Timeout",
            "Cause": "",
            "Input": orjson.dumps({"Items": [{"partition": item}]}).decode(),
        }
    ]
    store.put("work", "res/run/SUCCEEDED_0.json", orjson.dumps(succeeded))
    store.put("work", "res/run/FAILED_0.json", orjson.dumps(failed))
    manifest = {
        "DestinationBucket": "work",
        "MapRunArn": "arn",
        "ResultFiles": {
            "SUCCEEDED": [{"Key": "res/run/SUCCEEDED_0.json", "Size": 1}],
            "FAILED": [{"Key": "res/run/FAILED_0.json", "Size": 1}],
            "PENDING": [],
        },
    }
    store.put("work", "res/run/manifest.json", orjson.dumps(manifest))
    # WHEN the results are read
    results = await read_map_results(
        store, {"Bucket": "work", "Key": "res/run/manifest.json"}, "partition"
    )
    # THEN each item is classified, with the bad partition's row count from its error
    by_index = {r.index: r for r in results}
    assert by_index[0].outcome == "ok"
    assert (by_index[1].outcome, by_index[1].detail["rows_in"]) == ("bad", 4)
    assert (by_index[2].outcome, by_index[2].error) == ("failed", "States.Timeout")


def test_judge_run_bucket_quarantines_count_toward_max_bad_ratio() -> None:
    # GIVEN a file whose partitions are clean (20 rows) but whose buckets quarantine 5 rows
    # (failed casts, duplicates): 25% against the contract's 20%
    parts = partitions(2)
    p_results = [ok_partition(0, 10, 0, [0, 1]), ok_partition(1, 10, 0, [0, 1])]
    b_results = [ok_bucket(0, 10, 3, [0, 1]), ok_bucket(1, 10, 2, [0, 1])]

    run = judge(parts, p_results, b_results)

    # THEN the file is QUARANTINED as validate would have done: the manifest is never written
    (file,) = run.files
    assert file.status is FileStatus.QUARANTINED
    assert file.reason_code == "bad_row_ratio_exceeded"
    assert file.reason.startswith("5 of 20 rows are invalid (25.0%)")
