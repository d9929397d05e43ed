"""Opening the aioboto3 clients once and wiring them into `AwsDeps`."""

from __future__ import annotations

import functools
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import aioboto3
from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.loaders import Loader, create_loader

from sluice_shared.aws.dynamodb import DynamoDbLedger
from sluice_shared.aws.events import EventBridgePublisher
from sluice_shared.aws.rules import EventBridgeRules
from sluice_shared.aws.s3 import S3ObjectStore
from sluice_shared.aws.sqs import SqsParker
from sluice_shared.faults import install_from_env
from sluice_shared.observability import trace_aws_calls
from sluice_shared.ports import AwsDeps

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from botocore.session import Session

    from sluice_shared.settings import SluiceSettings

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 30
MAX_POOL_CONNECTIONS = 16


def client_config(*, max_attempts: int = 2) -> Config:
    """botocore settings for every Sluice client.

    `max_attempts` stays small (total tries, standard mode): `sluice_shared.retry` owns the
    retry policy, and two layers of full retries would multiply into minutes of waiting.
    """
    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )


@functools.cache
def service_models() -> Loader:
    """The process's one loader of botocore's service models and endpoint rules."""
    return create_loader()


def share_service_models(session: Session) -> Session:
    """Make `session` read service models through `service_models()` and return it.

    A botocore session reads and parses each service's model (S3's is the largest) the first
    time one of its clients is created, and keeps it for its own clients only. A function opens
    two sessions, the aioboto3 one of its adapters and the plain one of the contract reader
    (`sluice_shared.published_contracts`): sharing the loader parses S3's model once per
    execution environment instead of twice, 50 ms of CPU in every first invocation. Models are
    read-only to botocore, so sharing them is what one session already does for its clients.
    """
    session.register_component("data_loader", service_models())
    return session


@asynccontextmanager
async def open_aws_deps(
    settings: SluiceSettings, *, config: Config | None = None
) -> AsyncIterator[AwsDeps]:
    """Open one S3, EventBridge, DynamoDB and SQS client and yield the adapters over them.

    The clients stay open until the block exits and belong to the running event loop: open this
    once per execution environment (`sluice_shared.runtime.Runtime` does), never per invocation.
    The endpoint is botocore's own choice (`AWS_ENDPOINT_URL` locally).
    """
    trace_aws_calls(settings.service_name)  # before the first client exists
    session = aioboto3.Session(
        botocore_session=share_service_models(AioSession()), region_name=settings.region
    )
    chosen = config or client_config()
    async with AsyncExitStack() as stack:
        s3 = await stack.enter_async_context(session.client("s3", config=chosen))
        events = await stack.enter_async_context(session.client("events", config=chosen))
        dynamodb = await stack.enter_async_context(session.client("dynamodb", config=chosen))
        sqs = await stack.enter_async_context(session.client("sqs", config=chosen))
        for client in (s3, events, dynamodb, sqs):
            install_from_env(client)  # fault injection for tests; a no-op unless SLUICE_FAULTS
        yield AwsDeps(
            objects=S3ObjectStore(s3),
            publisher=EventBridgePublisher(events, settings.event_bus),
            ledger=DynamoDbLedger(dynamodb, settings.ledger_table),
            parker=SqsParker(sqs),
            rules=EventBridgeRules(events, settings.event_bus),
        )
