"""What the data-stage services (validate, transform, output) share: their settings, their deps,
claiming a step in the ledger, and deterministic event ids.

Every stage follows the same at-least-once discipline:
1. claim the step with a conditional ledger transition (a redelivered message may claim the same
   step again; a message for a step the file has already left is a duplicate and does nothing);
   a fact carrying the record its producer left is claimed without reading it (`claim_checked`),
2. do the work into deterministic keys (a retry overwrites, never adds),
3. record counts in the ledger, then return the next event for the handler to publish.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, runtime_checkable

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import Field

from contracts.envelope import Envelope
from contracts.events import FileProcessedV1, FileRejectedV1, accepted_types, published_majors
from contracts.types import MAX_INLINE_BYTES, DatasetRef, InlineRows, LedgerSnapshot
from sluice_shared.errors import EventLedgerMismatch, PoisonInputError, UnknownDatasetError
from sluice_shared.keys import StagedArea, StageKeys, s3_uri, split_s3_uri
from sluice_shared.limits import Limits
from sluice_shared.observability import (
    add_latency,
    count_file,
    outcome_of,
    stage_timer,
    telemetry,
)
from sluice_shared.ports import (
    AwsDeps,
    FileRecord,
    FileStatus,
    Ledger,
    ObjectNotFoundError,
    ObjectStore,
    QueueParker,
    StaleStateError,
)
from sluice_shared.runtime import Runtime
from sluice_shared.settings import SluiceSettings
from sluice_shared.subscribers import LegacySubscribers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Mapping

    import pyarrow as pa
    from aws_lambda_powertools import Tracer

    from contracts.datasets import DatasetContract
    from contracts.envelope import ContractModel
    from sluice_shared.retry import WarningLogger

_EVENT_NAMESPACE = uuid.UUID("6c1d3f0e-4a8b-5c2d-9e7f-0a1b2c3d4e5f")

# Data work on inputs up to this size runs on the event loop: it takes a few milliseconds, less
# than handing it to a thread and back costs in CPU; bigger inputs keep the loop free.
SMALL_INPUT_BYTES = 256 * 1024
_P = ParamSpec("_P")
_R = TypeVar("_R")


async def run_data_step(
    size_bytes: int, func: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs
) -> _R:
    """`func(*args, **kwargs)`: inline when its input is small (`SMALL_INPUT_BYTES`), otherwise
    on a worker thread. Returns what `func` returns and raises what it raises."""
    if size_bytes <= SMALL_INPUT_BYTES:
        return func(*args, **kwargs)
    return await asyncio.to_thread(func, *args, **kwargs)


async def download_staged(
    objects: ObjectStore, bucket: str, key: str, path: Path, *, named: bool
) -> int | None:
    """Download a staged object to `path`; returns its size.

    `named`: the key was derived rather than listed (a one-bucket file has one possible staged
    key, so the stages skip the listing request). Then a missing object means "not staged",
    exactly what a listing without the key would have said, and the result is None. A listed
    key that is missing raises ObjectNotFoundError as usual.
    """
    try:
        return await objects.download_to(bucket, key, path)
    except ObjectNotFoundError:
        if not named:
            raise
        return None


def inline_rows(path: Path | None, rows: int, *, max_bytes: int) -> InlineRows | None:
    """The rows of a one-bucket file's staged output at `path` (None: no rows) in the form a
    fact carries them, or None when they are above `max_bytes` (then they are staged)."""
    if path is None:
        return InlineRows.of(b"", rows=0) if max_bytes > 0 else None
    if path.stat().st_size > max_bytes:
        return None
    return InlineRows.of(path.read_bytes(), rows=rows)


def unpack_inline(inline: InlineRows, path: Path) -> Path | None:
    """Write rows a fact carried to `path` for the data path; None when there are none."""
    payload = inline.payload()
    if not payload:
        return None
    path.write_bytes(payload)
    return path


def attempt_staging(keys: StageKeys, claimed: FileRecord) -> StagedArea:
    """Where the attempt holding `claimed` (the record its claim returned) stages its output.

    Keyed by the ledger version the claim produced: the conditional claim gives every attempt
    its own version, so two copies of one event working at once (two Lambda instances), a
    redelivery and a late duplicate each stage under their own prefix. Nothing is cleared
    before staging: no other attempt writes there, and `sluice replay` removes a file's staging
    when it resets the ledger (versions restart). The event an attempt publishes names its
    prefix, so the next stage reads exactly what that attempt staged; abandoned attempts'
    objects expire with the work bucket's lifecycle rule.

    Raises ValueError for a record that is not a claim of validate or transform.
    """
    if claimed.file_id != keys.file_id:
        raise ValueError(f"the record is of file {claimed.file_id}, not {keys.file_id}")
    if claimed.status is FileStatus.VALIDATING:
        return keys.validated_attempt(claimed.version)
    if claimed.status is FileStatus.TRANSFORMING:
        return keys.transformed_attempt(claimed.version)
    raise ValueError(f"no staging for a claim into {claimed.status}")


@dataclass(frozen=True, slots=True)
class AnnouncedStaging:
    """The staging an event announced: its bucket, its area, and whether the area is one of
    the file's own (then a key can be named instead of listed, see `download_staged`)."""

    bucket: str
    area: StagedArea
    own: bool

    async def keys(self, objects: ObjectStore) -> list[str]:
        """The area's object keys, listed (one request per 1,000 keys). Keys of nested areas
        are not the announcing attempt's and are left out: an event from before per-attempt
        staging names the step's base prefix, under which the attempts' areas now live."""
        return [
            info.key
            async for info in objects.list_keys(self.bucket, self.area.prefix)
            if self.area.holds(info.key)
        ]


