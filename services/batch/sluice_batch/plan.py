"""Plan a batch run: find its objects, register them, cut them into partitions, write manifests.

A run covers one large object (started by ingest), a prefix (backfill, `sluice batch start`),
a list of objects (`--manifest`) or a schedule window (every raw object created in it). Plan
writes two JSON Lines manifests to the work bucket, which the two Distributed Maps read:
`batch/runs/<run_id>/partitions.jsonl` and `batch/runs/<run_id>/buckets.jsonl`, plus
`plan.json` (per-file cut notes and bucket counts), and records `RUN#<run_id>` in the ledger.

Idempotent: a retried plan recomputes the same items and keys; a file is claimed for the run by
moving it to VALIDATING with the run id as correlation id, so a file already claimed by this
run is kept and one that is done or owned by another run is skipped (listed in the plan).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from contracts.errors import DatasetContractInvalid
from contracts.events import FileIngestedV1
from contracts.types import DatasetRef
from sluice_batch.cuts import plan_cuts
from sluice_batch.items import PartitionItem, bucket_items_for, to_jsonl
from sluice_shared.datapath.buckets import bucket_count_for
from sluice_shared.errors import EventLedgerMismatch, PoisonInputError, SluiceError
from sluice_shared.keys import dataset_of_key, file_id_for, split_s3_uri
from sluice_shared.ports import FileRecord, FileStatus, ObjectInfo, RunRecord, StaleStateError
from sluice_shared.scratch import scratch_dir
from sluice_shared.stages import (
    MAX_REFUSAL_CHARS,
    check_against_ledger,
    identity_claims,
    load_contract,
    registered,
)

if TYPE_CHECKING:
    from sluice_batch.config import BatchSettings
    from sluice_batch.deps import BatchDeps

MAX_LIST_MANIFEST_BYTES = 64 * 2**20
# The run record lists its files inline up to this many (DynamoDB items cap at 400 KB); the
# full list is always in plan.json.
MAX_FILES_INLINE = 2000
_RUN_ID_BAD = re.compile(r"[^A-Za-z0-9_-]")


class ScheduleWindow(BaseModel):
    """The scheduled rule's input: process raw objects created in `[end - hours, end)`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    window_end: datetime
    window_hours: float = Field(default=24, gt=0)


class PlanRequest(BaseModel):
    """What a run covers; exactly one of the sources is set (the execution input)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    source: Literal["file", "prefix", "manifest", "schedule"] | None = None
    file: FileIngestedV1 | None = None  # from ingest
    bucket: str | None = None  # default: the raw bucket
    key: str | None = None
    version_id: str | None = None
    prefix: str | None = None
    manifest: str | None = None  # s3://bucket/key of a JSON/JSONL list of objects
    schedule: ScheduleWindow | None = None

    def kind(self) -> str:
        if self.file is not None:
            return "file"
        for name in ("schedule", "manifest", "prefix", "key"):
            if getattr(self, name) is not None:
                return "file" if name == "key" else name
        raise PoisonInputError(
            "a batch run needs one of: file, key, prefix, manifest, schedule", code="bad_request"
        )


@dataclass(frozen=True)
class _Target:
    bucket: str
    key: str
    version_id: str | None = None
    info: ObjectInfo | None = None
    dataset_version: int | None = None


@dataclass
class PlanReport:
    """What plan returns to the state machine (small: the manifests hold the items)."""

    run_id: str
    max_concurrency: int
    partitions_uri: tuple[str, str]
    buckets_uri: tuple[str, str]
    plan_key: str
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    partition_count: int = 0
    bucket_count: int = 0

    def payload(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "max_concurrency": self.max_concurrency,
            "partitions": {"bucket": self.partitions_uri[0], "key": self.partitions_uri[1]},
            "buckets": {"bucket": self.buckets_uri[0], "key": self.buckets_uri[1]},
            "plan": {"bucket": self.partitions_uri[0], "key": self.plan_key},
            "files": len(self.files),
            "skipped": len(self.skipped),
            "partition_count": self.partition_count,
            "bucket_count": self.bucket_count,
            # Per-file bucket counts; the full per-file detail is in plan.json.
            "bucket_counts": {f["file_id"]: f["bucket_count"] for f in self.files[:100]},
        }


def run_id_for(execution_name: str) -> str:
    """A run id from the execution name (ingest names executions `file-<file_id>`)."""
    cleaned = _RUN_ID_BAD.sub("-", execution_name).strip("-_") or "run"
    return cleaned[:80]


def run_keys(run_id: str) -> dict[str, str]:
    """The work-bucket keys of a run's manifests."""
    base = f"batch/runs/{run_id}/"
    return {
        "partitions": base + "partitions.jsonl",
        "buckets": base + "buckets.jsonl",
        "plan": base + "plan.json",
    }


