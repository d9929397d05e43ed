"""What `sluice local run` prints while it follows files: function errors with the function's
log, failed and redelivered messages, messages parked in a DLQ and a crash loop — read from a
real runtime's state and its queues."""

from __future__ import annotations

import asyncio
import json
import time

import boto3

from sluice.commands.local import _watch
from sluice.local.run import LiveWatch
from sluice.local.runtime import LocalRuntime

QUEUE = "sluice-test-worker-queue"
FUNCTION = "sluice-test-worker"


async def test_errors_retries_parking_and_crash_loop_show_as_they_happen(
    runtime: LocalRuntime,
) -> None:
    sqs = boto3.client(
        "sqs",
        endpoint_url=runtime.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    watch = LiveWatch(runtime.state_dir / "logs", crash_loop=2)

    def look() -> list[str]:
        # the look `local run` takes every second: the runtime's state and the DLQ depths
        lines: list[str] = _watch(watch, runtime.options.port, sqs, "test")
        return lines

    # GIVEN a baseline, then a message the function raises on at every delivery
    assert await asyncio.to_thread(look) == []
    url = (await asyncio.to_thread(sqs.get_queue_url, QueueName=QUEUE))["QueueUrl"]
    body = json.dumps({"action": "raise"})
    await asyncio.to_thread(sqs.send_message, QueueUrl=url, MessageBody=body)
    # WHEN the run keeps looking until the message is parked (2 receives, then the DLQ)
    seen: list[str] = []
    deadline = time.monotonic() + 90
    while not any(line.startswith("parked:") for line in seen):
        assert time.monotonic() < deadline, f"never parked; lines so far: {seen}"
        seen += await asyncio.to_thread(look)
        await asyncio.sleep(0.5)
    log = runtime.state_dir / "logs" / f"{FUNCTION}.log"
    # THEN each error named the function's log as it happened, the failed message and its
    # redelivery showed, the second error called the crash loop once (with the log's last
    # error), and the DLQ move showed with the command to look at it
    assert f"error: {FUNCTION} failed 1 invocation(s) (log: {log})" in seen
    assert f"retry: 1 message(s) of {QUEUE} failed in {FUNCTION}; " in " ".join(seen)
    assert f"retry: 1 message(s) of {QUEUE} redelivered to {FUNCTION}" in seen
    crash = [line for line in seen if line.startswith("crash loop:")]
    assert len(crash) == 1
    assert f"{FUNCTION} failed 2 invocations in this run; see {log}" in crash[0]
    assert "fixture asked to raise" in crash[0]
    assert (
        "parked: 1 message(s) moved to sluice-test-worker-dlq (now 1; "
        "`sluice dlq list sluice-test-worker-dlq`)" in seen
    )