def announced_staging(uri: str, base: str) -> AnnouncedStaging:
    """Parse a `staged_prefix`/`transformed_prefix` of an event; `base` is the file's own
    prefix for that step (`StageKeys.validated_prefix`/`transformed_prefix`).

    Raises ValueError for a value that is not an S3 prefix URI."""
    bucket, prefix = split_s3_uri(uri)
    return AnnouncedStaging(bucket=bucket, area=StagedArea(prefix), own=prefix.startswith(base))


class StageSettings(SluiceSettings):
    """Settings of a data stage: the shared names plus scratch space and input limits."""

    scratch_dir: Path | None = None  # SLUICE_SCRATCH_DIR; default: the system temp dir (/tmp)
    limits: Limits = Field(default_factory=Limits)
    # SLUICE_INLINE_MAX_BYTES: a one-bucket file's rows up to this much Arrow IPC travel in the
    # fact (v3 only) instead of a staged object; 0 stages every file, so every fact is also
    # published in the older majors (their consumers read staged objects).
    inline_max_bytes: int = Field(default=MAX_INLINE_BYTES, ge=0, le=MAX_INLINE_BYTES)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StageSettings:
        import os

        source = os.environ if env is None else env
        base = SluiceSettings.from_env(source)
        return cls(
            **base.model_dump(),
            scratch_dir=Path(source["SLUICE_SCRATCH_DIR"])
            if source.get("SLUICE_SCRATCH_DIR")
            else None,
            limits=Limits.from_env(source),
            inline_max_bytes=int(source.get("SLUICE_INLINE_MAX_BYTES", MAX_INLINE_BYTES)),
        )


class ContractSource(Protocol):
    """Where data contracts come from (the published ones, `published_contracts`; the packaged
    catalog in tools; a fake in tests). Its `load` may block on I/O (a read from S3 with a
    synchronous client, a YAML file): a coroutine calls it through `load_contract`."""

    def load(self, name: str, version: int | None = None) -> DatasetContract:
        """The contract, or KeyError when the dataset/version does not exist."""
        ...


async def load_contract(
    contracts: ContractSource, name: str, version: int | None = None
) -> DatasetContract:
    """`contracts.load(name, version)` in a worker thread, so that a manifest refresh or a
    contract fetch from S3 (an S3 round trip, up to the client's timeouts when S3 is slow) never
    stalls the function's other coroutines. Raises what `load` raises."""
    return await asyncio.to_thread(contracts.load, name, version)


