"""The pollers' in-process queue (`MotoSqsQueue`) against moto's SQS API (`mock_aws`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sluice.local.poller import MotoSqsQueue, sqs_event

ACCOUNT = "123456789012"


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(4)
    yield executor
    executor.shutdown()


def _queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url, f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"


def _send(sqs: Any, url: str, body: str, **extra: Any) -> None:
    sqs.send_message(
        QueueUrl=url,
        MessageBody=body,
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "file"},
            "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
        **extra,
    )


async def test_moto_queue_receive_returns_what_the_receive_api_returns(
    sqs: Any, pool: ThreadPoolExecutor
) -> None:
    # GIVEN the same message in two queues
    url_a, arn_a = _queue(sqs, "a")
    url_b, _ = _queue(sqs, "b")
    _send(sqs, url_a, "hello")
    _send(sqs, url_b, "hello")
    # WHEN one is received in process and the other through the API
    (mine,) = await MotoSqsQueue(arn_a, pool).receive(10, 0)
    (theirs,) = sqs.receive_message(
        QueueUrl=url_b, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    # THEN both have the same fields and attributes (ids, handles and clocks aside)
    assert mine.keys() == theirs.keys()
    assert mine["Attributes"].keys() == theirs["Attributes"].keys()
    for same in ("Body", "MD5OfBody", "MessageAttributes", "MD5OfMessageAttributes"):
        assert mine[same] == theirs[same]
    assert mine["Attributes"]["ApproximateReceiveCount"] == "1"
    # AND the Lambda event carries the binary attribute base64-encoded, as Lambda does
    record = json.loads(json.dumps(sqs_event([mine], arn_a, "us-east-1")))["Records"][0]
    assert record["messageAttributes"]["raw"]["binaryValue"] == "AAE="


async def test_moto_queue_redrives_to_dlq_at_max_receive_count(
    sqs: Any, pool: ThreadPoolExecutor
) -> None:
    # GIVEN a queue with visibility 0 s (a received message is visible again at once)
    dlq_url, dlq_arn = _queue(sqs, "dlq")
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    url, arn = _queue(sqs, "work", VisibilityTimeout="0", RedrivePolicy=redrive)
    _send(sqs, url, "poison")
    queue = MotoSqsQueue(arn, pool)
    # WHEN it is received without being deleted
    counts = [m["Attributes"]["ApproximateReceiveCount"] for m in await queue.receive(10, 0)]
    counts += [m["Attributes"]["ApproximateReceiveCount"] for m in await queue.receive(10, 0)]
    third = await queue.receive(10, 0)
    # THEN it was delivered twice, then moved to the DLQ instead of a third delivery
    assert counts == ["1", "2"]
    assert third == []
    moved = sqs.receive_message(QueueUrl=dlq_url)["Messages"]
    assert [m["Body"] for m in moved] == ["poison"]


async def test_moto_queue_keeps_a_fifo_group_in_order_and_deletes(
    sqs: Any, pool: ThreadPoolExecutor
) -> None:
    url, arn = _queue(sqs, "work.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    for body in ("first", "second"):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g")
    queue = MotoSqsQueue(arn, pool)
    # WHEN one message of the group is in flight
    (first,) = await queue.receive(1, 0)
    blocked = await queue.receive(10, 0)
    # THEN the group's next message waits until the first is deleted
    assert first["Body"] == "first"
    assert first["Attributes"]["MessageGroupId"] == "g"
    assert blocked == []
    await queue.delete([(first["MessageId"], first["ReceiptHandle"])])
    (second,) = await queue.receive(10, 0)
    assert second["Body"] == "second"


async def test_moto_queue_long_poll_returns_a_message_sent_while_waiting(
    sqs: Any, pool: ThreadPoolExecutor
) -> None:
    import asyncio
    import threading

    from moto.sqs.models import sqs_backends

    url, arn = _queue(sqs, "lp")
    # GIVEN a receive that is known to be waiting inside moto's long poll (not merely started)
    moto_queue = sqs_backends[ACCOUNT]["us-east-1"].get_queue("lp")
    waiting_inside = threading.Event()
    wait_for_messages = moto_queue.wait_for_messages

    def entered(timeout: int) -> None:
        waiting_inside.set()
        wait_for_messages(timeout)

    moto_queue.wait_for_messages = entered  # type: ignore[method-assign]
    queue = MotoSqsQueue(arn, pool)
    waiting = asyncio.ensure_future(queue.receive(10, 20))
    assert await asyncio.to_thread(waiting_inside.wait, 30)
    # WHEN a message is sent meanwhile
    sqs.send_message(QueueUrl=url, MessageBody="late")
    # THEN that same receive returns it
    received = await asyncio.wait_for(waiting, 30)
    assert [m["Body"] for m in received] == ["late"]
