"""Sluice's built-in event contracts: one folder per fact and major (`<fact>/v<N>/`).

Each folder holds the pydantic model (the source of truth), the generated `schema.json` and
immutable golden `examples/` (listed with their sha256 in `examples/CHECKSUMS`).

A fact with more than one live major (`LIVE_MAJORS`) is published in each of them
(`published_majors`), and its consumers accept each of them from their queues (`accepted_types`,
so a message parked before a consumer moved still redrives); their EventBridge rules match the
newest major only, so a consumer receives every fact once.
"""

from typing import TYPE_CHECKING

from contracts.envelope import ContractModel
from contracts.events.batch_completed.v1 import BatchCompletedV1
from contracts.events.batch_failed.v1 import BatchFailedV1
from contracts.events.file_ingested.v1 import FileIngestedV1
from contracts.events.file_ingested.v2 import FileIngestedV2
from contracts.events.file_processed.v1 import FileProcessedV1
from contracts.events.file_rejected.v1 import FileRejectedV1
from contracts.events.file_transformed.v1 import FileTransformedV1
from contracts.events.file_transformed.v2 import FileTransformedV2
from contracts.events.file_transformed.v3 import FileTransformedV3
from contracts.events.file_validated.v1 import FileValidatedV1
from contracts.events.file_validated.v2 import FileValidatedV2
from contracts.events.file_validated.v3 import FileValidatedV3

if TYPE_CHECKING:
    from collections.abc import Callable

BUILTIN_MODELS: tuple[type[ContractModel], ...] = (
    FileIngestedV1,
    FileIngestedV2,
    FileValidatedV1,
    FileValidatedV2,
    FileValidatedV3,
    FileRejectedV1,
    FileTransformedV1,
    FileTransformedV2,
    FileTransformedV3,
    FileProcessedV1,
    BatchCompletedV1,
    BatchFailedV1,
)
"""Every built-in contract model, in pipeline order."""

LIVE_MAJORS: tuple[tuple[type[ContractModel], ...], ...] = (
    (FileIngestedV1, FileIngestedV2),
    (FileValidatedV1, FileValidatedV2, FileValidatedV3),
    (FileTransformedV1, FileTransformedV2, FileTransformedV3),
)
"""Facts published in more than one major, oldest first (the newest is the one rules match)."""


def _majors_of(model: type[ContractModel]) -> tuple[type[ContractModel], ...]:
    for majors in LIVE_MAJORS:
        if model in majors:
            return majors
    return (model,)


def published_majors(event: ContractModel) -> list[ContractModel]:
    """`event` in every live major of its fact that can say it, newest first (a fact with one
    major: itself; a fact its older majors cannot say, `in_older_majors()` False: its own major
    and the newer ones).

    Raises pydantic's ValidationError when the event breaks a newer major's constraints (a
    count above its bound): a producer bug, refused before anything is published.
    """
    majors = _majors_of(type(event))
    if not _in_older_majors(event):
        majors = majors[majors.index(type(event)) :]
    return [
        event if type(event) is model else model.model_validate(event.model_dump())
        for model in reversed(majors)
    ]


def _in_older_majors(event: ContractModel) -> bool:
    """Whether the majors older than `event`'s can say it (a v3 fact with its rows inline and
    nothing staged cannot: v1 and v2 consumers read a staged prefix)."""
    says: Callable[[], bool] | None = getattr(event, "in_older_majors", None)
    return True if says is None else says()


def accepted_types(model: type[ContractModel]) -> frozenset[str]:
    """The contract types a consumer of `model`'s fact accepts: every live major of it."""
    return frozenset(m.TYPE for m in _majors_of(model))


def live_majors(model: type[ContractModel]) -> tuple[type[ContractModel], ...]:
    """Every live major of `model`'s fact, oldest first (the model alone for a fact with one)."""
    return _majors_of(model)


def routed_type(model: type[ContractModel]) -> str:
    """The contract type a consumer's EventBridge rule matches: the newest live major."""
    return _majors_of(model)[-1].TYPE


__all__ = [
    "BUILTIN_MODELS",
    "LIVE_MAJORS",
    "BatchCompletedV1",
    "BatchFailedV1",
    "FileIngestedV1",
    "FileIngestedV2",
    "FileProcessedV1",
    "FileRejectedV1",
    "FileTransformedV1",
    "FileTransformedV2",
    "FileTransformedV3",
    "FileValidatedV1",
    "FileValidatedV2",
    "FileValidatedV3",
    "accepted_types",
    "live_majors",
    "published_majors",
    "routed_type",
]
