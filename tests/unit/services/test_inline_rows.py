"""Small files inline: validate and transform carry a one-bucket file's rows in their fact (v3)
with the rows' sha256 recorded in the ledger; the next stage reads them from the fact, and rows
whose digest is not the ledger's are refused before any write."""

from __future__ import annotations

import pytest

from contracts.datasets import DatasetCatalog
from contracts.events import FileValidatedV3, published_majors
from contracts.types import InlineRows
from sluice_shared.errors import EventLedgerMismatch
from sluice_shared.ports import FileStatus
from sluice_shared.stages import StageDeps, StageSettings
from sluice_shared.subscribers import LegacySubscribers
from sluice_transform.domain import transform_validated_file
from sluice_validate.domain import validate_ingested_file
from tests.fakes import InMemoryBusRules, InMemoryLedger, InMemoryObjectStore
from tests.unit.services.test_claims_without_a_read import _ingested, through_every_stage


@pytest.fixture
def store() -> InMemoryObjectStore:
    return InMemoryObjectStore()


@pytest.fixture
def deps(store: InMemoryObjectStore) -> StageDeps:
    return StageDeps(objects=store, ledger=InMemoryLedger(), contracts=DatasetCatalog())


def work_objects(store: InMemoryObjectStore) -> list[tuple[str, str]]:
    return sorted(key for key in store.objects if key[0] == "work")


async def test_a_small_file_travels_inline_and_completes_with_nothing_staged(
    deps: StageDeps, store: InMemoryObjectStore, settings: StageSettings
) -> None:
    # GIVEN a small file ingested
    ingested = await _ingested(deps)

    # WHEN it goes through validate, transform and output
    validated, transformed, processed = await through_every_stage(ingested, deps, settings)

    # THEN its rows travelled in the facts (v3 only: no staged prefix for older majors), their
    # digests are the ledger's, nothing was staged, and the file completed with every row
    assert (processed.rows_in, processed.rows_out) == (2, 2)
    assert validated.inline is not None
    assert validated.staged_prefix is None
    assert transformed.inline is not None
    assert transformed.transformed_prefix is None
    assert published_majors(validated) == [validated]
    record = await deps.ledger.get(ingested.file_id)
    assert record is not None
    assert record.status is FileStatus.COMPLETED
    assert (record.validated_sha256, record.transformed_sha256) == (
        validated.inline.sha256,
        transformed.inline.sha256,
    )
    assert work_objects(store) == []


async def test_inline_rows_other_than_the_recorded_ones_are_refused_unwritten(
    deps: StageDeps, store: InMemoryObjectStore, settings: StageSettings
) -> None:
    # GIVEN a validated fact whose rows were swapped for others (a consistent digest of their
    # own, so the contract parses them)
    ingested = await _ingested(deps)
    validated = (await validate_ingested_file(ingested, deps, settings)).event
    assert isinstance(validated, FileValidatedV3)
    assert validated.inline is not None
    other = InlineRows.of(validated.inline.payload() + b"\0", rows=validated.rows_valid)
    forged = validated.model_copy(update={"inline": other, "ledger": None})
    before = await deps.ledger.get(ingested.file_id)

    # WHEN transform handles it
    with pytest.raises(EventLedgerMismatch) as refused:
        await transform_validated_file(forged, deps, settings)

    # THEN it is refused for the digest, and nothing was written
    assert [d[0] for d in refused.value.differences] == ["inline.sha256"]
    assert await deps.ledger.get(ingested.file_id) == before
    assert work_objects(store) == []


async def test_a_file_above_the_inline_limit_is_staged_and_published_in_every_major(
    deps: StageDeps, store: InMemoryObjectStore, settings: StageSettings
) -> None:
    # GIVEN rows above the inline limit (here: a limit of 0, every file staged)
    staged_settings = settings.model_copy(update={"inline_max_bytes": 0})
    ingested = await _ingested(deps)

    # WHEN validate handles the file
    validated = (await validate_ingested_file(ingested, deps, staged_settings)).event

    # THEN its rows are staged, the fact names them and goes out in v1 and v2 too
    assert isinstance(validated, FileValidatedV3)
    assert validated.inline is None
    assert validated.staged_prefix is not None
    assert [m.TYPE for m in published_majors(validated)] == [
        "sluice.file.validated.v3",
        "sluice.file.validated.v2",
        "sluice.file.validated.v1",
    ]
    assert len(work_objects(store)) == 1


@pytest.mark.parametrize("older", ["v1", "v2"])
async def test_a_small_file_with_an_older_major_subscriber_is_staged_and_published_in_every_major(
    store: InMemoryObjectStore, settings: StageSettings, older: str
) -> None:
    # GIVEN a rule on the bus that still matches only an older major of both facts
    rules = InMemoryBusRules()
    rules.add(
        "team-before-v3",
        {
            "detail-type": [
                f"sluice.file.validated.{older}",
                f"sluice.file.transformed.{older}",
            ]
        },
    )
    deps = StageDeps(
        objects=store,
        ledger=InMemoryLedger(),
        contracts=DatasetCatalog(),
        subscribers=LegacySubscribers(rules),
    )
    ingested = await _ingested(deps)

    # WHEN the small file goes through every stage
    validated, transformed, processed = await through_every_stage(ingested, deps, settings)

    # THEN validate and transform staged its rows (nothing inline), so both facts go out in
    # every major, the older subscriber's included; the file completes as usual
    assert (validated.inline, transformed.inline) == (None, None)
    assert validated.staged_prefix is not None
    assert transformed.transformed_prefix is not None
    for fact in (validated, transformed):
        assert [m.TYPE.rsplit(".", 1)[1] for m in published_majors(fact)] == ["v3", "v2", "v1"]
    assert (processed.rows_in, processed.rows_out) == (2, 2)
    assert len(work_objects(store)) == 2
    assert rules.listings == 2  # once per fact, each answer kept for the TTL