async def plan_run(
    request: PlanRequest,
    deps: BatchDeps,
    settings: BatchSettings,
    *,
    run_id: str,
    execution_arn: str | None = None,
) -> PlanReport:
    """Plan run `run_id` for `request`: manifests written, files and run registered.

    Returns the report whose `payload()` the Maps read. Raises PoisonInputError for a request
    naming no source or an unreadable manifest, TransientError for AWS failures worth a retry.
    """
    kind = request.kind()
    targets = await _targets(request, kind, deps, settings, run_id)
    keys = run_keys(run_id)
    partitions: list[PartitionItem] = []
    report = PlanReport(
        run_id=run_id,
        max_concurrency=settings.max_concurrency,
        partitions_uri=(settings.work_bucket, keys["partitions"]),
        buckets_uri=(settings.work_bucket, keys["buckets"]),
        plan_key=keys["plan"],
    )
    for target in targets:
        try:
            planned = await _plan_file(target, run_id, deps, settings)
        except SluiceError as skip:
            if not isinstance(skip, PoisonInputError):
                raise
            report.skipped.append({"key": target.key, "reason": f"{skip.code}: {skip.message}"})
            continue
        if isinstance(planned, str):
            report.skipped.append({"key": target.key, "reason": planned})
            continue
        items, note = planned
        partitions.extend(items)
        first = items[0]
        report.files.append(
            {
                "file_id": first.file_id,
                "key": first.source_key,
                "size_bytes": first.size_bytes,
                "partitions": len(items),
                "bucket_count": first.bucket_count,
                "note": note,
            }
        )
    buckets = bucket_items_for(partitions)
    report.partition_count, report.bucket_count = len(partitions), len(buckets)
    await deps.objects.put_bytes(
        settings.work_bucket,
        keys["partitions"],
        to_jsonl(partitions),
        content_type="application/x-ndjson",
    )
    await deps.objects.put_bytes(
        settings.work_bucket,
        keys["buckets"],
        to_jsonl(buckets),
        content_type="application/x-ndjson",
    )
    plan_doc = {
        "run_id": run_id,
        "source": kind,
        "request": request.model_dump(mode="json", exclude_none=True),
        "files": report.files,
        "skipped": report.skipped,
        "partitions": len(partitions),
        "buckets": len(buckets),
    }
    await deps.objects.put_bytes(
        settings.work_bucket, keys["plan"], orjson.dumps(plan_doc), content_type="application/json"
    )
    file_ids = [f["file_id"] for f in report.files]
    await deps.ledger.put_run(
        RunRecord(
            run_id=run_id,
            status="RUNNING",
            execution_arn=execution_arn,
            prefix=request.prefix,
            files=len(file_ids),
            details={
                "source": kind,
                "file_ids": file_ids[:MAX_FILES_INLINE],
                "file_ids_complete": len(file_ids) <= MAX_FILES_INLINE,
                "skipped": report.skipped[:100],
                "partitions": len(partitions),
                "buckets": len(buckets),
                "manifests": {k: f"s3://{settings.work_bucket}/{v}" for k, v in keys.items()},
            },
        )
    )
    return report


