"""Lambda entry points of the batch path, named in deploy/orchestration.yaml:
`sluice_batch.handlers.plan`, `.run_partition`, `.run_bucket`, `.reconcile`.

Each translates the Step Functions payload into the domain's inputs and raises errors under the
names the outbound table of `sluice_shared.errors` gives them, which the state machine matches
(`PoisonInputError` is caught and the item recorded as bad; `TransientError`/`ThrottledError`
are retried). One `Runtime` (event loop + AWS clients) per execution environment, built on first
use.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sluice_batch.config import BatchSettings
from sluice_batch.deps import BatchDeps, open_batch_deps
from sluice_batch.items import BucketItem, PartitionItem
from sluice_batch.plan import PlanRequest, plan_run, run_id_for
from sluice_batch.reconcile import reconcile_run, record_item_failure, record_run_failure
from sluice_batch.work import run_bucket as run_bucket_step
from sluice_batch.work import run_partition as run_partition_step
from sluice_shared.errors import PoisonInputError, SluiceError, boundary
from sluice_shared.observability import telemetry
from sluice_shared.runtime import Runtime

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

# One runtime per thread: Lambda runs one invocation at a time per process, and the local
# function runner does too; an in-process invoker (tests) may call from several threads, and an
# asyncio.Runner must only ever be driven by one thread.
_local = threading.local()
_runtimes: list[Runtime[BatchDeps]] = []
_lock = threading.Lock()
_generation = [0]  # bumped by close_runtimes: every thread then opens a fresh runtime


def _runtime() -> tuple[Runtime[BatchDeps], BatchSettings]:
    if getattr(_local, "generation", None) != _generation[0]:
        settings = BatchSettings.from_env()
        runtime: Runtime[BatchDeps] = Runtime(
            lambda: open_batch_deps(settings), logger=telemetry(settings.service_name).logger
        )
        _local.runtime, _local.settings = runtime, settings
        _local.generation = _generation[0]
        with _lock:
            _runtimes.append(runtime)
    return _local.runtime, _local.settings


def close_runtimes() -> None:
    """Close every runtime the handlers opened (tests and in-process hosts; Lambda never does)."""
    with _lock:
        doomed = list(_runtimes)
        _runtimes.clear()
        _generation[0] += 1
    for runtime in doomed:
        runtime.close()


def _call(step: Callable[[BatchDeps, BatchSettings], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    runtime, settings = _runtime()
    try:
        return runtime.run_with_deps(lambda deps: step(deps, settings))
    except SluiceError as error:
        # Step Functions matches the class name exactly: every input problem reaches the state
        # machine as PoisonInputError (ObjectNotFoundError, an invalid contract, ...).
        public = boundary(error)
        if public is error:
            raise
        raise public from error
    except ValidationError as invalid:
        raise PoisonInputError(f"invalid batch item: {invalid}", code="invalid_item") from None


def plan(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Plan the run: `{"request": <execution input>, "execution_arn", "execution_name"}` →
    `{"run_id", "max_concurrency", "partitions": {bucket, key}, "buckets": {bucket, key}, ...}`."""
    run_id = run_id_for(
        str(event.get("execution_name") or event["execution_arn"].rsplit(":", 1)[-1])
    )

    async def step(deps: BatchDeps, settings: BatchSettings) -> dict[str, Any]:
        request = PlanRequest.model_validate(event.get("request") or {})
        report = await plan_run(
            request, deps, settings, run_id=run_id, execution_arn=event.get("execution_arn")
        )
        return report.payload()

    return _call(step)


def run_partition(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Validate one partition: `{"run_id", "partition": <PartitionItem>, ...}` → its report."""

    async def step(deps: BatchDeps, settings: BatchSettings) -> dict[str, Any]:
        item = PartitionItem.model_validate(event["partition"])
        return await run_partition_step(item, deps, settings)

    return _call(step)


def run_bucket(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Transform and write one hash bucket: `{"run_id", "bucket": <BucketItem>, ...}` → report."""

    async def step(deps: BatchDeps, settings: BatchSettings) -> dict[str, Any]:
        item = BucketItem.model_validate(event["bucket"])
        return await run_bucket_step(item, deps, settings)

    return _call(step)


def reconcile(event: dict[str, Any], context: object) -> dict[str, Any]:
    """`action` reconcile (after both Maps), record_failure (plan/reconcile failed) or
    record_item_failure (a partition/bucket failed after its retries, inside a child)."""
    action = event.get("action", "reconcile")
    execution_arn = str(event.get("execution_arn", ""))

    async def step(deps: BatchDeps, settings: BatchSettings) -> dict[str, Any]:
        if action == "reconcile":
            return await reconcile_run(
                str(event["run_id"]),
                execution_arn,
                event["validate_results"],
                event["bucket_results"],
                deps,
                settings,
            )
        if action == "record_item_failure":
            kind = "partition" if "partition" in event else "bucket"
            return await record_item_failure(
                str(event["run_id"]), kind, event[kind], event.get("error") or {}, deps
            )
        if action == "record_failure":
            request = event.get("request") or {}
            run_id = (request.get("plan") or {}).get("run_id") or run_id_for(
                execution_arn.rsplit(":", 1)[-1]
            )
            return await record_run_failure(run_id, execution_arn, event.get("error") or {}, deps)
        raise PoisonInputError(f"unknown reconcile action {action!r}", code="bad_request")

    return _call(step)
