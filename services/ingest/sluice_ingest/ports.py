"""What ingest talks to besides the shared ports: the batch workflow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sluice_shared.ports import EventPublisher, Ledger, ObjectStore
from sluice_shared.stages import ContractSource


class WorkflowStarter(Protocol):
    """Starts the batch state machine."""

    async def start(self, name: str, payload: dict[str, Any]) -> str:
        """Start an execution called `name` (idempotent: the same name and input return the
        running execution) and return its ARN. Raises TransientError after bounded retries."""
        ...


@dataclass(frozen=True, slots=True)
class IngestDeps:
    objects: ObjectStore
    publisher: EventPublisher
    ledger: Ledger
    contracts: ContractSource
    workflow: WorkflowStarter | None = None