async def _ingested_target(ingested: FileIngestedV1, deps: BatchDeps, run_id: str) -> _Target:
    """The object ingest registered and routed to the batch path, as its ledger record has it.

    The execution input only names the file: an input that disagrees with the record (another
    key, dataset or version) is refused with EventLedgerMismatch (the attempt kept in the
    file's history) before anything is planned; UnknownFileError for a file never registered.
    """
    record = await registered(deps.ledger, ingested.file_id)
    try:
        check_against_ledger(
            ingested.file_id,
            {
                **identity_claims(ingested, record),
                "version_id": (ingested.version_id, record.version_id),
                "etag": (ingested.etag, record.etag),
                "size_bytes": (ingested.size_bytes, record.size_bytes),
            },
        )
    except EventLedgerMismatch as mismatch:
        await deps.ledger.record_refusal(
            record,
            event_type=FileIngestedV1.TYPE,
            event_id=run_id,
            code=mismatch.code,
            reason=str(mismatch)[:MAX_REFUSAL_CHARS],
        )
        raise
    info = ObjectInfo(
        key=record.key,
        size=record.size_bytes,
        etag=record.etag or "",
        last_modified=ingested.object_created_at,
        version_id=record.version_id,
    )
    return _Target(
        record.bucket, record.key, record.version_id, info, dataset_version=record.dataset_version
    )


async def _targets(
    request: PlanRequest, kind: str, deps: BatchDeps, settings: BatchSettings, run_id: str
) -> list[_Target]:
    bucket = request.bucket or settings.raw_bucket
    named = request.file.bucket if request.file is not None else bucket
    if named != settings.raw_bucket:
        # Batch runs read only raw objects: another bucket (the work or processed bucket, or one
        # of another team) is never planned, whoever started the execution.
        raise PoisonInputError(
            f"a batch run reads only the raw bucket {settings.raw_bucket!r}, not {named!r}",
            code="not_raw_bucket",
        )
    if request.file is not None:
        return [await _ingested_target(request.file, deps, run_id)]
    if kind == "file":
        assert request.key is not None
        return [_Target(bucket, request.key, request.version_id)]
    if kind == "prefix":
        assert request.prefix is not None
        return [
            _Target(bucket, info.key)
            async for info in deps.objects.list_keys(bucket, request.prefix)
            if not info.key.endswith("/")
        ]
    if kind == "schedule":
        assert request.schedule is not None
        end = request.schedule.window_end
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
        start = end - timedelta(hours=request.schedule.window_hours)
        return [
            _Target(bucket, info.key)
            async for info in deps.objects.list_keys(bucket, "")
            if start <= info.last_modified < end and not info.key.endswith("/")
        ]
    assert request.manifest is not None
    return await _manifest_targets(request.manifest, bucket, deps)


async def _manifest_targets(uri: str, default_bucket: str, deps: BatchDeps) -> list[_Target]:
    """Objects listed in a JSON array or JSON Lines file (keys, or {bucket?, key, version_id?})."""
    try:
        bucket, key = split_s3_uri(uri)
    except ValueError as bad:
        raise PoisonInputError(str(bad), code="bad_request") from None
    data = await deps.objects.get_bytes(bucket, key, max_bytes=MAX_LIST_MANIFEST_BYTES)
    try:
        stripped = data.strip()
        entries: list[Any] = (
            orjson.loads(stripped)
            if stripped.startswith(b"[")
            else [orjson.loads(line) for line in stripped.splitlines() if line.strip()]
        )
        targets = []
        for entry in entries:
            if isinstance(entry, str):
                targets.append(_Target(default_bucket, entry))
            else:
                targets.append(
                    _Target(
                        entry.get("bucket", default_bucket),
                        entry["key"],
                        entry.get("version_id"),
                    )
                )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as bad:
        raise PoisonInputError(
            f"manifest {uri} is not a JSON list or JSON Lines of objects: {bad}",
            code="bad_manifest",
        ) from None
    return targets