async def load_lookup_tables(
    contracts: ContractSource, contract: DatasetContract
) -> dict[str, pa.Table]:
    """The lookup tables `contract` joins with, read from the catalog it came from, in a worker
    thread: the published tables when `contracts` is the published catalog (a fetch from S3),
    so every path of a dataset joins the same values. A source that is not a catalog (a fake)
    reads the packaged tables. Raises LookupTableError for an unusable table, and what the
    catalog raises (DatasetContractInvalid for a published file that differs from its
    manifest, TransientError when S3 is unreadable)."""
    # The data path (pyarrow) loads on the first file, not at cold start (bench/cold_start.py).
    from contracts.datasets import DatasetCatalog
    from sluice_shared.datapath.transform import load_lookups

    catalog = contracts if isinstance(contracts, DatasetCatalog) else None
    return await asyncio.to_thread(load_lookups, contract, catalog)


@dataclass(frozen=True, slots=True)
class StageDeps:
    """The ports a data stage uses."""

    objects: ObjectStore
    ledger: Ledger
    contracts: ContractSource
    # Asked before a file's rows go inline in a fact (`sluice_shared.subscribers.inline_limit`);
    # None: no bus to ask (tests with fakes), rows go inline up to `inline_max_bytes`.
    subscribers: LegacySubscribers | None = None


