"""Two output workers finalising the same file at once, under DynamoDB throttling: both claim the
step from the same version of the record, the ledger's version lock makes the second claim lose
and claim again on top of the first, and exactly one of them completes the file."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from contracts.registry import parse_eventbridge_event
from sluice_shared.stages import open_stage_deps
from tests.reliability.scenario import Rig, assert_reconciled


def steps(rig: Rig, file_id: str) -> list[tuple[str, int]]:
    """The file's history: (to_status, version) of every ledger step, in time order."""
    items = rig.stack.client("dynamodb").query(
        TableName=rig.stack.table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :step)",
        ExpressionAttributeValues={":pk": {"S": f"FILE#{file_id}"}, ":step": {"S": "STEP#"}},
        ConsistentRead=True,
    )["Items"]
    return [(item["to_status"]["S"], int(item["version"]["N"])) for item in items]


def read_together(ledger: Any, barrier: asyncio.Barrier) -> None:
    """Make `ledger`'s first look at the record (a read, or a claim without a read on the
    record the event carries) wait for the other worker's: both workers then decide from the
    same version of the record (the race, forced)."""
    read, assumed = ledger.get, ledger.transition_assumed
    first = True

    async def together() -> None:
        nonlocal first
        if first:
            first = False
            await barrier.wait()

    async def get(file_id: str) -> Any:
        record = await read(file_id)
        await together()
        return record

    async def transition_assumed(*args: Any, **kwargs: Any) -> Any:
        await together()
        return await assumed(*args, **kwargs)

    ledger.get = get
    ledger.transition_assumed = transition_assumed


def test_scenario_two_concurrent_finalisers_exactly_one_wins(rig: Rig, tmp_path: Path) -> None:
    # GIVEN a file transformed and waiting for output, with 20% of DynamoDB calls throttled
    spec = {
        "seed": 9,
        "rules": [{"service": "dynamodb", "operation": "*", "kind": "throttle", "fraction": 0.2}],
    }
    rig.start(spec)
    rig.paused.add("output")
    truth = rig.upload_generated(tmp_path, "orders/2024/03/01/a.csv", seed=4)
    sqs = rig.stack.client("sqs")

    def output_waiting() -> bool:
        attrs = sqs.get_queue_attributes(
            QueueUrl=rig.stack.queues["output"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) >= 1

    rig.pump(until=output_waiting, timeout=30)
    message = sqs.receive_message(QueueUrl=rig.stack.queues["output"])["Messages"][0]
    envelope = parse_eventbridge_event(message["Body"])
    # Without the record the fact may carry, both workers read it, check and claim (the path
    # every fact without a snapshot, and every claim that finds the record moved, takes): the
    # race below is then between two claims from one read, which only the version lock settles.
    # A claim on the snapshot is conditional on the whole record (`claim-assumed-inexact`).
    envelope = envelope.model_copy(
        update={"data": envelope.data.model_copy(update={"ledger": None})}
    )
    service: Any = sys.modules["sluice_output.handler"].service

    # WHEN two workers (their own clients, as two Lambda instances) finalise it at the same
    # time, each claiming the step from the same read of the record
    async def race() -> list[BaseException | None]:
        async with (
            open_stage_deps(service.settings) as first,
            open_stage_deps(service.settings) as second,
        ):
            barrier = asyncio.Barrier(2)
            read_together(first.stage.ledger, barrier)
            read_together(second.stage.ledger, barrier)
            results: list[BaseException | None] = await asyncio.gather(
                service.handle_one(envelope, first),
                service.handle_one(envelope, second),
                return_exceptions=True,
            )
            return results

    outcomes = asyncio.run(race())
    sqs.delete_message(QueueUrl=rig.stack.queues["output"], ReceiptHandle=message["ReceiptHandle"])
    rig.paused.clear()
    rig.settle(1)

    # THEN both workers claimed the step, from the same version: the second claim lost on the
    # version lock and was applied on top of the first (consecutive versions, never the same one)
    history = steps(rig, envelope.data.file_id)
    claims = [version for status, version in history if status == "WRITING"]
    assert len(claims) == 2, history
    assert claims[1] == claims[0] + 1, history
    # AND exactly one of them completed the file; the other was refused as stale
    assert [version for status, version in history if status == "COMPLETED"] == [claims[1] + 1]
    assert [type(o).__name__ for o in outcomes if o is not None] == ["StaleStateError"], outcomes
    assert rig.injector is not None
    assert rig.injector.fired("dynamodb") > 0
    assert_reconciled(rig.reconcile({"orders/2024/03/01/a.csv": truth}))
