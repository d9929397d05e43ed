"""`QueueParker` over SQS: a poison message goes to a DLQ with its reason as attributes."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from sluice_shared.aws.errors import translating
from sluice_shared.ports import REASON_ATTRIBUTE, REASON_CODE_ATTRIBUTE
from sluice_shared.retry import aws_retry, with_retry

if TYPE_CHECKING:
    from collections.abc import Callable

    from tenacity import AsyncRetrying
    from types_aiobotocore_sqs.client import SQSClient

MAX_REASON_CHARS = 1024  # keeps the attributes small next to a body of up to 256 KB
PARKED_GROUP = "sluice-parked"


class SqsParker:
    """The SQS implementation of `sluice_shared.ports.QueueParker`.

    Args:
        client: an open aioboto3 SQS client.
        retry: builds the retry policy per request (default `aws_retry`).
    """

    def __init__(
        self, client: SQSClient, *, retry: Callable[[], AsyncRetrying] = aws_retry
    ) -> None:
        self._client = client
        self._retry = retry

    async def park(self, queue_url: str, body: str, reason_code: str, reason: str) -> None:
        """See `QueueParker.park`. FIFO DLQs (`.fifo`) get one message group and a
        content-based deduplication id, so parking twice within 5 minutes sends once."""
        request: dict[str, Any] = {
            "QueueUrl": queue_url,
            "MessageBody": body,
            "MessageAttributes": {
                REASON_CODE_ATTRIBUTE: {"DataType": "String", "StringValue": reason_code or "-"},
                REASON_ATTRIBUTE: {
                    "DataType": "String",
                    "StringValue": (reason or "-")[:MAX_REASON_CHARS],
                },
            },
        }
        if queue_url.endswith(".fifo"):
            request["MessageGroupId"] = PARKED_GROUP
            request["MessageDeduplicationId"] = hashlib.sha256(body.encode()).hexdigest()

        async def call() -> None:
            with translating():
                await self._client.send_message(**request)

        await with_retry(call, self._retry)
