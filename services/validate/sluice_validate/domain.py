"""Validate one ingested file against its data contract.

Streams the raw object through the data path in bounded batches: valid rows are staged in the
work bucket as Arrow (hash-bucketed on the primary key), bad rows go to the quarantine prefix of
the error bucket with a reason. A file whose bad rows exceed the contract's tolerance is rejected
atomically: nothing of it is staged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from contracts.errors import DatasetContractInvalid
from contracts.events import FileRejectedV1, FileValidatedV1, FileValidatedV3
from sluice_shared.keys import StageKeys, bucket_count_for, s3_uri
from sluice_shared.ports import FileStatus
from sluice_shared.scratch import reused_scratch_dir
from sluice_shared.stages import (
    StageDeps,
    StageSettings,
    attempt_staging,
    claim_checked,
    dataset_of,
    identity_claims,
    inline_rows,
    load_contract,
    quarantine_file,
    run_data_step,
    snapshot_of,
)
from sluice_shared.subscribers import inline_limit

if TYPE_CHECKING:
    from datetime import datetime

    from contracts.events import FileIngestedV1
    from sluice_shared.datapath.validate import ValidateResult
    from sluice_shared.ports import FileRecord

CLAIMABLE = (FileStatus.PENDING, FileStatus.VALIDATING)


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What validating one file produced; `event` is None for a duplicate delivery."""

    event: FileValidatedV1 | FileValidatedV3 | FileRejectedV1 | None
    rows_in: int = 0
    rows_quarantined: int = 0
    bytes_in: int = 0

    def metric_values(self) -> dict[str, int]:
        return {
            "RowsIn": self.rows_in,
            "RowsQuarantined": self.rows_quarantined,
            "BytesIn": self.bytes_in,
        }


async def validate_ingested_file(
    ingested: FileIngestedV1, deps: StageDeps, settings: StageSettings
) -> ValidationReport:
    """Validate the raw object of the file `ingested` names.

    What to validate (dataset and contract version, bucket, key, version, size) comes from the
    file's ledger record; the event only names the file, and an event that disagrees with the
    record is refused (EventLedgerMismatch, poison) before any side effect. An event carrying
    the record ingest registered claims the file without reading it (`claim_checked`).

    Returns the `file.validated` or `file.rejected` fact to publish, or an empty report when the
    file already moved past validation (a duplicate delivery). Raises TransientError for AWS
    failures worth a retry; everything about the data itself ends in a quarantine or a rejection.
    """
    # The data path (pyarrow) loads on the first file, not at cold start (bench/cold_start.py).
    from sluice_shared.datapath.validate import validate_file

    def claims(record: FileRecord) -> dict[str, tuple[object, object]]:
        return {
            **identity_claims(ingested, record),
            "version_id": (ingested.version_id, record.version_id),
            "etag": (ingested.etag, record.etag),
            "size_bytes": (ingested.size_bytes, record.size_bytes),
        }

    claimed = await claim_checked(deps.ledger, ingested, FileStatus.VALIDATING, CLAIMABLE, claims)
    if claimed is None:
        return ValidationReport(event=None)
    created_at = ingested.object_created_at  # not in the ledger: it only feeds latencies
    keys = StageKeys(claimed.file_id, claimed.dataset)
    try:
        contract = await load_contract(deps.contracts, claimed.dataset, claimed.dataset_version)
    except KeyError as missing:
        return await _reject(claimed, created_at, deps, "unknown_dataset", str(missing), rows_in=0)
    except DatasetContractInvalid as invalid:
        return await _reject(claimed, created_at, deps, invalid.code, invalid.message, rows_in=0)

    # This attempt's own staging: never shared with another attempt, never cleared (see
    # `attempt_staging`), so no copy of this event can delete what another one announced.
    staging = attempt_staging(keys, claimed)
    with reused_scratch_dir(settings.scratch_dir, "validate") as work:
        src = work / "source"
        # Exactly the object version the file is: by its version id, or, in a bucket without
        # versions, by its ETag (an overwritten key no longer holds this file: ObjectNotFoundError,
        # and the file fails as `object_not_found` rather than taking the newer bytes).
        size = await deps.objects.download_to(
            claimed.bucket,
            claimed.key,
            src,
            version_id=claimed.version_id,
            etag=claimed.etag if claimed.version_id is None else None,
        )
        bucket_count = bucket_count_for(claimed.size_bytes)
        result: ValidateResult = await run_data_step(
            size,
            validate_file,
            src,
            contract,
            work / "out",
            limits=settings.limits,
            key=claimed.key,
            bucket_count=bucket_count,
            partition=0,
        )
        quarantine_uri = None
        if result.quarantine_path is not None:
            await deps.objects.upload_file(
                result.quarantine_path,
                settings.error_bucket,
                keys.quarantine_validate(0),
                content_type="application/x-ndjson",
            )
            quarantine_uri = s3_uri(settings.error_bucket, keys.quarantine_prefix)
        if result.rejection is not None:
            return await _reject(
                claimed,
                created_at,
                deps,
                result.rejection.reason_code,
                result.rejection.reason,
                rows_in=result.rows_in,
                quarantine_uri=quarantine_uri,
            )
        # A small one-bucket file's rows travel in the fact (v3); anything else is staged, and
        # so is every file while a rule of the bus still delivers only an older major.
        inline = (
            inline_rows(
                result.staged.get(0),
                result.rows_valid,
                max_bytes=await inline_limit(
                    deps.subscribers, FileValidatedV3, settings.inline_max_bytes
                ),
            )
            if bucket_count == 1 and set(result.staged) <= {0}
            else None
        )
        if inline is None:
            for bucket, path in sorted(result.staged.items()):
                await deps.objects.upload_file(
                    path, settings.work_bucket, staging.validated(0, bucket)
                )

    counted = await deps.ledger.transition(
        claimed.file_id,
        FileStatus.VALIDATING,
        expected=(FileStatus.VALIDATING,),
        current=claimed,
        rows_in=result.rows_in,
        rows_quarantined=result.rows_quarantined,
        dataset_version=contract.version,
        # What the next stage checks inline rows against (and clears a previous attempt's).
        validated_sha256=inline.sha256 if inline is not None else None,
    )
    event = FileValidatedV3(
        file_id=claimed.file_id,
        dataset=dataset_of(claimed),
        bucket=claimed.bucket,
        key=claimed.key,
        staged_prefix=None if inline is not None else s3_uri(settings.work_bucket, staging.prefix),
        inline=inline,
        bucket_count=bucket_count,
        partition_count=1,
        rows_in=result.rows_in,
        rows_valid=result.rows_valid,
        rows_quarantined=result.rows_quarantined,
        bytes_in=result.bytes_in,
        quarantine_uri=quarantine_uri,
        object_created_at=created_at,
        ledger=snapshot_of(counted),
    )
    return ValidationReport(
        event=event,
        rows_in=result.rows_in,
        rows_quarantined=result.rows_quarantined,
        bytes_in=result.bytes_in,
    )


async def _reject(
    claimed: FileRecord,
    object_created_at: datetime,
    deps: StageDeps,
    reason_code: str,
    reason: str,
    *,
    rows_in: int,
    quarantine_uri: str | None = None,
) -> ValidationReport:
    event = await quarantine_file(
        deps.ledger,
        claimed,
        FileStatus.VALIDATING,
        reason_code,
        reason,
        rows_in=rows_in,
        quarantine_uri=quarantine_uri,
        object_created_at=object_created_at,
    )
    return ValidationReport(event=event, rows_in=rows_in, rows_quarantined=rows_in)
