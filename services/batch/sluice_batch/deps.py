"""The ports the batch functions use, and opening them over the AWS adapters."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sluice_shared.ports import EventPublisher, Ledger, ObjectStore, QueueParker
from sluice_shared.stages import ContractSource

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sluice_shared.settings import SluiceSettings


@dataclass(frozen=True, slots=True)
class BatchDeps:
    """Object store, ledger, bus and the contract catalog (the parker only satisfies `Runtime`:
    batch functions are invoked by Step Functions, never by an SQS mapping)."""

    objects: ObjectStore
    ledger: Ledger
    publisher: EventPublisher
    contracts: ContractSource
    parker: QueueParker


@asynccontextmanager
async def open_batch_deps(settings: SluiceSettings) -> AsyncIterator[BatchDeps]:
    """Open the AWS clients once per execution environment and yield the batch deps."""
    from sluice_shared.aws.clients import open_aws_deps
    from sluice_shared.published_contracts import contract_source

    async with open_aws_deps(settings) as aws:
        yield BatchDeps(
            objects=aws.objects,
            ledger=aws.ledger,
            publisher=aws.publisher,
            contracts=contract_source(settings),
            parker=aws.parker,
        )