def event_id(file_id: str, contract_type: str) -> str:
    """A deterministic envelope id: a redelivered step republishes the *same* event, so
    consumers (and `sluice verify`) can recognise the duplicate."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{file_id}:{contract_type}"))


class UnknownFileError(PoisonInputError):
    """A fact about a file the ledger never registered (spoofed, or from another deployment).

    Ingest registers every file (a strongly consistent write) before announcing it, so a later
    delivery cannot make the file appear: retrying would only burn `maxReceiveCount` attempts."""

    code = "unknown_file"


EVENT_LEDGER_MISMATCH_METRIC = "EventLedgerMismatch"
MAX_REFUSAL_CHARS = 2048


async def registered(ledger: Ledger, file_id: str) -> FileRecord:
    """The file's ledger record: the only source of what a stage acts on (dataset, raw object,
    staging prefixes, counts), never the event that named the file.

    Raises UnknownFileError (poison) when the ledger never registered the file."""
    record = await ledger.get(file_id)
    if record is None:
        raise UnknownFileError(f"file {file_id} is not in the ledger")
    return record


def identity_claims(data: Any, record: FileRecord) -> dict[str, tuple[object, object]]:
    """(the event's value, the ledger's value) of the identity fields every file event carries:
    its dataset and raw object."""
    return {
        "dataset.name": (data.dataset.name, record.dataset),
        "dataset.version": (data.dataset.version, record.dataset_version),
        "bucket": (data.bucket, record.bucket),
        "key": (data.key, record.key),
    }


def dataset_of(record: FileRecord) -> DatasetRef:
    """The record's dataset and contract version, as events carry them. Raises
    UnknownDatasetError (poison) for a file registered without a contract (rejected at
    ingest: no event of it is ever genuine)."""
    if record.dataset_version is None:
        raise UnknownDatasetError(f"file {record.file_id} was registered without a data contract")
    return DatasetRef(name=record.dataset, version=record.dataset_version)


def staging_claim(
    uri: str, *, work_bucket: str, base: str, record: FileRecord
) -> tuple[object, object]:
    """(event value, ledger value) of an announced staging prefix (`staged_prefix`,
    `transformed_prefix`). Attempts stage per claim (`attempt_staging`), so the prefix is not
    fixed, but it must be one of the file's own areas in the work bucket: the step's `base`
    prefix (events from before per-attempt staging) or an attempt area `v<N>/` whose N the
    ledger has issued (1 to the record's version). The ledger value is `uri` itself when it is
    one, else the shape it must have."""
    expected = f"{s3_uri(work_bucket, base)}v<000001..{record.version:06d}>/"
    try:
        bucket, prefix = split_s3_uri(uri)
    except ValueError:
        return uri, expected
    rest = prefix[len(base) :] if prefix.startswith(base) else None
    attempt = re.fullmatch(r"v(\d{6})/", rest) if rest else None
    own = rest == "" or (attempt is not None and 1 <= int(attempt.group(1)) <= record.version)
    return (uri, uri) if bucket == work_bucket and own else (uri, expected)


def check_against_ledger(file_id: str, claims: Mapping[str, tuple[object, object]]) -> None:
    """Raise EventLedgerMismatch (poison: parked with every difference, both values) when any
    of `claims` (field -> (event value, ledger value)) differs. A genuine event never does:
    identity fields never change in the ledger, prefixes derive from the file id and the
    settings, and only counts that no later step rewrites are compared."""
    differences = [(name, got, want) for name, (got, want) in claims.items() if got != want]
    if differences:
        raise EventLedgerMismatch.of(file_id, differences)


async def claim(
    ledger: Ledger,
    file_id: str,
    step: FileStatus,
    expected: Collection[FileStatus],
    *,
    current: FileRecord | None = None,
    **fields: Any,
) -> FileRecord | None:
    """Move the file into `step`; None when the file has already left the states `expected`
    (a duplicate or late delivery — the step is done or the file is terminal). `current`: the
    record just read, if any (saves the ledger a read, see `Ledger.transition`).

    Raises UnknownFileError (poison: parked at once) when the file is not in the ledger."""
    try:
        return await ledger.transition(file_id, step, expected=expected, current=current, **fields)
    except StaleStateError as stale:
        if stale.current is None:
            raise UnknownFileError(f"file {file_id} is not in the ledger") from stale
        return None


def snapshot_of(record: FileRecord) -> LedgerSnapshot:
    """The `ledger` field of a fact its producer publishes after writing `record`."""
    return LedgerSnapshot.model_validate(
        record.model_dump(exclude={"file_id", "dataset", "bucket", "key"})
    )


def assumed_record(fact: Any) -> FileRecord | None:
    """The ledger record a fact says its producer left (its identity fields and its `ledger`
    snapshot), or None when it carries no snapshot (an older major, a producer from before it)."""
    snapshot: LedgerSnapshot | None = getattr(fact, "ledger", None)
    if snapshot is None:
        return None
    return FileRecord.model_validate(
        {
            **snapshot.model_dump(),
            "file_id": fact.file_id,
            "dataset": fact.dataset.name,
            "bucket": fact.bucket,
            "key": fact.key,
        }
    )


async def claim_checked(
    ledger: Ledger,
    fact: Any,
    step: FileStatus,
    expected: Collection[FileStatus],
    claims: Callable[[FileRecord], Mapping[str, tuple[object, object]]],
) -> FileRecord | None:
    """Check the fact against the file's ledger record (`claims(record)`: field -> (the event's
    value, the record's value)) and claim `step` from `expected`; the claimed record, or None
    for a duplicate or late delivery.

    Without a read when the fact carries the record its producer left (`assumed_record`), that
    record agrees with the fact, is in an `expected` status, and the claim conditional on the
    stored record being exactly it, field by field (`Ledger.transition_assumed`), succeeds: the
    stored record is then the one the fact agreed with, which is what a read and a check would
    have established, and the claimed record is known without a read. Anything else (no or a
    disagreeing snapshot, a condition that fails: another delivery claimed first, the file moved
    on, a spoofed snapshot) takes the read: the stored record, checked against the fact
    (EventLedgerMismatch, before any write), then claimed under its version.

    Raises UnknownFileError (poison) when the ledger never registered the file."""
    file_id = str(fact.file_id)
    assumed = assumed_record(fact)
    if (
        assumed is not None
        and assumed.status in expected
        and all(got == want for got, want in claims(assumed).values())
    ):
        claimed = await ledger.transition_assumed(assumed, step)
        if claimed is not None:
            return claimed
    before = await registered(ledger, file_id)
    check_against_ledger(file_id, claims(before))
    return await claim(ledger, file_id, step, expected, current=before)


MAX_FAILURE_CHARS = 4000


async def fail_file(
    ledger: Ledger, file_id: str, working: FileStatus, poison: PoisonInputError
) -> FileRecord | None:
    """Move the file from the stage's `working` state to FAILED with the poison's reason code and
    message: its own message is about to be parked, and nothing else would ever move it on.

    Only from `working` (the state the stage claimed), forward only, under the ledger's version
    lock: a file that already left it (done, or moved on by another delivery) is left alone and
    the result is None."""
    try:
        return await ledger.transition(
            file_id,
            FileStatus.FAILED,
            expected=(working,),
            error_code=poison.code,
            error=poison.message[:MAX_FAILURE_CHARS],
        )
    except StaleStateError:
        return None


async def quarantine_file(
    ledger: Ledger,
    claimed: FileRecord,
    working: FileStatus,
    reason_code: str,
    reason: str,
    *,
    rows_in: int,
    quarantine_uri: str | None,
    object_created_at: datetime,
) -> FileRejectedV1:
    """End the claimed file QUARANTINED from the stage's `working` state and return the
    `file.rejected` fact to publish.

    Nothing of a rejected file reaches the output, so every row counts as quarantined and
    `rows_in == rows_out + rows_quarantined` holds for it too. The transition is conditional on
    `working` and the claimed version (StaleStateError when another delivery moved the file)."""
    await ledger.transition(
        claimed.file_id,
        FileStatus.QUARANTINED,
        expected=(working,),
        current=claimed,
        rows_in=rows_in,
        rows_out=0,
        rows_quarantined=rows_in,
        error_code=reason_code,
        error=reason,
    )
    return FileRejectedV1(
        file_id=claimed.file_id,
        dataset=dataset_of(claimed),
        bucket=claimed.bucket,
        key=claimed.key,
        reason_code=reason_code,
        reason=reason,
        rows_in=rows_in,
        rows_quarantined=rows_in,
        quarantine_uri=quarantine_uri,
        object_created_at=object_created_at,
    )


@dataclass(frozen=True, slots=True)
class ServiceDeps:
    """A service's dependencies: the AWS adapters and the stage's view of them."""

    aws: AwsDeps
    stage: StageDeps

    @property
    def parker(self) -> QueueParker:
        return self.aws.parker


@asynccontextmanager
async def open_stage_deps(
    settings: SluiceSettings, *, logger: WarningLogger | None = None
) -> AsyncIterator[ServiceDeps]:
    """Open the AWS clients once and build the stage's deps over them (see `Runtime`);
    `logger` gets the legacy-subscriber check's warnings."""
    from sluice_shared.aws.clients import open_aws_deps
    from sluice_shared.published_contracts import contract_source

    async with open_aws_deps(settings) as aws:
        subscribers = (
            LegacySubscribers(aws.rules, ttl_s=settings.legacy_subscribers_ttl_s, logger=logger)
            if aws.rules is not None
            else None
        )
        yield ServiceDeps(
            aws=aws,
            stage=StageDeps(
                objects=aws.objects,
                ledger=aws.ledger,
                contracts=contract_source(settings),
                subscribers=subscribers,
            ),
        )


async def publish_next(
    deps: ServiceDeps,
    event: ContractModel,
    cause: Envelope[Any],
    *,
    file_id: str,
    source: str | None = None,
) -> list[Envelope[Any]]:
    """Publish the next fact of a file's run in its own envelope, carrying the correlation id
    of the event that caused it and a deterministic id (see `event_id`); a fact with several
    live majors goes out in each of them (`contracts.events.published_majors`, newest first),
    in one PutEvents call. `source` is the publishing service (default: the model's SOURCE):
    the bus lets each service publish only its own source. Returns the envelopes published."""
    envelopes = [
        Envelope.wrap(
            major,
            correlationid=cause.correlationid,
            id=event_id(file_id, major.TYPE),
            source=source,
        )
        for major in published_majors(event)
    ]
    await deps.aws.publisher.publish(envelopes)
    return envelopes


class StageReport(Protocol):
    """What a stage's domain function returns: the next fact (None for a duplicate delivery)
    and the counts to emit as metrics."""

    @property
    def event(self) -> ContractModel | None: ...

    def metric_values(self) -> Mapping[str, int]: ...


@runtime_checkable
class TimedReport(Protocol):
    """A stage report that also measured latencies (ms by metric name), e.g. output's
    end-to-end latency of a completed file."""

    def latency_values(self) -> Mapping[str, float]: ...


StageStep = Callable[[Any, StageDeps, StageSettings], Awaitable[StageReport]]


def _traced_step(tracer: Tracer, step: StageStep) -> StageStep:
    """`step` in an X-Ray subsegment named after it; a pass-through with tracing disabled
    (locally, in tests). Wrapped first because the tracer names subsegments by `__qualname__`,
    which a callable object lacks."""

    async def run_step(data: Any, deps: StageDeps, settings: StageSettings) -> StageReport:
        return await step(data, deps, settings)

    owner = step if hasattr(step, "__qualname__") else type(step)
    run_step.__qualname__ = owner.__qualname__
    run_step.__name__ = owner.__qualname__.rsplit(".", 1)[-1]
    run_step.__module__ = owner.__module__
    traced: StageStep = tracer.capture_method(run_step)
    return traced


class StageService:
    """The whole Lambda handler of a data stage: SQS batch → contract → domain step → publish
    the next fact → metrics. Each service's `handler.py` builds one at cold start."""

    def __init__(
        self,
        settings: StageSettings,
        *,
        consumes: type[ContractModel],
        step: StageStep,
        working: FileStatus,
        source: str | None = None,
    ):
        self.settings = settings
        self.consumes = consumes
        self.working = working
        # The source of every event this service publishes (default: each model's SOURCE).
        self.source = source
        tele = telemetry(settings.service_name)
        self.logger, self.metrics, self.tracer = tele.logger, tele.metrics, tele.tracer
        self.step = _traced_step(self.tracer, step)
        self.runtime: Runtime[ServiceDeps] = Runtime(
            lambda: open_stage_deps(settings, logger=self.logger),
            dlq_url=settings.dlq_url,
            logger=self.logger,
            metrics=self.metrics,
        )
        handler = self.metrics.log_metrics(capture_cold_start_metric=True)(self._handle)
        traced = self.tracer.capture_lambda_handler(handler)
        self.lambda_handler = self.logger.inject_lambda_context(traced)

    def _handle(self, event: dict[str, Any], context: object) -> dict[str, Any]:
        # Every live major of the consumed fact: the rule routes only the newest here, and an
        # older one still arrives from a DLQ redrive of a message parked before the move.
        return self.runtime.process_sqs_batch(
            event, self.handle_one, accepted=accepted_types(self.consumes), context=context
        )

    async def _refused(
        self, envelope: Envelope[Any], deps: ServiceDeps, mismatch: EventLedgerMismatch
    ) -> None:
        """Count a refused event (`EventLedgerMismatch`, alarmed in every stage template) and
        keep the attempt in the file's ledger history; the caller then parks the event."""
        self.metrics.add_metric(name=EVENT_LEDGER_MISMATCH_METRIC, unit=MetricUnit.Count, value=1)
        self.logger.warning(
            "event refused: it disagrees with the ledger",
            extra={"file_id": mismatch.file_id, "event_id": envelope.id, "reason": str(mismatch)},
        )
        record = await deps.stage.ledger.get(mismatch.file_id)
        if record is not None:
            await deps.stage.ledger.record_refusal(
                record,
                event_type=envelope.type,
                event_id=envelope.id,
                code=mismatch.code,
                reason=str(mismatch)[:MAX_REFUSAL_CHARS],
            )

    async def handle_one(self, envelope: Envelope[Any], deps: ServiceDeps) -> None:
        """Run the step for one envelope and publish what it produced.

        Emits `StageLatency` (the step's time), `Files<Outcome>` (the emitted event's outcome,
        or `duplicate`; the runtime counts `poison`/`retried` records), the report's counts and any
        latencies it measured.

        Poison propagates (the runtime parks the message) after one more step: an event refused
        for disagreeing with the ledger is counted (`EventLedgerMismatch`) and recorded in the
        file's history; any other poison of the file's own message moves the file from the
        stage's working state to FAILED (`fail_file`)."""
        file_id = str(envelope.data.file_id)
        try:
            await self._run(envelope, deps, file_id)
        except EventLedgerMismatch as mismatch:
            await self._refused(envelope, deps, mismatch)
            raise
        except UnknownFileError:
            raise  # no file to fail
        except PoisonInputError as poison:
            # The file's own message, parked next: fail the file, or it stays non-terminal.
            failed = await fail_file(deps.stage.ledger, file_id, self.working, poison)
            if failed is not None:
                self.logger.warning(
                    "file failed: its message is poison",
                    extra={"file_id": file_id, "reason_code": poison.code},
                )
            raise

    async def _run(self, envelope: Envelope[Any], deps: ServiceDeps, file_id: str) -> None:
        """The step, its metrics, and the publication of the fact it produced."""
        with stage_timer(self.metrics):
            report = await self.step(envelope.data, deps.stage, self.settings)
        if report.event is None:
            count_file(self.metrics, "duplicate")
            self.logger.info("duplicate delivery ignored", extra={"file_id": file_id})
            return
        count_file(self.metrics, outcome_of(report.event.TYPE))
        for name, value in report.metric_values().items():
            self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        if isinstance(report, TimedReport):
            for name, milliseconds in report.latency_values().items():
                add_latency(self.metrics, name, milliseconds)
        await publish_next(deps, report.event, envelope, file_id=file_id, source=self.source)
        self.logger.info("step done", extra={"file_id": file_id, "emitted": report.event.TYPE})


PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
# A file's processed manifest lists one entry per Parquet object: far below this.
MAX_MANIFEST_BYTES = 64 * 2**20


@dataclass(frozen=True, slots=True)
class WrittenBucket:
    """The Parquet objects one hash bucket of a file became (manifest entries) and their rows."""

    rows: int
    objects: list[dict[str, Any]]

    @property
    def bytes_out(self) -> int:
        return sum(int(o["bytes"]) for o in self.objects)


async def write_bucket_parquet(
    objects: ObjectStore,
    staged: Path,
    contract: DatasetContract,
    work: Path,
    *,
    file_id: str,
    bucket: int,
    processed_bucket: str,
) -> WrittenBucket:
    """Write one bucket's transformed rows as Hive-partitioned Parquet and upload each object.

    The real-time output service and the batch path's bucket step share this, so both produce
    the same deterministic keys (`part-<file_id>-b<bucket>-<n>.parquet`) for the same rows.
    """
    from sluice_shared.datapath.output import write_partitioned

    result = await run_data_step(
        staged.stat().st_size,  # noqa: ASYNC240 - one stat costs less than a thread hop
        write_partitioned,
        [staged],
        contract,
        work,
        file_id=file_id,
        bucket=bucket,
    )
    entries: list[dict[str, Any]] = []
    for obj in result.objects:
        await objects.upload_file(
            obj.local_path, processed_bucket, obj.key, content_type=PARQUET_CONTENT_TYPE
        )
        entries.append({"key": obj.key, "rows": obj.rows, "bytes": obj.bytes})
    return WrittenBucket(rows=result.rows, objects=entries)


def processed_fact(
    manifest: Mapping[str, Any], *, bucket: str, key: str, manifest_uri: str
) -> FileProcessedV1:
    """The `file.processed` fact of a completed file, rebuilt from its manifest (so a fact
    re-published after a crash is the same fact)."""
    return FileProcessedV1(
        file_id=manifest["file_id"],
        dataset=manifest["dataset"],
        bucket=bucket,
        key=key,
        manifest_uri=manifest_uri,
        objects=len(manifest["objects"]),
        rows_in=manifest["rows_in"],
        rows_out=manifest["rows_out"],
        rows_quarantined=manifest["rows_quarantined"],
        bytes_out=manifest["bytes_out"],
        object_created_at=datetime.fromisoformat(manifest["object_created_at"]),
        completed_at=datetime.fromisoformat(manifest["completed_at"]),
    )
