"""aioboto3 clients against the per-test moto server, and fast retries."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aioboto3
import pytest
from types_aiobotocore_dynamodb.client import DynamoDBClient
from types_aiobotocore_events.client import EventBridgeClient
from types_aiobotocore_s3.client import S3Client
from types_aiobotocore_sqs.client import SQSClient

from sluice_shared import retry
from sluice_shared.aws import client_config

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def retry_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries happen, but without sleeping; the waits are recorded."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(retry, "SLEEP", record)
    return waits


@pytest.fixture
def session(moto_endpoint: str) -> aioboto3.Session:
    """A session whose clients reach the moto server (via AWS_ENDPOINT_URL)."""
    return aioboto3.Session(region_name=REGION)


@pytest.fixture
async def s3(session: aioboto3.Session) -> AsyncIterator[S3Client]:
    async with session.client("s3", config=client_config()) as client:
        yield client


@pytest.fixture
async def events(session: aioboto3.Session) -> AsyncIterator[EventBridgeClient]:
    async with session.client("events", config=client_config()) as client:
        yield client


@pytest.fixture
async def dynamodb(session: aioboto3.Session) -> AsyncIterator[DynamoDBClient]:
    async with session.client("dynamodb", config=client_config()) as client:
        yield client


@pytest.fixture
async def sqs(session: aioboto3.Session) -> AsyncIterator[SQSClient]:
    async with session.client("sqs", config=client_config()) as client:
        yield client
