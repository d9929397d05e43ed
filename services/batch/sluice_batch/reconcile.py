"""Reconcile a batch run from the Maps' results, and record failures.

`judge_run` is the arithmetic (pure, unit-tested on fake results): per file, every planned
partition and bucket must have exactly one result; `rows_in == rows_out + rows_quarantined`
across all partitions (rows of a partition rejected as a whole count as quarantined); the
buckets must have read exactly the staged objects the partitions wrote, and their Parquet
objects must be disjoint. Rejected or failed partitions are tolerated up to
`tolerated_failure_percent` of the run's partitions (whole-file rejections of unsplit files are
file verdicts, as on the real-time path, and do not count); above it the run fails and no file
is marked COMPLETED. A partition or bucket whose contract or lookup table does not load
(`contract_invalid`, `invalid_lookup_table`) quarantines its file with that reason, as validate
and transform do.

`reconcile_run` applies a judgement: manifest of each completed file written last (after its
Parquet objects, which run_bucket wrote), ledger moved forward (VALIDATING → TRANSFORMING →
WRITING → COMPLETED, or FAILED/QUARANTINED with the reason), run record updated, events
published (`file.processed.v1` per completed file, then `batch.completed.v1`/`batch.failed.v1`).
Re-running it is safe: files already terminal are left alone (a completed file's
`file.processed` is re-published with the same deterministic id).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from contracts.envelope import Envelope
from contracts.events import BatchCompletedV1, BatchFailedV1, FileProcessedV1
from sluice_batch.items import (
    BucketItem,
    PartitionItem,
    bucket_items_from_jsonl,
    partition_items_from_jsonl,
)
from sluice_batch.plan import run_keys
from sluice_batch.results import ItemResult, read_map_results
from sluice_shared.errors import PoisonInputError, TransientError
from sluice_shared.keys import StageKeys, s3_uri
from sluice_shared.ports import (
    TERMINAL_STATUSES,
    FileRecord,
    FileStatus,
    RunRecord,
    StaleRunError,
    StaleStateError,
)
from sluice_shared.stages import MAX_MANIFEST_BYTES, event_id, load_contract, processed_fact

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sluice_batch.config import BatchSettings
    from sluice_batch.deps import BatchDeps

MAX_ITEM_MANIFEST_BYTES = 256 * 2**20
# The reason codes of a partition or bucket whose contract or lookup table does not load
# (`work.run_partition`, `work.run_bucket`): the file's verdict, QUARANTINED with that code as
# validate and transform end it, not a failed item (nor one counted against the tolerance).
UNUSABLE_CONTRACT = frozenset({"contract_invalid", "invalid_lookup_table"})
RUN_WRITE_ATTEMPTS = 20
_FORWARD = (
    FileStatus.VALIDATING,
    FileStatus.TRANSFORMING,
    FileStatus.WRITING,
    FileStatus.COMPLETED,
)


@dataclass
class FileVerdict:
    """The reconciled outcome of one file of a run."""

    file_id: str
    item: PartitionItem
    status: FileStatus = FileStatus.COMPLETED
    reason_code: str | None = None
    reason: str | None = None
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    bytes_out: int = 0
    objects: list[dict[str, Any]] = field(default_factory=list)
    bad_partitions: list[dict[str, Any]] = field(default_factory=list)
    failed_partitions: list[dict[str, Any]] = field(default_factory=list)
    failed_buckets: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, status: FileStatus, code: str, reason: str) -> None:
        if self.status is FileStatus.COMPLETED:
            self.status, self.reason_code, self.reason = status, code, reason


@dataclass
class RunVerdict:
    """The reconciled outcome of a run: COMPLETED or FAILED with a reason, and every file's."""

    status: str
    files: list[FileVerdict]
    partitions: int
    partitions_failed: int
    reason_code: str | None = None
    reason: str | None = None

    def totals(self) -> dict[str, int]:
        return {
            "rows_in": sum(f.rows_in for f in self.files),
            "rows_out": sum(f.rows_out for f in self.files),
            "rows_quarantined": sum(f.rows_quarantined for f in self.files),
        }