async def _plan_file(
    target: _Target, run_id: str, deps: BatchDeps, settings: BatchSettings
) -> tuple[list[PartitionItem], str] | str:
    """The partitions of one object, or the reason it is not part of the run."""
    if target.bucket != settings.raw_bucket:  # a manifest entry naming another bucket
        return f"not_raw_bucket: a batch run reads only the raw bucket {settings.raw_bucket!r}"
    info = target.info or await deps.objects.head(target.bucket, target.key)
    dataset = dataset_of_key(target.key, max_key_length=settings.limits.max_key_length)
    try:
        contract = await load_contract(deps.contracts, dataset, target.dataset_version)
    except KeyError:
        return f"unknown_dataset: no data contract named {dataset!r}"
    except DatasetContractInvalid as invalid:
        return f"{invalid.code}: {invalid.message}"
    version_id = target.version_id or info.version_id
    file_id = file_id_for(target.bucket, target.key, version_id, info.etag)
    record = FileRecord(
        file_id=file_id,
        dataset=dataset,
        dataset_version=contract.version,
        bucket=target.bucket,
        key=target.key,
        version_id=version_id,
        etag=info.etag,
        size_bytes=info.size,
        correlation_id=run_id,
    )
    _, existing = await deps.ledger.register_file(record)
    if info.size > settings.limits.max_file_bytes:
        reason = f"{info.size} bytes, above the {settings.limits.max_file_bytes}-byte limit"
        if existing.status is FileStatus.PENDING:
            # Every file ends in a terminal state: an over-size object is rejected, as ingest
            # rejects it on the real-time path.
            await deps.ledger.transition(
                file_id,
                FileStatus.QUARANTINED,
                expected=(FileStatus.PENDING,),
                rows_in=0,
                rows_out=0,
                rows_quarantined=0,
                error_code="file_too_large",
                error=reason,
            )
        return f"file_too_large: {reason}"
    if not await _claim(deps, existing, run_id):
        return f"already {existing.status} (correlation {existing.correlation_id})"

    bucket_count = bucket_count_for(info.size)
    with scratch_dir(settings.scratch_dir, f"plan-{file_id}") as scratch:
        window = scratch / "window"

        async def read(start: int, end: int) -> bytes:
            await deps.objects.download_to(
                target.bucket, target.key, window, version_id=version_id, byte_range=(start, end)
            )
            return await asyncio.to_thread(window.read_bytes)

        cut = await plan_cuts(
            read,
            info.size,
            contract,
            key=target.key,
            target_bytes=settings.partition_bytes,
            window_bytes=settings.window_bytes,
        )
    ref = DatasetRef(name=dataset, version=contract.version)
    items = [
        PartitionItem(
            run_id=run_id,
            file_id=file_id,
            dataset=ref,
            source_bucket=target.bucket,
            source_key=target.key,
            source_version=version_id,
            size_bytes=info.size,
            bucket_count=bucket_count,
            partitions=len(cut.ranges),
            partition=r.partition,
            start=r.start,
            end=r.end,
        )
        for r in cut.ranges
    ]
    return items, cut.note


async def _claim(deps: BatchDeps, existing: FileRecord, run_id: str) -> bool:
    """Move the file to VALIDATING for this run; False when it is done or owned elsewhere."""
    if existing.status is FileStatus.VALIDATING and existing.correlation_id == run_id:
        return True
    if existing.status is not FileStatus.PENDING:
        return False
    try:
        await deps.ledger.transition(
            existing.file_id,
            FileStatus.VALIDATING,
            expected=(FileStatus.PENDING,),
            correlation_id=run_id,
        )
    except StaleStateError:
        current = await deps.ledger.get(existing.file_id)
        return (
            current is not None
            and current.status is FileStatus.VALIDATING
            and current.correlation_id == run_id
        )
    return True
