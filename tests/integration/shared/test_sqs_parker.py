"""SqsParker on a moto server: the message attributes, the reason cut to their limit, FIFO
deduplication. Parking itself is proved for this adapter and the fake alike in
`test_port_contract_parker.py`."""

from __future__ import annotations

from typing import Any

from types_aiobotocore_sqs.client import SQSClient

from sluice_shared.aws.sqs import MAX_REASON_CHARS, SqsParker
from sluice_shared.ports import REASON_ATTRIBUTE, REASON_CODE_ATTRIBUTE
from tests.integration.shared.helpers import drain


async def test_park_sends_body_with_reason_attributes(sqs: SQSClient) -> None:
    dlq = (await sqs.create_queue(QueueName="validate-dlq"))["QueueUrl"]

    await SqsParker(sqs).park(dlq, '{"detail-type": "x"}', "unknown_contract_type", "no v9 here")

    [message] = await drain(sqs, dlq, expected=1)
    attributes = message["MessageAttributes"]
    assert message["Body"] == '{"detail-type": "x"}'
    assert attributes == {
        REASON_CODE_ATTRIBUTE: {"DataType": "String", "StringValue": "unknown_contract_type"},
        REASON_ATTRIBUTE: {"DataType": "String", "StringValue": "no v9 here"},
    }


async def test_park_long_reason_is_truncated(sqs: SQSClient) -> None:
    dlq = (await sqs.create_queue(QueueName="validate-dlq"))["QueueUrl"]

    await SqsParker(sqs).park(dlq, "body", "invalid_contract", "r" * 10_000)

    [message] = await drain(sqs, dlq, expected=1)
    attributes: Any = message["MessageAttributes"]
    reason = attributes[REASON_ATTRIBUTE]["StringValue"]
    assert reason == "r" * MAX_REASON_CHARS


async def test_park_into_fifo_dlq_deduplicates_the_same_body(sqs: SQSClient) -> None:
    dlq = (await sqs.create_queue(QueueName="validate-dlq.fifo", Attributes={"FifoQueue": "true"}))[
        "QueueUrl"
    ]
    parker = SqsParker(sqs)

    await parker.park(dlq, "same body", "invalid_json", "first")
    await parker.park(dlq, "same body", "invalid_json", "second")

    messages = await drain(sqs, dlq, expected=2)
    assert [m["Body"] for m in messages] == ["same body"]