def _pick(results: Sequence[ItemResult]) -> tuple[ItemResult | None, str | None]:
    """The one result of an item, or a problem (none, or two different successful reports)."""
    ok = [r for r in results if r.outcome == "ok"]
    if ok:
        if any(r.report != ok[0].report for r in ok[1:]):
            return None, "two different results for the same item"
        return ok[0], None
    bad = [r for r in results if r.outcome == "bad"]
    if bad:
        return bad[0], None
    if results:
        return results[0], None
    return None, "no result"


def _label(item: PartitionItem) -> dict[str, Any]:
    return {"partition": item.partition, "start": item.start, "end": item.end}


def judge_run(
    partitions: Sequence[PartitionItem],
    buckets: Sequence[BucketItem],
    partition_results: Sequence[ItemResult],
    bucket_results: Sequence[ItemResult],
    *,
    tolerated_failure_percent: float,
    max_bad_ratio: dict[str, float],
    fail_on_bad_rows: dict[str, bool],
) -> RunVerdict:
    """Judge a run from its plan and its Maps' item results (see the module docstring).

    `max_bad_ratio` / `fail_on_bad_rows`: each dataset's quarantine policy, by dataset name.
    """
    by_part: dict[tuple[str, int], list[ItemResult]] = defaultdict(list)
    for r in partition_results:
        by_part[(r.file_id, r.index)].append(r)
    by_bucket: dict[tuple[str, int], list[ItemResult]] = defaultdict(list)
    for r in bucket_results:
        by_bucket[(r.file_id, r.index)].append(r)

    verdicts: dict[str, FileVerdict] = {}
    staged: dict[str, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    rows_valid: dict[str, int] = defaultdict(int)
    validate_bad: dict[str, int] = defaultdict(int)
    counted_failures = 0
    for item in partitions:
        verdict = verdicts.setdefault(item.file_id, FileVerdict(item.file_id, item))
        result, problem = _pick(by_part.get((item.file_id, item.partition), []))
        if result is None or result.outcome == "failed":
            why = problem or f"{result.error if result else ''}: {result.cause if result else ''}"
            verdict.failed_partitions.append({**_label(item), "error": why})
            verdict.fail(
                FileStatus.FAILED,
                "partition_failed",
                f"partition {item.partition} bytes [{item.start}, {item.end}) failed: {why}",
            )
            counted_failures += 1
            continue
        if result.outcome == "bad":
            rows = result.detail.get("rows_in")
            code = result.detail.get("reason_code", result.error or "partition_rejected")
            reason = result.detail.get("reason", result.cause or "")
            verdict.bad_partitions.append(
                {**_label(item), "reason_code": code, "reason": reason, "rows_in": rows}
            )
            if code in UNUSABLE_CONTRACT:
                # the contract did not load (no row read): the file's verdict, as validate's
                verdict.fail(FileStatus.QUARANTINED, str(code), str(reason))
                continue
            if item.partitions > 1:
                counted_failures += 1
            if not isinstance(rows, int):
                verdict.fail(
                    FileStatus.FAILED,
                    "partition_rows_unknown",
                    f"partition {item.partition} was rejected ({result.error}: {result.cause}) "
                    "without a row count",
                )
                continue
            verdict.rows_in += rows
            validate_bad[item.file_id] += rows
            continue
        report = result.report
        verdict.rows_in += int(report["rows_in"])
        validate_bad[item.file_id] += int(report["rows_quarantined"])
        rows_valid[item.file_id] += int(report["rows_valid"])
        for b in report.get("staged_buckets", []):
            staged[item.file_id][int(b)].add(item.partition)

    read_rows: dict[str, int] = defaultdict(int)
    for bucket_item in buckets:
        verdict = verdicts[bucket_item.file_id]
        b = bucket_item.hash_bucket
        result, problem = _pick(by_bucket.get((bucket_item.file_id, b), []))
        code = result.detail.get("reason_code") if result is not None else None
        if result is not None and result.outcome == "bad" and code in UNUSABLE_CONTRACT:
            # the contract or a lookup table does not load: the file's verdict, as transform's
            reason = str(result.detail.get("reason", result.cause or ""))
            verdict.failed_buckets.append({"bucket": b, "error": f"{code}: {reason}"})
            verdict.fail(FileStatus.QUARANTINED, str(code), reason)
            continue
        if result is None or result.outcome != "ok":
            why = problem or f"{result.error if result else ''}: {result.cause if result else ''}"
            verdict.failed_buckets.append({"bucket": b, "error": why})
            verdict.fail(FileStatus.FAILED, "bucket_failed", f"bucket {b} failed: {why}")
            continue
        report = result.report
        read_rows[bucket_item.file_id] += int(report["rows_in"])
        verdict.rows_out += int(report["rows_out"])
        verdict.rows_quarantined += int(report["rows_quarantined"])
        if set(report.get("partitions_read", [])) != staged[bucket_item.file_id].get(b, set()):
            verdict.fail(
                FileStatus.FAILED,
                "partition_outputs_mismatch",
                f"bucket {b} read partitions {sorted(report.get('partitions_read', []))}, the "
                f"partitions staged {sorted(staged[bucket_item.file_id].get(b, set()))}",
            )
        prefix = f"part-{bucket_item.file_id}-b{b:04d}-"
        for obj in report.get("objects", []):
            if prefix not in obj["key"]:
                verdict.fail(
                    FileStatus.FAILED,
                    "partition_outputs_mismatch",
                    f"bucket {b} reported object {obj['key']} that is not its own",
                )
            verdict.objects.append(obj)

    for file_id, verdict in verdicts.items():
        verdict.rows_quarantined += validate_bad[file_id]
        verdict.bytes_out = sum(int(o["bytes"]) for o in verdict.objects)
        keys = [o["key"] for o in verdict.objects]
        if len(keys) != len(set(keys)):
            verdict.fail(
                FileStatus.FAILED, "partition_outputs_mismatch", "two buckets wrote the same object"
            )
        if verdict.status is not FileStatus.COMPLETED:
            continue
        if read_rows[file_id] != rows_valid[file_id]:
            verdict.fail(
                FileStatus.FAILED,
                "staging_mismatch",
                f"partitions staged {rows_valid[file_id]} valid rows, buckets read "
                f"{read_rows[file_id]}",
            )
            continue
        written = sum(int(o["rows"]) for o in verdict.objects)
        if (
            verdict.rows_in != verdict.rows_out + verdict.rows_quarantined
            or written != verdict.rows_out
        ):
            verdict.fail(
                FileStatus.FAILED,
                "reconciliation_mismatch",
                f"rows_in {verdict.rows_in} != rows_out {verdict.rows_out} + rows_quarantined "
                f"{verdict.rows_quarantined} (Parquet objects hold {written} rows)",
            )
            continue
        dataset = verdict.item.dataset.name
        # validate's and transform's quarantines (failed casts, duplicates) judged together,
        # as the real-time path does
        bad = verdict.rows_quarantined
        if verdict.bad_partitions and len(verdict.bad_partitions) == verdict.item.partitions:
            first = verdict.bad_partitions[0]
            verdict.fail(FileStatus.QUARANTINED, str(first["reason_code"]), str(first["reason"]))
        elif bad and fail_on_bad_rows.get(dataset, False):
            verdict.fail(
                FileStatus.QUARANTINED,
                "bad_rows_not_allowed",
                f"{bad} rows are invalid and the contract's policy is fail",
            )
        elif verdict.rows_in and bad / verdict.rows_in > max_bad_ratio.get(dataset, 1.0):
            verdict.fail(
                FileStatus.QUARANTINED,
                "bad_row_ratio_exceeded",
                f"{bad} of {verdict.rows_in} rows are invalid ({bad / verdict.rows_in:.1%}), above "
                f"the contract's maximum of {max_bad_ratio[dataset]:.1%}",
            )

    total = len(partitions)
    run = RunVerdict("COMPLETED", list(verdicts.values()), total, counted_failures)
    if total and counted_failures * 100 > tolerated_failure_percent * total:
        run.status = "FAILED"
        run.reason_code = "tolerated_failures_exceeded"
        run.reason = (
            f"{counted_failures} of {total} partitions failed or were rejected "
            f"({counted_failures / total:.1%}), above the tolerated {tolerated_failure_percent:g}%"
        )
        for verdict in run.files:
            if verdict.status is FileStatus.COMPLETED:
                verdict.status = FileStatus.FAILED
                verdict.reason_code = "batch_run_failed"
                verdict.reason = run.reason
    return run


# ---------------------------------------------------------------------------- applying


async def _load_plan(
    deps: BatchDeps, settings: BatchSettings, run_id: str
) -> tuple[list[PartitionItem], list[BucketItem]]:
    keys = run_keys(run_id)
    parts = await deps.objects.get_bytes(
        settings.work_bucket, keys["partitions"], max_bytes=MAX_ITEM_MANIFEST_BYTES
    )
    buckets = await deps.objects.get_bytes(
        settings.work_bucket, keys["buckets"], max_bytes=MAX_ITEM_MANIFEST_BYTES
    )
    return partition_items_from_jsonl(parts), bucket_items_from_jsonl(buckets)


async def reconcile_run(
    run_id: str,
    execution_arn: str,
    validate_results: dict[str, Any],
    bucket_results: dict[str, Any],
    deps: BatchDeps,
    settings: BatchSettings,
) -> dict[str, Any]:
    """Reconcile run `run_id` from the two Maps' ResultWriter details and apply the verdict.

    Returns `{"status": "COMPLETED" | "FAILED", ...counts}` (small: the state machine only
    branches on `status`). Raises PoisonInputError when the run or its manifests are unknown,
    TransientError for AWS failures worth a retry.
    """
    run = await deps.ledger.get_run(run_id)
    if run is None:
        raise PoisonInputError(f"batch run {run_id} is not in the ledger", code="unknown_run")
    partitions, buckets = await _load_plan(deps, settings, run_id)
    part_results = await read_map_results(deps.objects, validate_results, "partition")
    bucket_res = await read_map_results(deps.objects, bucket_results, "bucket")
    ratios: dict[str, float] = {}
    fail_on_bad: dict[str, bool] = {}
    for item in partitions:
        if item.dataset.name not in ratios:
            contract = await load_contract(deps.contracts, item.dataset.name, item.dataset.version)
            ratios[item.dataset.name] = contract.quarantine.max_bad_ratio
            fail_on_bad[item.dataset.name] = contract.quarantine.policy == "fail"
    verdict = judge_run(
        partitions,
        buckets,
        part_results,
        bucket_res,
        tolerated_failure_percent=settings.tolerated_failure_percent,
        max_bad_ratio=ratios,
        fail_on_bad_rows=fail_on_bad,
    )
    envelopes: list[Envelope[Any]] = []
    for file_verdict in verdict.files:
        event = await _apply_file(file_verdict, run_id, deps, settings)
        if event is not None:
            envelopes.append(
                Envelope.wrap(
                    event,
                    correlationid=file_verdict.file_id,
                    id=event_id(file_verdict.file_id, event.TYPE),
                )
            )
    result_uri = s3_uri(validate_results["Bucket"], validate_results["Key"])
    totals = verdict.totals()
    details = {
        **run.details,
        "partitions_failed": verdict.partitions_failed,
        "files_completed": sum(f.status is FileStatus.COMPLETED for f in verdict.files),
        "files_failed": [
            {
                "file_id": f.file_id,
                "status": f.status.value,
                "reason_code": f.reason_code,
                "reason": f.reason,
            }
            for f in verdict.files
            if f.status is not FileStatus.COMPLETED
        ][:200],
        "bad_partitions": [
            {"file_id": f.file_id, **p} for f in verdict.files for p in f.bad_partitions
        ][:200],
        "failed_partitions": [
            {"file_id": f.file_id, **p} for f in verdict.files for p in f.failed_partitions
        ][:200],
        "results": {
            "partitions": result_uri,
            "buckets": s3_uri(bucket_results["Bucket"], bucket_results["Key"]),
        },
        **totals,
    }
    if verdict.reason_code:
        details["reason_code"], details["reason"] = verdict.reason_code, verdict.reason
    else:
        details.pop("reason_code", None)
        details.pop("reason", None)
    await deps.ledger.put_run(
        run.model_copy(
            update={"status": verdict.status, "details": details, "updated_at": datetime.now(UTC)}
        )
    )
    batch_event: BatchCompletedV1 | BatchFailedV1
    if verdict.status == "COMPLETED":
        batch_event = BatchCompletedV1(
            run_id=run_id,
            execution_arn=execution_arn,
            files=len(verdict.files),
            partitions=verdict.partitions,
            partitions_failed=verdict.partitions_failed,
            result_uri=result_uri,
            **totals,
        )
    else:
        batch_event = BatchFailedV1(
            run_id=run_id,
            execution_arn=execution_arn,
            reason_code=verdict.reason_code or "batch_failed",
            reason=verdict.reason or "the run failed",
            files=len(verdict.files),
            partitions=verdict.partitions,
            partitions_failed=verdict.partitions_failed,
        )
    envelopes.append(
        Envelope.wrap(batch_event, correlationid=run_id, id=event_id(run_id, batch_event.TYPE))
    )
    await deps.publisher.publish(envelopes)
    return {"status": verdict.status, "files": len(verdict.files), **totals}


async def _apply_file(
    verdict: FileVerdict, run_id: str, deps: BatchDeps, settings: BatchSettings
) -> FileProcessedV1 | None:
    """Record one file's verdict; return its `file.processed` fact when it is COMPLETED."""
    record = await deps.ledger.get(verdict.file_id)
    if record is None:
        raise PoisonInputError(f"file {verdict.file_id} is not in the ledger", code="unknown_file")
    keys = StageKeys(verdict.file_id, verdict.item.dataset.name)
    if record.status is FileStatus.COMPLETED:
        manifest = orjson.loads(
            await deps.objects.get_bytes(
                settings.processed_bucket, keys.manifest, max_bytes=MAX_MANIFEST_BYTES
            )
        )
        return _processed(record, settings, keys, manifest)
    if record.status in TERMINAL_STATUSES:
        return None
    if verdict.status is not FileStatus.COMPLETED:
        await deps.ledger.transition(
            verdict.file_id,
            verdict.status,
            expected=(record.status,),
            rows_in=verdict.rows_in,
            rows_out=0 if verdict.status is FileStatus.QUARANTINED else verdict.rows_out,
            rows_quarantined=verdict.rows_in
            if verdict.status is FileStatus.QUARANTINED
            else verdict.rows_quarantined,
            error_code=verdict.reason_code,
            error=verdict.reason,
        )
        return None
    record = await _walk_to(deps, record, FileStatus.WRITING)
    manifest = {
        "file_id": verdict.file_id,
        "dataset": verdict.item.dataset.model_dump(),
        "source": s3_uri(record.bucket, record.key),
        "rows_in": verdict.rows_in,
        "rows_out": verdict.rows_out,
        "rows_quarantined": verdict.rows_quarantined,
        "bytes_out": verdict.bytes_out,
        "objects": sorted(verdict.objects, key=lambda o: str(o["key"])),
        "object_created_at": record.created_at.isoformat(),
        "completed_at": datetime.now(UTC).isoformat(),
        "run_id": run_id,
        "partitions": verdict.item.partitions,
        "bad_partitions": verdict.bad_partitions,
    }
    # Last: a reader that trusts manifests never sees a file whose Parquet is incomplete.
    await deps.objects.put_bytes(
        settings.processed_bucket,
        keys.manifest,
        orjson.dumps(manifest, option=orjson.OPT_INDENT_2),
        content_type="application/json",
    )
    record = await deps.ledger.transition(
        verdict.file_id,
        FileStatus.COMPLETED,
        expected=(FileStatus.WRITING,),
        rows_in=verdict.rows_in,
        rows_out=verdict.rows_out,
        rows_quarantined=verdict.rows_quarantined,
    )
    return _processed(record, settings, keys, manifest)


async def _walk_to(deps: BatchDeps, record: FileRecord, target: FileStatus) -> FileRecord:
    """Move a file forward one status at a time up to `target` (the ledger only steps)."""
    if record.status not in _FORWARD:
        record = await deps.ledger.transition(
            record.file_id, FileStatus.VALIDATING, expected=(record.status,)
        )
    while record.status is not target:
        step = _FORWARD[_FORWARD.index(record.status) + 1]
        record = await deps.ledger.transition(record.file_id, step, expected=(record.status,))
    return record


def _processed(
    record: FileRecord,
    settings: BatchSettings,
    keys: StageKeys,
    manifest: dict[str, Any],
) -> FileProcessedV1:
    return processed_fact(
        manifest,
        bucket=record.bucket,
        key=record.key,
        manifest_uri=s3_uri(settings.processed_bucket, keys.manifest),
    )


# ---------------------------------------------------------------------------- failures


async def record_run_failure(
    run_id: str,
    execution_arn: str,
    error: dict[str, Any],
    deps: BatchDeps,
) -> dict[str, Any]:
    """The run failed outside the Maps (plan or reconcile): mark it and its non-terminal files
    FAILED with the error as the reason and publish `batch.failed.v1`."""
    code = _code(error.get("Error"))
    reason = f"{error.get('Error', 'States.Failed')}: {error.get('Cause', '')}"[:4000]
    run = await deps.ledger.get_run(run_id) or RunRecord(run_id=run_id, execution_arn=execution_arn)
    file_ids: list[str] = list(run.details.get("file_ids", []))
    for file_id in file_ids:
        record = await deps.ledger.get(file_id)
        if record is None or record.status in TERMINAL_STATUSES:
            continue
        try:
            await deps.ledger.transition(
                file_id, FileStatus.FAILED, expected=(record.status,), error_code=code, error=reason
            )
        except StaleStateError:
            continue
    details = {**run.details, "reason_code": code, "reason": reason}
    await deps.ledger.put_run(
        run.model_copy(
            update={"status": "FAILED", "details": details, "updated_at": datetime.now(UTC)}
        )
    )
    event = BatchFailedV1(
        run_id=run_id,
        execution_arn=execution_arn,
        reason_code=code,
        reason=reason or "the run failed",
        files=len(file_ids),
        partitions=int(run.details.get("partitions", 0)),
        partitions_failed=0,
    )
    await deps.publisher.publish(
        [Envelope.wrap(event, correlationid=run_id, id=event_id(run_id, event.TYPE))]
    )
    return {"status": "FAILED", "reason_code": code}


async def record_item_failure(
    run_id: str, kind: str, item: dict[str, Any], error: dict[str, Any], deps: BatchDeps
) -> dict[str, Any]:
    """A partition or bucket failed after its retries (its child will fail, counting against the
    Map's tolerance). Record the reason on the file (kept non-terminal, so a redrive can still
    complete it) and on the run (FAILED until a Reconcile says otherwise)."""
    file_id = str(item.get("file_id"))
    index = item.get("partition") if kind == "partition" else item.get("hash_bucket")
    label = f"{kind} {index} of file {file_id}"
    reason = f"{label} failed: {error.get('Error', 'States.Failed')}: {error.get('Cause', '')}"[
        :4000
    ]
    for _ in range(5):
        record = await deps.ledger.get(file_id)
        if record is None or record.status in TERMINAL_STATUSES:
            break
        try:
            await deps.ledger.transition(
                file_id,
                record.status,
                expected=(record.status,),
                error_code=f"{kind}_failed",
                error=reason,
            )
            break
        except StaleStateError:
            continue
    # Children fail concurrently: a conditional read-modify-write, retried, so no failed item
    # is lost to a concurrent writer.
    for _ in range(RUN_WRITE_ATTEMPTS):
        run = await deps.ledger.get_run(run_id)
        if run is None:
            break
        failed = [*run.details.get("failed_items", []), label][-200:]
        details = {
            **run.details,
            "failed_items": failed,
            "reason_code": f"{kind}_failed",
            "reason": f"{reason} (the run fails if failures exceed the Map's tolerance)",
        }
        updated_at = max(datetime.now(UTC), run.updated_at + timedelta(microseconds=1))
        try:
            await deps.ledger.put_run(
                run.model_copy(
                    update={"status": "FAILED", "details": details, "updated_at": updated_at}
                ),
                replaces=run,
            )
            break
        except StaleRunError:
            continue
    else:
        raise TransientError(f"run {run_id} kept changing while recording {label}")
    return {"recorded": label}


def _code(error: Any) -> str:
    import re

    text = re.sub(r"[^a-z0-9_]+", "_", str(error or "failed").lower()).strip("_")
    return (text if text and text[0].isalpha() else f"e_{text}")[:120] or "failed"
