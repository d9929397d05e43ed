"""Transform one validated file: dedupe on the primary key, derived columns, lookup joins, casts.

Works one hash bucket at a time (every copy of a key lives in the same bucket), so memory is
bounded by a bucket, not by the file. Duplicates are quarantined, never dropped silently.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contracts.errors import DatasetContractInvalid
from contracts.events import (
    FileRejectedV1,
    FileTransformedV1,
    FileTransformedV3,
    FileValidatedV3,
)
from sluice_shared.keys import StageKeys, bucket_count_for, bucket_of_staged_key, s3_uri
from sluice_shared.ports import FileStatus
from sluice_shared.scratch import reused_scratch_dir
from sluice_shared.stages import (
    AnnouncedStaging,
    StageDeps,
    StageSettings,
    announced_staging,
    attempt_staging,
    claim_checked,
    dataset_of,
    download_staged,
    identity_claims,
    inline_rows,
    load_contract,
    load_lookup_tables,
    quarantine_file,
    run_data_step,
    snapshot_of,
    staging_claim,
    unpack_inline,
)
from sluice_shared.subscribers import inline_limit

if TYPE_CHECKING:
    from contracts.datasets import DatasetContract
    from contracts.events import FileValidatedV1
    from contracts.types import InlineRows
    from sluice_shared.ports import FileRecord

CLAIMABLE = (FileStatus.VALIDATING, FileStatus.TRANSFORMING)


@dataclass(frozen=True, slots=True)
class TransformReport:
    event: FileTransformedV1 | FileTransformedV3 | FileRejectedV1 | None
    rows_in: int = 0
    rows_out: int = 0
    rows_duplicate: int = 0

    def metric_values(self) -> dict[str, int]:
        return {"RowsTransformed": self.rows_out, "RowsDuplicate": self.rows_duplicate}


async def transform_validated_file(
    validated: FileValidatedV1 | FileValidatedV3, deps: StageDeps, settings: StageSettings
) -> TransformReport:
    """Transform every staged bucket of the file and stage the result for output.

    The dataset and the bucket count come from the ledger record; the staged prefix must be one
    of the file's own staging areas in the work bucket (`staging_claim`); the event must agree
    with them and with the counts validate recorded, or it is refused (EventLedgerMismatch)
    untouched.

    Transform's quarantines (failed casts, duplicates) count toward the contract's
    `max_bad_ratio` together with validate's: above it (or any bad row under policy `fail`)
    the file is rejected atomically, as validate rejects it: its transformed staging is never
    announced, so nothing of it reaches the output.

    Returns the `file.transformed` fact, the `file.rejected` fact when the file ends
    QUARANTINED here (`bad_row_ratio_exceeded`, `bad_rows_not_allowed`, or its contract or a
    lookup table does not load: `contract_invalid`, `invalid_lookup_table`), or an empty report
    for a duplicate delivery. Raises TransientError
    for AWS failures worth a retry.
    """
    # The data path (pyarrow) loads on the first file, not at cold start (bench/cold_start.py).
    from sluice_shared.datapath.transform import LookupTableError, transform_bucket

    # Rows the fact carries (v3, a small file): trusted once their digest is the ledger's.
    inline = validated.inline if isinstance(validated, FileValidatedV3) else None

    def claims(record: FileRecord) -> dict[str, tuple[object, object]]:
        keys = StageKeys(record.file_id, record.dataset)
        found: dict[str, tuple[object, object]] = {
            **identity_claims(validated, record),
            "bucket_count": (validated.bucket_count, bucket_count_for(record.size_bytes)),
            "partition_count": (validated.partition_count, 1),
            "rows_in": (validated.rows_in, record.rows_in),
            "rows_valid + rows_quarantined": (
                validated.rows_valid + validated.rows_quarantined,
                record.rows_in,
            ),
        }
        if inline is not None:
            found["inline.sha256"] = (inline.sha256, record.validated_sha256)
        elif validated.staged_prefix is not None:
            found["staged_prefix"] = staging_claim(
                validated.staged_prefix,
                work_bucket=settings.work_bucket,
                base=keys.validated_prefix,
                record=record,
            )
        if validated.quarantine_uri is not None:
            quarantine = s3_uri(settings.error_bucket, keys.quarantine_prefix)
            found["quarantine_uri"] = (validated.quarantine_uri, quarantine)
        if record.status is FileStatus.VALIDATING:  # transform rewrites it (adds duplicates)
            found["rows_quarantined"] = (validated.rows_quarantined, record.rows_quarantined)
        return found

    claimed = await claim_checked(
        deps.ledger, validated, FileStatus.TRANSFORMING, CLAIMABLE, claims
    )
    if claimed is None:
        return TransformReport(event=None)
    keys = StageKeys(claimed.file_id, claimed.dataset)
    try:
        contract = await load_contract(deps.contracts, claimed.dataset, claimed.dataset_version)
        # lookup tables live beside the contract they came from
        lookups = await load_lookup_tables(deps.contracts, contract)
    except (DatasetContractInvalid, LookupTableError) as unusable:
        return await _reject(claimed, validated, deps, unusable.code, unusable.message)
    bucket_count = bucket_count_for(claimed.size_bytes)
    by_bucket: dict[int, list[str]] = {}
    named = False
    if inline is None:
        assert validated.staged_prefix is not None  # a v3 fact has one or the other
        # The staging the validate attempt announced: one of the file's own areas (checked).
        announced = announced_staging(validated.staged_prefix, keys.validated_prefix)
        by_bucket, named = await _staged_inputs(
            deps, announced, bucket_count=bucket_count, rows_valid=validated.rows_valid
        )

    # This attempt's own staging: never shared, never cleared (see `attempt_staging`).
    staging = attempt_staging(keys, claimed)
    # A one-bucket file's rows may travel in the fact, unless a rule of the bus still delivers
    # only an older major (then they are staged and every major is published).
    inline_max = (
        await inline_limit(deps.subscribers, FileTransformedV3, settings.inline_max_bytes)
        if bucket_count == 1
        else 0
    )
    rows_in = rows_out = rows_dup = 0
    reasons: dict[str, int] = {}
    out_inline: InlineRows | None = None
    staged_any = False
    for bucket in range(bucket_count):
        inputs = sorted(by_bucket.get(bucket, []))  # partition order: p00000, p00001, ...
        if not inputs and inline is None:
            continue
        with reused_scratch_dir(settings.scratch_dir, "transform") as work:
            local = []
            size = 0
            unpacked = unpack_inline(inline, work / "in-00000.arrow") if inline else None
            if unpacked is not None:
                local.append(unpacked)
                size = len(inline.data) if inline else 0
            for index, key in enumerate(inputs):
                path = work / f"in-{index:05d}.arrow"
                got = await download_staged(
                    deps.objects, settings.work_bucket, key, path, named=named
                )
                if got is None:
                    # Named, not listed (see `_staged_inputs`): not staged (yet), which the row
                    # count check below turns into a retry.
                    continue
                size += got
                local.append(path)
            if not local:
                continue
            result = await run_data_step(
                size,
                transform_bucket,
                local,
                contract,
                work / "out.arrow",
                lookups=lookups,
                quarantine_path=work / "dedupe.jsonl",
            )
            if result.quarantine_path is not None:
                await deps.objects.upload_file(
                    result.quarantine_path,
                    settings.error_bucket,
                    keys.quarantine_dedupe(bucket),
                    content_type="application/x-ndjson",
                )
            if result.staged is not None and bucket_count == 1:
                out_inline = inline_rows(result.staged, result.rows_out, max_bytes=inline_max)
            if result.staged is not None and out_inline is None:
                await deps.objects.upload_file(
                    result.staged, settings.work_bucket, staging.transformed(bucket)
                )
                staged_any = True
        rows_in += result.rows_in
        rows_out += result.rows_out
        rows_dup += result.rows_quarantined
        for code, count in result.reasons.items():
            reasons[code] = reasons.get(code, 0) + count

    if rows_in != validated.rows_valid:
        # The staged objects do not hold what validate reported: never write a partial file.
        raise _staging_mismatch(validated, rows_in)
    quarantined = validated.rows_quarantined + rows_dup
    refusal = _judge(contract, validated, rows_dup, reasons)
    if refusal is not None:
        code, reason = refusal
        return await _reject(
            claimed,
            validated,
            deps,
            code,
            reason,
            quarantine_uri=s3_uri(settings.error_bucket, keys.quarantine_prefix),
        )
    if out_inline is None and bucket_count == 1 and not staged_any:
        out_inline = inline_rows(None, 0, max_bytes=inline_max)  # no rows out
    counted = await deps.ledger.transition(
        validated.file_id,
        FileStatus.TRANSFORMING,
        expected=(FileStatus.TRANSFORMING,),
        current=claimed,
        rows_quarantined=quarantined,
        # What output checks inline rows against (and clears a previous attempt's).
        transformed_sha256=out_inline.sha256 if out_inline is not None else None,
    )
    event = FileTransformedV3(
        file_id=claimed.file_id,
        dataset=dataset_of(claimed),
        bucket=claimed.bucket,
        key=claimed.key,
        transformed_prefix=(
            None if out_inline is not None else s3_uri(settings.work_bucket, staging.prefix)
        ),
        inline=out_inline,
        bucket_count=bucket_count,
        rows_in=rows_in,
        rows_out=rows_out,
        rows_quarantined=quarantined,
        rows_file_in=validated.rows_in,
        object_created_at=validated.object_created_at,
        ledger=snapshot_of(counted),
    )
    return TransformReport(event=event, rows_in=rows_in, rows_out=rows_out, rows_duplicate=rows_dup)


def _judge(
    contract: DatasetContract,
    validated: FileValidatedV1 | FileValidatedV3,
    rows_transform: int,
    reasons: dict[str, int],
) -> tuple[str, str] | None:
    """The whole file against the contract's quarantine policy, counting validate's and
    transform's quarantined rows together (as the ledger does): the reason code and reason to
    reject it with, or None when it may go on."""
    if not rows_transform:
        return None  # validate judged these same counts already
    policy = contract.quarantine
    bad = validated.rows_quarantined + rows_transform
    rows = validated.rows_in
    detail = ", ".join(f"{code}: {count}" for code, count in sorted(reasons.items()))
    split = f"validate {validated.rows_quarantined}, transform {rows_transform} ({detail})"
    if policy.policy == "fail":
        return (
            "bad_rows_not_allowed",
            f"{bad} rows are invalid ({split}) and the contract's policy is fail",
        )
    if rows and bad / rows > policy.max_bad_ratio:
        return (
            "bad_row_ratio_exceeded",
            f"{bad} of {rows} rows are invalid ({bad / rows:.1%}; {split}), above the "
            f"contract's maximum of {policy.max_bad_ratio:.1%}",
        )
    return None


async def _reject(
    claimed: FileRecord,
    validated: FileValidatedV1 | FileValidatedV3,
    deps: StageDeps,
    reason_code: str,
    reason: str,
    *,
    quarantine_uri: str | None = None,
) -> TransformReport:
    """End the file QUARANTINED from TRANSFORMING: nothing of it reaches the output (the staged
    objects of this attempt are never announced), every row counts as quarantined."""
    event = await quarantine_file(
        deps.ledger,
        claimed,
        FileStatus.TRANSFORMING,
        reason_code,
        reason,
        rows_in=validated.rows_in,
        quarantine_uri=quarantine_uri or validated.quarantine_uri,
        object_created_at=validated.object_created_at,
    )
    return TransformReport(event=event, rows_in=validated.rows_in)


async def _staged_inputs(
    deps: StageDeps, announced: AnnouncedStaging, *, bucket_count: int, rows_valid: int
) -> tuple[dict[int, list[str]], bool]:
    """The staged object keys of each hash bucket, and whether they were named rather than
    listed.

    Validate stages one partition; a file of one bucket (every small real-time file) can only
    have staged the one key: it is named without a listing request, and the caller treats it as
    absent when it is missing. Otherwise the announced area is listed."""
    if bucket_count == 1 and announced.own:
        return ({0: [announced.area.validated(0, 0)]} if rows_valid > 0 else {}), True
    by_bucket: dict[int, list[str]] = defaultdict(list)
    for key in await announced.keys(deps.objects):
        by_bucket[bucket_of_staged_key(key)].append(key)
    return by_bucket, False


def _staging_mismatch(validated: FileValidatedV1 | FileValidatedV3, found: int) -> Exception:
    from sluice_shared.errors import TransientError

    # Staged objects are written before the validated event is published, so a shortfall means
    # S3 listing lag or a concurrent re-validation: retrying later is the right move.
    return TransientError(
        f"staged rows for {validated.file_id}: expected {validated.rows_valid}, found {found}",
        code="staging_incomplete",
    )
