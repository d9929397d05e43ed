"""A Lambda timeout, for real: the ingest function in the local function runner, whose worker
process is killed when the invocation outlives the function's `Timeout`. Near its deadline a
handler starts no further record (`SLUICE_MIN_REMAINING_MS`) and leaves it to SQS; without that
guard the same batch is killed mid-record and comes back whole."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from sluice.local.runner import FunctionConfig, FunctionRunner
from tests.e2e.harness import build_stack, ledger_items, sqs_event
from tests.prove import mutation_env

# Each of the first two S3 HEADs sleeps SLOW_HEAD_S: one slow record fits the timeout with
# 3.8 s to spare for the rest of its work (a loaded machine), two of them never do; after one,
# at most 3.8 s are left, below the threshold.
TIMEOUT_S = 8.0
SLOW_HEAD_S = 4.2
MIN_REMAINING_MS = 4000
INGEST_CODE = Path(__file__).resolve().parents[2] / "services" / "ingest"


async def test_scenario_record_near_the_real_timeout_is_left_for_redelivery_not_killed(
    moto_endpoint: str, tmp_path: Path
) -> None:
    # GIVEN the ingest function with an 8 s timeout, records one at a time, a 4 s threshold,
    # and the first two S3 HEADs taking 4.2 s each; two objects notified in one batch
    stack = build_stack(moto_endpoint)
    faults = {
        "seed": 1,
        "rules": [
            {
                "service": "s3",
                "operation": "HeadObject",
                "kind": "delay",
                "delay_s": SLOW_HEAD_S,
                "times": 2,
            }
        ],
    }
    env = {
        **stack.env("ingest"),
        "SLUICE_FAULTS": orjson.dumps(faults).decode(),
        "SLUICE_RECORD_CONCURRENCY": "1",
        "SLUICE_MIN_REMAINING_MS": str(MIN_REMAINING_MS),
        **mutation_env(),
    }
    config = FunctionConfig(
        name="ingest",
        handler="sluice_ingest.handler.lambda_handler",
        code_dir=INGEST_CODE,
        env=tuple(env.items()),
        timeout_s=TIMEOUT_S,
        memory_mb=1024,
    )
    s3, sqs = stack.client("s3"), stack.client("sqs")
    for key in ("orders/a.csv", "orders/b.csv"):
        s3.put_object(Bucket=stack.raw, Key=key, Body=b"order_id\n1\n")
    url = stack.queues["ingest"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 2
    runner = FunctionRunner(tmp_path, moto_endpoint)
    try:
        await runner.register(config)
        # (a warm environment: an empty batch opens the clients, outside the timed invocations)
        warm = await runner.invoke("ingest", b'{"Records": []}')
        assert warm.json() == {"batchItemFailures": []}
        # WHEN the batch is invoked
        first = await runner.invoke("ingest", json.dumps(sqs_event(messages, arn)).encode())
        # THEN the invocation returned in time (not killed), having run the first record and
        # left the second, unstarted, for SQS to redeliver
        assert first.function_error is None, first.payload
        assert first.duration_ms < TIMEOUT_S * 1000
        left = [f["itemIdentifier"] for f in first.json()["batchItemFailures"]]
        assert left == [messages[1]["MessageId"]]
        assert len(list(ledger_items(stack))) == 1
        # WHEN SQS redelivers the record left over, THEN it runs in time too (its own slow
        # HEAD), and both files are registered exactly once
        second = await runner.invoke("ingest", json.dumps(sqs_event(messages[1:], arn)).encode())
        assert second.function_error is None, second.payload
        assert second.json()["batchItemFailures"] == []
        assert second.duration_ms >= SLOW_HEAD_S * 1000  # the fault fired in the worker
        assert sorted(i["key"] for i in ledger_items(stack)) == ["orders/a.csv", "orders/b.csv"]
    finally:
        await runner.close()
