"""The `QueueParker` port's contract, run against both implementations: the in-memory fake
(`tests.fakes.RecordingParker`) and `SqsParker` on a moto server. What only SQS has (reasons cut
to the attribute limit, FIFO deduplication) is in `test_sqs_parker.py`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from types_aiobotocore_sqs.client import SQSClient

from sluice_shared.aws.sqs import SqsParker
from sluice_shared.ports import REASON_ATTRIBUTE, REASON_CODE_ATTRIBUTE, QueueParker
from tests.fakes import RecordingParker
from tests.integration.shared.helpers import drain

Parked = tuple[str, str, str]  # body, reason code, reason


@dataclass(frozen=True)
class Dlq:
    """A parker, the DLQ it parks into, and what that DLQ holds (up to `expected` messages)."""

    parker: QueueParker
    url: str
    held: Callable[[int], Awaitable[list[Parked]]]


@pytest.fixture(params=["in_memory", "sqs"])
def sqs_or_none(request: pytest.FixtureRequest) -> SQSClient | None:
    """None for the fake; a client of the per-test moto server for the adapter."""
    if request.param == "in_memory":
        return None
    client: SQSClient = request.getfixturevalue("sqs")
    return client


@pytest.fixture
async def dlq(sqs_or_none: SQSClient | None) -> Dlq:
    if sqs_or_none is None:
        fake = RecordingParker()
        url = "http://127.0.0.1:1/000000000000/validate-dlq"

        async def recorded(expected: int) -> list[Parked]:
            return [(p.body, p.reason_code, p.reason) for p in fake.parked if p.queue_url == url]

        return Dlq(fake, url, recorded)
    sqs = sqs_or_none
    url = (await sqs.create_queue(QueueName="validate-dlq"))["QueueUrl"]

    async def received(expected: int) -> list[Parked]:
        held: list[Parked] = []
        for message in await drain(sqs, url, expected=expected):
            attributes: Any = message["MessageAttributes"]
            held.append(
                (
                    str(message["Body"]),
                    attributes[REASON_CODE_ATTRIBUTE]["StringValue"],
                    attributes[REASON_ATTRIBUTE]["StringValue"],
                )
            )
        return held

    return Dlq(SqsParker(sqs), url, received)


async def test_parker_keeps_each_body_with_its_reason(dlq: Dlq) -> None:
    # GIVEN two poison messages WHEN both are parked
    await dlq.parker.park(dlq.url, '{"detail-type": "x"}', "unknown_contract_type", "no v9 here")
    await dlq.parker.park(dlq.url, "not json", "invalid_json", "the body is not JSON")

    # THEN the DLQ holds each body once, with its reason code and reason
    assert sorted(await dlq.held(2)) == [
        ("not json", "invalid_json", "the body is not JSON"),
        ('{"detail-type": "x"}', "unknown_contract_type", "no v9 here"),
    ]
