"""Write one transformed file as Hive-partitioned Parquet, manifest last, and complete it.

Object names are deterministic per (file, bucket, partition value, sequence), so a retried write
overwrites its own objects. The manifest is written only after every Parquet object: a reader
that trusts manifests never sees a partial file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from contracts.events import FileProcessedV1, FileTransformedV3
from sluice_shared.clock import not_before
from sluice_shared.errors import PoisonInputError
from sluice_shared.keys import StageKeys, bucket_count_for, s3_uri
from sluice_shared.observability import END_TO_END_LATENCY, end_to_end_ms
from sluice_shared.ports import FileStatus, utc_now
from sluice_shared.scratch import reused_scratch_dir
from sluice_shared.stages import (
    MAX_MANIFEST_BYTES,
    StageDeps,
    StageSettings,
    announced_staging,
    claim_checked,
    dataset_of,
    download_staged,
    identity_claims,
    load_contract,
    processed_fact,
    staging_claim,
    unpack_inline,
    write_bucket_parquet,
)

if TYPE_CHECKING:
    from contracts.events import FileTransformedV1
    from sluice_shared.ports import FileRecord

CLAIMABLE = (FileStatus.TRANSFORMING, FileStatus.WRITING)


class ReconciliationError(PoisonInputError):
    """rows_in != rows_out + rows_quarantined: never mark such a file COMPLETED."""

    code = "reconciliation_mismatch"


@dataclass(frozen=True, slots=True)
class OutputReport:
    event: FileProcessedV1 | None
    objects: int = 0
    bytes_out: int = 0
    rows_out: int = 0
    # Set only when this delivery completed the file: a replayed fact is not a second completion.
    end_to_end_ms: float | None = None

    def metric_values(self) -> dict[str, int]:
        return {
            "RowsOut": self.rows_out,
            "ObjectsWritten": self.objects,
            "BytesOut": self.bytes_out,
        }

    def latency_values(self) -> dict[str, float]:
        """`EndToEndLatency` (ms from the raw object's creation) when this delivery completed
        the file; empty otherwise."""
        if self.end_to_end_ms is None:
            return {}
        return {END_TO_END_LATENCY: self.end_to_end_ms}


async def write_transformed_file(
    transformed: FileTransformedV1 | FileTransformedV3, deps: StageDeps, settings: StageSettings
) -> OutputReport:
    """Write the file's Parquet objects and manifest, then mark it COMPLETED.

    Returns the `file.processed` fact. A redelivery after completion returns the same fact again
    (rebuilt from the manifest) so a publish lost to a crash is not lost for good.
    Raises ReconciliationError when the counts do not add up (the file is marked FAILED), and
    TransientError for AWS failures worth a retry.
    """

    # Rows the fact carries (v3, a small file): trusted once their digest is the ledger's.
    inline = transformed.inline if isinstance(transformed, FileTransformedV3) else None

    def claims(record: FileRecord) -> dict[str, tuple[object, object]]:
        found: dict[str, tuple[object, object]] = {
            **identity_claims(transformed, record),
            "bucket_count": (transformed.bucket_count, bucket_count_for(record.size_bytes)),
            "rows_file_in": (transformed.rows_file_in, record.rows_in),
            "rows_quarantined": (transformed.rows_quarantined, record.rows_quarantined),
        }
        if inline is not None:
            found["inline.sha256"] = (inline.sha256, record.transformed_sha256)
        elif transformed.transformed_prefix is not None:
            found["transformed_prefix"] = staging_claim(
                transformed.transformed_prefix,
                work_bucket=settings.work_bucket,
                base=StageKeys(record.file_id, record.dataset).transformed_prefix,
                record=record,
            )
        return found

    claimed = await claim_checked(deps.ledger, transformed, FileStatus.WRITING, CLAIMABLE, claims)
    keys = StageKeys(transformed.file_id, transformed.dataset.name)
    if claimed is None:
        return await _replay_completed(transformed, deps, settings, keys)
    bucket_count = bucket_count_for(claimed.size_bytes)
    contract = await load_contract(deps.contracts, claimed.dataset, claimed.dataset_version)
    objects: list[dict[str, Any]] = []
    rows_out = bytes_out = 0
    if inline is not None:
        with reused_scratch_dir(settings.scratch_dir, "output") as work:
            local = unpack_inline(inline, work / "in.arrow")
            if local is not None:
                written = await write_bucket_parquet(
                    deps.objects,
                    local,
                    contract,
                    work / "parquet",
                    file_id=transformed.file_id,
                    bucket=0,
                    processed_bucket=settings.processed_bucket,
                )
                objects, bytes_out, rows_out = written.objects, written.bytes_out, written.rows
        bucket_count = 0  # nothing staged to read
    else:
        assert transformed.transformed_prefix is not None  # a v3 fact has one or the other
    # Exactly the staging of the transform attempt that announced this event (one of the file's
    # own areas, checked above).
    announced = announced_staging(
        transformed.transformed_prefix or s3_uri(settings.work_bucket, keys.transformed_prefix),
        keys.transformed_prefix,
    )
    staged_bucket = announced.bucket
    # Transform stages nothing for a bucket without rows: list once, not a request per bucket.
    # A one-bucket file (every small real-time file) has one possible key: fetching it answers
    # the same question without the listing request.
    single = bucket_count <= 1 and announced.own
    staged = {announced.area.transformed(0)} if single else set(await announced.keys(deps.objects))
    for bucket in range(bucket_count):
        staged_key = announced.area.transformed(bucket)
        if staged_key not in staged:
            continue
        with reused_scratch_dir(settings.scratch_dir, "output") as work:
            local = work / "in.arrow"
            if (
                await download_staged(deps.objects, staged_bucket, staged_key, local, named=single)
                is None
            ):
                continue
            written = await write_bucket_parquet(
                deps.objects,
                local,
                contract,
                work / "parquet",
                file_id=transformed.file_id,
                bucket=bucket,
                processed_bucket=settings.processed_bucket,
            )
            objects.extend(written.objects)
            bytes_out += written.bytes_out
            rows_out += written.rows

    rows_in = transformed.rows_file_in  # the ledger's rows_in (checked above)
    if rows_out != transformed.rows_out or rows_in != rows_out + transformed.rows_quarantined:
        reason = (
            f"rows_in {rows_in} != rows_out {rows_out} + rows_quarantined "
            f"{transformed.rows_quarantined} (transform reported rows_out {transformed.rows_out})"
        )
        await deps.ledger.transition(
            transformed.file_id,
            FileStatus.FAILED,
            expected=(FileStatus.WRITING,),
            current=claimed,
            error_code=ReconciliationError.code,
            error=reason,
        )
        raise ReconciliationError(reason)

    # Never before the raw object's creation or the file's last step, whatever this worker's
    # clock says: no end-to-end latency is negative (`sluice_shared.clock`).
    completed_at = not_before(utc_now(), transformed.object_created_at, claimed.updated_at)
    manifest: dict[str, Any] = {
        "file_id": transformed.file_id,
        "dataset": dataset_of(claimed).model_dump(),
        "source": s3_uri(claimed.bucket, claimed.key),
        "rows_in": rows_in,
        "rows_out": rows_out,
        "rows_quarantined": transformed.rows_quarantined,
        "bytes_out": bytes_out,
        "objects": objects,
        "object_created_at": transformed.object_created_at.isoformat(),
        "completed_at": completed_at.isoformat(),
    }
    manifest = await _write_manifest_once(deps, settings, keys, manifest)
    completed_at = datetime.fromisoformat(str(manifest["completed_at"]))
    await deps.ledger.transition(
        transformed.file_id,
        FileStatus.COMPLETED,
        expected=(FileStatus.WRITING,),
        current=claimed,
        rows_in=rows_in,
        rows_out=rows_out,
        rows_quarantined=transformed.rows_quarantined,
    )
    event = _processed_event(claimed, settings, keys, manifest)
    return OutputReport(
        event=event,
        objects=len(objects),
        bytes_out=bytes_out,
        rows_out=rows_out,
        end_to_end_ms=end_to_end_ms(transformed.object_created_at, completed_at),
    )


# What two attempts of one run agree on when they wrote the same output.
_SAME_OUTPUT = ("file_id", "rows_in", "rows_out", "rows_quarantined", "bytes_out", "objects")


async def _write_manifest_once(
    deps: StageDeps, settings: StageSettings, keys: StageKeys, manifest: dict[str, Any]
) -> dict[str, Any]:
    """Write the manifest unless an attempt of this run already did; return the one in place.

    A manifest, once written, does not change: an attempt that finished while this one still
    ran (its message reappeared after the visibility timeout), or that died between its manifest
    and its completion, wrote the same objects and counts, and its manifest and completion time
    stay those of the fact it published. Only a manifest of other output (a deployment changed
    the data path between attempts) is replaced by this attempt's, whose objects are in place.
    `sluice replay` deletes the manifest before a run starts again.
    """
    body = orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
    if await deps.objects.put_bytes_if_absent(
        settings.processed_bucket, keys.manifest, body, content_type="application/json"
    ):
        return manifest
    raw = await deps.objects.get_bytes(
        settings.processed_bucket, keys.manifest, max_bytes=MAX_MANIFEST_BYTES
    )
    existing: dict[str, Any] = orjson.loads(raw)
    if all(existing.get(name) == manifest[name] for name in _SAME_OUTPUT):
        return existing
    await deps.objects.put_bytes(
        settings.processed_bucket, keys.manifest, body, content_type="application/json"
    )
    return manifest


async def _replay_completed(
    transformed: FileTransformedV1 | FileTransformedV3,
    deps: StageDeps,
    settings: StageSettings,
    keys: StageKeys,
) -> OutputReport:
    record = await deps.ledger.get(transformed.file_id)
    if record is None or record.status is not FileStatus.COMPLETED:
        return OutputReport(event=None)
    raw = await deps.objects.get_bytes(
        settings.processed_bucket, keys.manifest, max_bytes=MAX_MANIFEST_BYTES
    )
    manifest = orjson.loads(raw)
    return OutputReport(event=_processed_event(record, settings, keys, manifest))


def _processed_event(
    record: FileRecord,
    settings: StageSettings,
    keys: StageKeys,
    manifest: dict[str, Any],
) -> FileProcessedV1:
    return processed_fact(
        manifest,
        bucket=record.bucket,
        key=record.key,
        manifest_uri=s3_uri(settings.processed_bucket, keys.manifest),
    )
