"""Two output workers finalising the same file at once, under DynamoDB throttling: the ledger's
conditional writes let exactly one of them complete the file."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from contracts.registry import parse_eventbridge_event
from sluice_shared.stages import open_stage_deps
from tests.reliability.scenario import Rig, assert_reconciled


def completions(rig: Rig, file_id: str) -> int:
    items = rig.stack.client("dynamodb").query(
        TableName=rig.stack.table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :step)",
        ExpressionAttributeValues={":pk": {"S": f"FILE#{file_id}"}, ":step": {"S": "STEP#"}},
        ConsistentRead=True,
    )["Items"]
    return sum(1 for item in items if item.get("to_status", {}).get("S") == "COMPLETED")


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
    service: Any = sys.modules["sluice_output.handler"].service

    # WHEN two workers (their own clients, as two Lambda instances) finalise it at the same time
    async def race() -> list[BaseException | None]:
        async with (
            open_stage_deps(service.settings) as first,
            open_stage_deps(service.settings) as second,
        ):
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

    # THEN the file was completed exactly once, the loser (if it lost the race rather than
    # arriving after the end) got a stale-state error, and the output is exactly once
    assert completions(rig, envelope.data.file_id) == 1
    errors = [o for o in outcomes if o is not None]
    assert all(type(e).__name__ == "StaleStateError" for e in errors), errors
    assert rig.injector is not None
    assert rig.injector.fired("dynamodb") > 0
    assert_reconciled(rig.reconcile({"orders/2024/03/01/a.csv": truth}))
