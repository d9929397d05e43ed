"""Register a newly created raw object in the ledger and send it down the right path.

Duplicate S3 notifications are normal (at-least-once): the ledger's conditional write on the
file identity (bucket, key, version or etag) makes the second one a no-op. A file that was
registered but never announced (a crash between the two) is announced on redelivery.

A notification that says everything ingest needs (a version id, size, ETag, sequencer, and a key
that reads the same URL-decoded or not) is trusted as it is: no request to S3. Otherwise the
object is read with a HEAD (`_resolve`), as for `sluice replay`'s notifications, which carry
no sequencer, and for a bucket without versions, where the HEAD binds a notice to the content
the key holds now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote_plus

from contracts.errors import DatasetContractInvalid
from contracts.events import FileIngestedV1, FileIngestedV2, FileRejectedV1
from contracts.types import DatasetRef
from sluice_shared.errors import (
    ContractViolation,
    InputLimitExceeded,
    PoisonInputError,
    UnknownDatasetError,
)
from sluice_shared.keys import dataset_of_key, file_id_for
from sluice_shared.ports import (
    FileRecord,
    FileStatus,
    ObjectInfo,
    ObjectNotFoundError,
    SupersededError,
    sequencer_order,
)
from sluice_shared.stages import fail_file, load_contract, snapshot_of

if TYPE_CHECKING:
    from sluice_ingest.config import IngestSettings
    from sluice_ingest.ports import IngestDeps


@dataclass(frozen=True, slots=True)
class ObjectCreated:
    """The facts of an S3 "Object Created" notification that ingest relies on."""

    bucket: str
    key: str  # as the notification carries it (possibly URL-encoded)
    size: int | None  # None: the notification did not say
    etag: str
    version_id: str | None
    sequencer: str | None
    time: datetime


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What ingest decided for one notification. `event` is the fact to publish (None for a
    duplicate); `execution_arn` is set when the file went to the batch path."""

    file_id: str
    outcome: Literal["realtime", "batch", "rejected", "duplicate", "missing", "superseded"]
    event: FileIngestedV1 | FileRejectedV1 | None = None
    execution_arn: str | None = None
    size_bytes: int = 0  # of a registered file


