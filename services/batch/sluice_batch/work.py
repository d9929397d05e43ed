"""The two per-item steps of a run, with the real-time path's data-path code.

- `run_partition`: validate one partition (a byte range, or a whole file) with
  `validate_file(..., partition, byte_range)`: valid rows are staged per hash bucket at
  `stage/<file_id>/validated/p<partition>-b<bucket>.arrow`, bad rows quarantined. A partition
  whose bytes the contract rejects as a whole raises `PoisonInputError` (the state machine
  catches it and records the partition as bad) after putting its range and reason in the
  quarantine prefix.
- `run_bucket`: transform and write one hash bucket of one file: read that bucket from every
  partition (dedupe across partitions by the global row number `__row`), write deterministic
  Parquet objects `part-<file_id>-b<bucket>-<n>.parquet`. A re-run writes the same keys.

Neither step touches the file's ledger record: dozens of partitions of one file run at once, and
optimistic locking on one item would serialise them. Reconcile moves files forward.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import TYPE_CHECKING, Any

import orjson

from contracts.errors import DatasetContractInvalid
from sluice_shared.datapath.ahead import cpu_limit
from sluice_shared.datapath.memory import release_memory
from sluice_shared.datapath.transform import LookupTableError, transform_bucket
from sluice_shared.datapath.validate import validate_file
from sluice_shared.errors import PoisonInputError
from sluice_shared.keys import StageKeys
from sluice_shared.ports import ObjectNotFoundError
from sluice_shared.scratch import scratch_dir
from sluice_shared.stages import load_contract, load_lookup_tables, write_bucket_parquet

if TYPE_CHECKING:
    from pathlib import Path

    from sluice_batch.config import BatchSettings
    from sluice_batch.deps import BatchDeps
    from sluice_batch.items import BucketItem, PartitionItem

NDJSON = "application/x-ndjson"


def rejected_partition_key(keys: StageKeys, partition: int) -> str:
    """Where a partition rejected as a whole is described (range, reason, rows)."""
    return f"{keys.quarantine_prefix}p{partition:05d}.rejected.json"


async def _fetch_partition(item: PartitionItem, deps: BatchDeps, work: Path) -> Path:
    """The partition's bytes at their own offsets in a sparse local file.

    `validate_file` reads `[start, end)` of a local copy of the object and reports absolute
    byte offsets; writing the range at its offset (the bytes before it a hole, never stored)
    keeps those offsets without downloading the rest of the object.
    """
    src = work / "source"
    if item.whole:
        await deps.objects.download_to(
            item.source_bucket, item.source_key, src, version_id=item.source_version
        )
        return src
    piece = work / "piece"
    await deps.objects.download_to(
        item.source_bucket,
        item.source_key,
        piece,
        version_id=item.source_version,
        byte_range=(item.start, item.end),
    )

    def splice() -> None:
        with piece.open("rb") as fin, src.open("wb") as fout:
            fout.seek(item.start)
            shutil.copyfileobj(fin, fout, 1 << 20)
        piece.unlink()

    await asyncio.to_thread(splice)
    return src


def _poison(detail: dict[str, Any], code: str) -> PoisonInputError:
    """A poison error whose message is `detail` as JSON: Reconcile accounts for the item from
    the Catch result ({Error, Cause}) alone; the class name is what the Catch matches."""
    return PoisonInputError(orjson.dumps(detail).decode(), code=code)


async def run_partition(
    item: PartitionItem, deps: BatchDeps, settings: BatchSettings
) -> dict[str, Any]:
    """Validate one partition and stage its rows; return its report (counts, staged buckets).

    Raises PoisonInputError (message: JSON with the range, reason and `rows_in`) when the
    contract rejects the partition's bytes as a whole, or (`reason_code` `contract_invalid`, no
    row read) when the contract does not load; TransientError for AWS failures.
    """
    try:
        contract = await load_contract(deps.contracts, item.dataset.name, item.dataset.version)
    except DatasetContractInvalid as invalid:
        detail = {
            "file_id": item.file_id,
            "partition": item.partition,
            "start": item.start,
            "end": item.end,
            "reason_code": invalid.code,
            "reason": invalid.message,
        }
        raise _poison(detail, invalid.code) from invalid
    keys = StageKeys(item.file_id, item.dataset.name)
    with (
        scratch_dir(settings.scratch_dir, f"part-{item.file_id}-{item.partition}") as work,
        cpu_limit(settings.data_cpus),
    ):
        src = await _fetch_partition(item, deps, work)
        result = await asyncio.to_thread(
            validate_file,
            src,
            contract,
            work / "out",
            limits=settings.limits,
            key=item.source_key,
            bucket_count=item.bucket_count,
            partition=item.partition,
            byte_range=None if item.whole else (item.start, item.end),
        )
        quarantine_key = None
        if result.quarantine_path is not None:
            quarantine_key = keys.quarantine_validate(item.partition)
            await deps.objects.upload_file(
                result.quarantine_path, settings.error_bucket, quarantine_key, content_type=NDJSON
            )
        if result.rejection is not None:
            detail = {
                "file_id": item.file_id,
                "partition": item.partition,
                "start": item.start,
                "end": item.end,
                "reason_code": result.rejection.reason_code,
                "reason": result.rejection.reason,
                "rows_in": result.rows_in,
                "quarantine_key": quarantine_key,
            }
            await deps.objects.put_bytes(
                settings.error_bucket,
                rejected_partition_key(keys, item.partition),
                orjson.dumps(detail),
                content_type="application/json",
            )
            raise _poison(detail, "partition_rejected")
        for bucket, path in sorted(result.staged.items()):
            await deps.objects.upload_file(
                path, settings.work_bucket, keys.validated(item.partition, bucket)
            )
    release_memory()
    return {
        "kind": "partition",
        "file_id": item.file_id,
        "partition": item.partition,
        "start": item.start,
        "end": item.end,
        "rows_in": result.rows_in,
        "rows_valid": result.rows_valid,
        "rows_quarantined": result.rows_quarantined,
        "bytes_in": result.bytes_in,
        "staged_buckets": sorted(result.staged),
        "quarantine_key": quarantine_key,
        "reasons": result.reasons,
    }


async def run_bucket(item: BucketItem, deps: BatchDeps, settings: BatchSettings) -> dict[str, Any]:
    """Transform and write hash bucket `item.hash_bucket` of one file; return its report.

    Reads the bucket's staged object of every partition (a partition with no row in the bucket,
    or a rejected one, has none), dedupes across them, writes Parquet to the processed bucket.
    Raises PoisonInputError when the contract or a lookup table is unusable (message: JSON with
    `reason_code` `contract_invalid` / `invalid_lookup_table` and the reason, which Reconcile
    makes the file's QUARANTINED verdict, as transform does), TransientError for AWS failures.
    """
    bucket = item.hash_bucket
    try:
        contract = await load_contract(deps.contracts, item.dataset.name, item.dataset.version)
        # lookup tables live beside the contract they came from (the published ones when the
        # contracts are), as on the real-time path: a large and a small file join the same values
        lookups = await load_lookup_tables(deps.contracts, contract)
    except (DatasetContractInvalid, LookupTableError) as unusable:
        detail = {
            "file_id": item.file_id,
            "hash_bucket": bucket,
            "reason_code": unusable.code,
            "reason": unusable.message,
        }
        raise _poison(detail, unusable.code) from unusable
    keys = StageKeys(item.file_id, item.dataset.name)
    objects: list[dict[str, Any]] = []
    with (
        scratch_dir(settings.scratch_dir, f"bucket-{item.file_id}-{bucket}") as work,
        cpu_limit(settings.data_cpus),
    ):
        inputs: list[Path] = []
        found: list[int] = []
        for partition in range(item.partitions):  # partition order = row order
            path = work / f"in-{partition:05d}.arrow"
            try:
                await deps.objects.download_to(
                    settings.work_bucket, keys.validated(partition, bucket), path
                )
            except ObjectNotFoundError:
                continue
            inputs.append(path)
            found.append(partition)
        rows_in = rows_out = rows_quarantined = 0
        quarantine_key = None
        if inputs:
            result = await asyncio.to_thread(
                transform_bucket,
                inputs,
                contract,
                work / "out.arrow",
                lookups=lookups,
                quarantine_path=work / "dedupe.jsonl",
            )
            for path in inputs:
                path.unlink()
            rows_in, rows_out = result.rows_in, result.rows_out
            rows_quarantined = result.rows_quarantined
            if result.quarantine_path is not None:
                quarantine_key = keys.quarantine_dedupe(bucket)
                await deps.objects.upload_file(
                    result.quarantine_path,
                    settings.error_bucket,
                    quarantine_key,
                    content_type=NDJSON,
                )
            if result.staged is not None:
                written = await write_bucket_parquet(
                    deps.objects,
                    result.staged,
                    contract,
                    work / "parquet",
                    file_id=item.file_id,
                    bucket=bucket,
                    processed_bucket=settings.processed_bucket,
                )
                objects.extend(written.objects)
                if written.rows != rows_out:
                    raise PoisonInputError(
                        f"{item.label()}: wrote {written.rows} rows, transform kept {rows_out}",
                        code="reconciliation_mismatch",
                    )
    release_memory()
    return {
        "kind": "bucket",
        "file_id": item.file_id,
        "hash_bucket": bucket,
        "partitions_read": found,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "rows_quarantined": rows_quarantined,
        "quarantine_key": quarantine_key,
        "objects": objects,
    }
