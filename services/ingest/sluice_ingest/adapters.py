"""Ingest's own adapter (Step Functions) and the opening of its dependencies.

The handler imports this module when it opens its dependencies (the first invocation), not at
import time: aioboto3, aiohttp and botocore (about a quarter of a CPU second) load with the
clients, and `python -m bench.cold_start` reports the two apart.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aioboto3
import orjson
from botocore.exceptions import BotoCoreError, ClientError

from sluice_ingest.ports import IngestDeps
from sluice_shared.aws.clients import client_config, open_aws_deps
from sluice_shared.aws.errors import translate
from sluice_shared.ports import AwsDeps
from sluice_shared.published_contracts import contract_source
from sluice_shared.retry import with_retry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sluice_ingest.config import IngestSettings
    from sluice_shared.ports import QueueParker


class StepFunctionsStarter:
    """Starts executions of the batch state machine; the execution name makes it idempotent."""

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._arn = state_machine_arn

    async def start(self, name: str, payload: dict[str, Any]) -> str:
        body = orjson.dumps(payload).decode()

        async def call() -> str:
            try:
                response = await self._client.start_execution(
                    stateMachineArn=self._arn, name=name, input=body
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                    # Same name, different input: an earlier notification of this file already
                    # started its run, which is exactly what a duplicate should find.
                    return f"{self._arn.replace(':stateMachine:', ':execution:')}:{name}"
                raise translate(error) from error
            except BotoCoreError as error:
                raise translate(error) from error
            return str(response["executionArn"])

        return await with_retry(call)


@dataclass(frozen=True, slots=True)
class IngestServiceDeps:
    aws: AwsDeps
    ingest: IngestDeps

    @property
    def parker(self) -> QueueParker:
        return self.aws.parker


@asynccontextmanager
async def open_ingest_deps(settings: IngestSettings) -> AsyncIterator[IngestServiceDeps]:
    """Open the AWS clients once per execution environment (see `sluice_shared.runtime`)."""
    async with open_aws_deps(settings) as aws:
        workflow = None
        if settings.batch_state_machine_arn:
            session = aioboto3.Session(region_name=settings.region)
            async with session.client("stepfunctions", config=client_config()) as sfn:
                workflow = StepFunctionsStarter(sfn, settings.batch_state_machine_arn)
                yield _deps(aws, workflow, settings)
                return
        yield _deps(aws, workflow, settings)


def _deps(
    aws: AwsDeps, workflow: StepFunctionsStarter | None, settings: IngestSettings
) -> IngestServiceDeps:
    return IngestServiceDeps(
        aws=aws,
        ingest=IngestDeps(
            objects=aws.objects,
            publisher=aws.publisher,
            ledger=aws.ledger,
            contracts=contract_source(settings),
            workflow=workflow,
        ),
    )