async def ingest_object(
    created: ObjectCreated, deps: IngestDeps, settings: IngestSettings
) -> IngestReport:
    """Register the object and announce it (`file.ingested`), start the batch workflow for a
    large file, or reject it (`file.rejected`: unknown dataset, a contract that does not load
    (`contract_invalid`), limits).

    An older version notified after a newer one is `superseded`: of two notifications of a key
    that reach ingest out of order, the older is never processed. With a sequencer, the ledger
    registration refuses a notification older than the latest one registered for the key (one
    write, `Ledger.register_file`); without one, the HEAD compares the notified version with the
    key's current one.

    Raises ContractViolation (`unexpected_bucket`) for a notification about any bucket but the
    raw bucket, before any side effect, and TransientError for AWS failures worth a retry. A
    poison answer to starting the batch workflow fails the registered file (`fail_file`) first.
    """
    if created.bucket != settings.raw_bucket:
        # Only a spoofed or misrouted event names another bucket: never read or register it.
        raise ContractViolation(
            f"ingest only reads the raw bucket, not {created.bucket!r}", code="unexpected_bucket"
        )
    # Sequencers order the events of one key, whatever its version ids: ordering is kept for
    # versioned objects, the ones whose older versions can still be read and processed.
    sequencer = sequencer_order(created.sequencer) if created.version_id else None
    notified = _notified_facts(created, sequencer)
    if notified is not None:
        key, size, etag = notified
    else:
        info, key = await _resolve(created, deps)
        if info is None:
            missing_id = file_id_for(created.bucket, key, created.version_id, created.etag)
            return IngestReport(file_id=missing_id, outcome="missing")
        if created.version_id and info.version_id and info.version_id != created.version_id:
            # HEAD answers for the newest version: this notification is about an older one.
            old_id = file_id_for(created.bucket, key, created.version_id, created.etag)
            return IngestReport(file_id=old_id, outcome="superseded")
        # For a versioned bucket HEAD answers for the newest version; the notification's own
        # figures describe the version it is about. Emulators (and some producers) leave
        # etag/size out of the notification: then HEAD's figures are the only ones there are.
        same_version = info.version_id == created.version_id or created.version_id is None
        size = info.size if same_version or created.size is None else created.size
        etag = info.etag if same_version or not created.etag else created.etag.strip('"')
    file_id = file_id_for(created.bucket, key, created.version_id, etag)
    dataset_version: int | None = None
    rejection: tuple[str, str] | None = None
    dataset = "unknown"
    try:
        dataset = dataset_of_key(key, max_key_length=settings.limits.max_key_length)
        dataset_version = (await load_contract(deps.contracts, dataset)).version
    except (UnknownDatasetError, InputLimitExceeded, DatasetContractInvalid) as bad:
        # A contract that does not load is the file's dead end until the contract is fixed
        # (then `sluice replay`): recorded QUARANTINED with every problem, never retried.
        rejection = (bad.code, bad.message)
    except KeyError:
        rejection = ("unknown_dataset", f"no data contract for dataset {dataset!r}")
    if rejection is None and size > settings.limits.max_file_bytes:
        rejection = (
            "file_too_large",
            f"object is {size} bytes, above the {settings.limits.max_file_bytes} limit",
        )

    record = FileRecord(
        file_id=file_id,
        dataset=dataset,
        dataset_version=dataset_version,
        bucket=created.bucket,
        key=key,
        version_id=created.version_id,
        etag=etag,
        size_bytes=size,
        correlation_id=file_id,
    )
    try:
        created_now, existing = await deps.ledger.register_file(record, sequencer=sequencer)
    except SupersededError:
        return IngestReport(file_id=file_id, outcome="superseded")
    if not created_now and existing.status is not FileStatus.PENDING:
        return IngestReport(file_id=file_id, outcome="duplicate")

    if rejection is not None:
        code, reason = rejection
        await deps.ledger.transition(
            file_id,
            FileStatus.QUARANTINED,
            expected=(FileStatus.PENDING,),
            current=existing,
            rows_in=0,
            rows_out=0,
            rows_quarantined=0,
            error_code=code,
            error=reason,
        )
        dataset_ref = DatasetRef(name=dataset, version=dataset_version) if dataset_version else None
        rejected = FileRejectedV1(
            file_id=file_id,
            dataset=dataset_ref,
            bucket=created.bucket,
            key=key,
            reason_code=code,
            reason=reason,
            object_created_at=created.time,
        )
        return IngestReport(file_id=file_id, outcome="rejected", event=rejected, size_bytes=size)

    assert dataset_version is not None  # set whenever there is no rejection
    batch = (
        size >= settings.batch_threshold_bytes
        and deps.workflow is not None
        and settings.batch_state_machine_arn is not None
    )
    ingested = FileIngestedV2(
        file_id=file_id,
        dataset=DatasetRef(name=dataset, version=dataset_version),
        bucket=created.bucket,
        key=key,
        version_id=created.version_id,
        etag=etag,
        size_bytes=size,
        object_created_at=created.time,
        path="batch" if batch else "realtime",
        # The record validate claims without reading it (`claim_checked`); real-time only.
        ledger=None if batch else snapshot_of(existing),
    )
    if batch and deps.workflow is not None:
        try:
            arn = await deps.workflow.start(
                f"file-{file_id}", {"file": ingested.model_dump(mode="json")}
            )
        except PoisonInputError as poison:
            # The notification is parked next; nothing else would ever move the file on.
            await fail_file(deps.ledger, file_id, FileStatus.PENDING, poison)
            raise
        return IngestReport(file_id=file_id, outcome="batch", execution_arn=arn, size_bytes=size)
    return IngestReport(file_id=file_id, outcome="realtime", event=ingested, size_bytes=size)


def _notified_facts(created: ObjectCreated, sequencer: str | None) -> tuple[str, int, str] | None:
    """The key, size and ETag of the notified version when the notification alone settles
    them (None: read the object).

    A sequencer is needed for the ledger to order the notice among its key's (`superseded`),
    a version id for the notice to name content that stays readable; a key that URL-decoding
    changes (`+`, `%`) is ambiguous, since S3 URL-encodes the keys of its notifications and a
    producer may not: `_resolve` finds which one exists.
    """
    etag = created.etag.strip('"')
    if sequencer is None or created.size is None or not etag:
        return None
    if unquote_plus(created.key) != created.key:
        return None
    return created.key, created.size, etag


async def _resolve(created: ObjectCreated, deps: IngestDeps) -> tuple[ObjectInfo | None, str]:
    """Find the object the notification names.

    S3 notifications URL-encode keys (`red flower.csv` → `red+flower.csv`); decoding first and
    falling back to the literal key also handles producers that do not encode. The key is only
    ever used as an S3 key, never as a local path.
    """
    candidates = [unquote_plus(created.key)]
    if created.key not in candidates:
        candidates.append(created.key)
    for key in candidates:
        try:
            return await deps.objects.head(created.bucket, key), key
        except ObjectNotFoundError:
            continue
    return None, candidates[0]
