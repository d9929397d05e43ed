"""Concurrent writes of one batch run record against the real ledger table on a moto server."""

from __future__ import annotations

import asyncio

from sluice_batch.deps import open_batch_deps
from sluice_batch.reconcile import record_item_failure
from sluice_shared.ports import RunRecord
from sluice_shared.settings import SluiceSettings
from tests.integration.batch.batch_stack import BatchStack, batch_stack

__all__ = ["batch_stack"]


def test_record_item_failure_concurrent_children_lose_no_failed_item(
    batch_stack: BatchStack,
) -> None:
    # GIVEN a running batch run
    async def scenario() -> RunRecord | None:
        async with open_batch_deps(SluiceSettings.from_env()) as deps:
            await deps.ledger.put_run(RunRecord(run_id="race-1"))
            items = [{"file_id": f"{n:032x}", "partition": n} for n in range(8)]
            error = {"Error": "States.Timeout", "Cause": "took too long"}
            # WHEN eight children record their partition failures at the same time
            await asyncio.gather(
                *(record_item_failure("race-1", "partition", i, error, deps) for i in items)
            )
            return await deps.ledger.get_run("race-1")

    run = asyncio.run(scenario())
    # THEN the run is FAILED and lists every one of them (no read-modify-write lost an item)
    assert run is not None
    assert run.status == "FAILED"
    assert sorted(run.details["failed_items"]) == sorted(
        f"partition {n} of file {n:032x}" for n in range(8)
    )
