"""The `Ledger` port's contract, run against both implementations: the in-memory fake the unit
tests use (`tests.fakes.InMemoryLedger`) and `DynamoDbLedger` on a moto server. A behaviour the
domain relies on belongs here, so the fake cannot drift from the adapter; what only DynamoDB has
(the table, TTLs, the conditional-write races) is in `test_dynamodb_ledger.py`."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from types_aiobotocore_dynamodb.client import DynamoDBClient

from sluice_shared.aws.dynamodb import DynamoDbLedger, create_ledger_table
from sluice_shared.ports import (
    FileRecord,
    FileStatus,
    IllegalTransitionError,
    Ledger,
    RunRecord,
    StaleRunError,
    StaleStateError,
    SupersededError,
    sequencer_order,
)
from tests.fakes import InMemoryLedger
from tests.integration.shared.ledger_records import DAY, TABLE, Clock, record


@pytest.fixture(params=["in_memory", "dynamodb"])
def dynamodb_or_none(request: pytest.FixtureRequest) -> DynamoDBClient | None:
    """None for the fake; a client of the per-test moto server for the adapter."""
    if request.param == "in_memory":
        return None
    client: DynamoDBClient = request.getfixturevalue("dynamodb")
    return client


@pytest.fixture
async def ledger(dynamodb_or_none: DynamoDBClient | None) -> Ledger:
    if dynamodb_or_none is None:
        return InMemoryLedger(clock=Clock())
    await create_ledger_table(dynamodb_or_none, TABLE)
    return DynamoDbLedger(dynamodb_or_none, TABLE, clock=Clock())


async def test_ledger_register_twice_second_returns_existing(ledger: Ledger) -> None:
    created, first = await ledger.register_file(record())
    again, existing = await ledger.register_file(record(size_bytes=999))

    assert (created, again) == (True, False)
    assert existing == first
    assert existing.size_bytes == 123


def version(n: int, version_id: str) -> FileRecord:
    """File `n`: version `version_id` of one key (`orders/v.csv`)."""
    return record(n, key="orders/v.csv", version_id=version_id)


def seq(raw: str) -> str:
    ordered = sequencer_order(raw)
    assert ordered is not None
    return ordered


async def test_ledger_register_older_sequencer_of_a_key_is_superseded(ledger: Ledger) -> None:
    # GIVEN the newer version of a key registered with its notification's sequencer; S3's
    # sequencers differ in length, and compare as hex after left-padding with zeros
    await ledger.register_file(version(2, "v2"), sequencer=seq("0100"))
    # WHEN the older version's notification (a shorter, smaller sequencer) registers late
    with pytest.raises(SupersededError):
        await ledger.register_file(version(1, "v1"), sequencer=seq("FF"))
    # THEN the older version is not registered
    assert await ledger.get(version(1, "v1").file_id) is None
    # AND a redelivered copy of the older one is refused too, even once it is a file
    await ledger.register_file(version(3, "v1"))
    with pytest.raises(SupersededError):
        await ledger.register_file(version(3, "v1"), sequencer=seq("00FF"))


async def test_ledger_register_same_sequencer_again_is_a_duplicate(ledger: Ledger) -> None:
    created, first = await ledger.register_file(version(1, "v1"), sequencer=seq("0a1b"))
    again, existing = await ledger.register_file(version(1, "v1"), sequencer=seq("0A1B"))

    assert (created, again) == (True, False)
    assert existing == first


async def test_ledger_register_later_sequencer_or_other_key_registers(ledger: Ledger) -> None:
    await ledger.register_file(version(1, "v1"), sequencer=seq("05"))
    # a later version of the key, and an earlier sequencer of another key (not comparable)
    created_later, _ = await ledger.register_file(version(2, "v2"), sequencer=seq("06"))
    created_other, _ = await ledger.register_file(record(3), sequencer=seq("01"))

    assert (created_later, created_other) == (True, True)


async def test_ledger_register_sequencer_not_in_order_form_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="sequencer_order"):
        await ledger.register_file(version(1, "v1"), sequencer="0a1b")
    assert await ledger.get(version(1, "v1").file_id) is None


def test_sequencer_order_pads_and_refuses_what_is_not_hex() -> None:
    assert seq("FF") < seq("0100") < seq("0101")
    assert seq("0064d3901d00059242") == seq("64D3901D00059242")
    assert [sequencer_order(s) for s in (None, "", "xyz", "1" * 33)] == [None] * 4


async def test_ledger_get_roundtrips_every_field(ledger: Ledger) -> None:
    original = record(error_code=None, rows_in=None)
    await ledger.register_file(original)

    assert await ledger.get(original.file_id) == original
    assert await ledger.get("f" * 32) is None


async def test_ledger_transitions_forward_to_completed_with_history(ledger: Ledger) -> None:
    # GIVEN a registered file
    file_id = record().file_id
    await ledger.register_file(record())

    # WHEN it moves through every stage
    await ledger.transition(file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING})
    await ledger.transition(
        file_id, FileStatus.TRANSFORMING, expected={FileStatus.VALIDATING}, rows_in=10
    )
    await ledger.transition(file_id, FileStatus.WRITING, expected={FileStatus.TRANSFORMING})
    done = await ledger.transition(
        file_id,
        FileStatus.COMPLETED,
        expected={FileStatus.WRITING},
        rows_out=8,
        rows_quarantined=2,
    )

    # THEN the record is terminal, versioned, counted, and the history tells the story in order
    assert (done.status, done.version, done.rows_in, done.rows_out) == (
        FileStatus.COMPLETED,
        4,
        10,
        8,
    )
    assert done.updated_at > DAY
    assert await ledger.get(file_id) == done
    steps = await ledger.history(file_id)
    assert [(s["from_status"], s["to_status"]) for s in steps] == [
        (None, "PENDING"),
        ("PENDING", "VALIDATING"),
        ("VALIDATING", "TRANSFORMING"),
        ("TRANSFORMING", "WRITING"),
        ("WRITING", "COMPLETED"),
    ]
    assert [s["version"] for s in steps] == [0, 1, 2, 3, 4]
    assert steps[2]["rows_in"] == 10
    assert [s["at"] for s in steps] == sorted(s["at"] for s in steps)


async def test_ledger_backward_or_terminal_exit_is_illegal(ledger: Ledger) -> None:
    file_id = record().file_id
    await ledger.register_file(record())
    await ledger.transition(file_id, FileStatus.FAILED, expected={FileStatus.PENDING})

    with pytest.raises(IllegalTransitionError):
        await ledger.transition(file_id, FileStatus.PENDING, expected={FileStatus.VALIDATING})
    with pytest.raises(IllegalTransitionError):
        await ledger.transition(file_id, FileStatus.VALIDATING, expected={FileStatus.FAILED})


async def test_ledger_transition_rejects_identity_fields(ledger: Ledger) -> None:
    await ledger.register_file(record())

    with pytest.raises(ValueError, match="bucket"):
        await ledger.transition(
            record().file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING}, bucket="other"
        )
    stored = await ledger.get(record().file_id)
    assert stored is not None
    assert (stored.status, stored.bucket) == (FileStatus.PENDING, "sluice-raw")


async def test_ledger_duplicate_delivery_gets_stale_state_with_current(ledger: Ledger) -> None:
    file_id = record().file_id
    await ledger.register_file(record())
    await ledger.transition(file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING})

    with pytest.raises(StaleStateError) as caught:
        await ledger.transition(file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING})

    assert caught.value.current is not None
    assert (caught.value.current.status, caught.value.current.version) == (
        FileStatus.VALIDATING,
        1,
    )
    assert len(await ledger.history(file_id)) == 2


async def test_ledger_missing_file_transition_is_stale(ledger: Ledger) -> None:
    with pytest.raises(StaleStateError) as caught:
        await ledger.transition("e" * 32, FileStatus.VALIDATING, expected={FileStatus.PENDING})

    assert caught.value.current is None
    assert caught.value.file_id == "e" * 32


async def test_ledger_concurrent_transitions_exactly_one_wins(ledger: Ledger) -> None:
    file_id = record().file_id
    await ledger.register_file(record())

    results = await asyncio.gather(
        *(
            ledger.transition(file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING})
            for _ in range(4)
        ),
        return_exceptions=True,
    )

    winners = [r for r in results if isinstance(r, FileRecord)]
    losers = [r for r in results if isinstance(r, StaleStateError)]
    assert (len(winners), len(losers)) == (1, 3)
    current = await ledger.get(file_id)
    assert current is not None
    assert current.version == 1
    assert [s["to_status"] for s in await ledger.history(file_id)] == ["PENDING", "VALIDATING"]


async def test_ledger_list_by_status_lists_current_status_per_day(ledger: Ledger) -> None:
    # GIVEN three files, two of which moved on to VALIDATING
    for n in (1, 2, 3):
        await ledger.register_file(record(n))
    for n in (1, 3):
        await ledger.transition(
            record(n).file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING}
        )

    # WHEN listing by status and day
    validating = await ledger.list_by_status(FileStatus.VALIDATING, DAY.date())
    pending = await ledger.list_by_status(FileStatus.PENDING, DAY.date())
    other_day = await ledger.list_by_status(FileStatus.VALIDATING, date(2024, 1, 16))

    # THEN each file appears under its current status only, oldest update first
    assert [r.file_id for r in validating] == [record(1).file_id, record(3).file_id]
    assert [r.file_id for r in pending] == [record(2).file_id]
    assert other_day == []


async def test_ledger_runs_roundtrip(ledger: Ledger) -> None:
    run = RunRecord(
        run_id="backfill-2024-01",
        execution_arn="arn:aws:states:us-east-1:000000000000:execution:batch:backfill-2024-01",
        prefix="orders/2024/01/",
        files=3,
        created_at=DAY,
        updated_at=DAY,
        details={"tolerated_failure_percentage": 2.5, "partitions": [1, 2]},
    )

    await ledger.put_run(run)

    assert await ledger.get_run(run.run_id) == run
    assert await ledger.get_run("nope") is None


async def test_ledger_put_run_replacing_a_stale_read_raises_and_keeps_the_winner(
    ledger: Ledger,
) -> None:
    # GIVEN a run that two writers read at the same time
    read = RunRecord(run_id="run-race", created_at=DAY, updated_at=DAY)
    await ledger.put_run(read)
    first = read.model_copy(update={"details": {"n": 1}, "updated_at": DAY + timedelta(seconds=1)})
    second = read.model_copy(update={"details": {"n": 2}, "updated_at": DAY + timedelta(seconds=2)})
    # WHEN both write conditionally on what they read
    await ledger.put_run(first, replaces=read)
    with pytest.raises(StaleRunError):
        await ledger.put_run(second, replaces=read)
    # THEN the first write stands; a write replacing it succeeds
    assert await ledger.get_run("run-race") == first
    await ledger.put_run(second, replaces=first)
    assert await ledger.get_run("run-race") == second


async def test_ledger_put_run_replacing_a_missing_run_raises(ledger: Ledger) -> None:
    ghost = RunRecord(run_id="run-ghost", created_at=DAY, updated_at=DAY)
    with pytest.raises(StaleRunError):
        await ledger.put_run(ghost, replaces=ghost)
    assert await ledger.get_run("run-ghost") is None


async def test_ledger_transition_on_known_record_builds_on_it(ledger: Ledger) -> None:
    _, registered = await ledger.register_file(record())

    claimed = await ledger.transition(
        registered.file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING}, current=registered
    )
    counted = await ledger.transition(
        registered.file_id,
        FileStatus.VALIDATING,
        expected={FileStatus.VALIDATING},
        current=claimed,
        rows_in=20,
    )

    stored = await ledger.get(registered.file_id)
    assert stored == counted
    assert (stored.status, stored.version, stored.rows_in) == (FileStatus.VALIDATING, 2, 20)
    assert [s["to_status"] for s in await ledger.history(registered.file_id)] == [
        "PENDING",
        "VALIDATING",
        "VALIDATING",
    ]


async def test_ledger_transition_on_stale_known_record_builds_on_the_stored_one(
    ledger: Ledger,
) -> None:
    _, registered = await ledger.register_file(record())
    file_id = registered.file_id
    await ledger.transition(file_id, FileStatus.PENDING, expected={FileStatus.PENDING}, rows_in=5)

    moved = await ledger.transition(
        file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING}, current=registered
    )

    assert (moved.version, moved.rows_in) == (2, 5)
    assert await ledger.get(file_id) == moved


async def test_ledger_transition_known_record_in_other_status_is_not_trusted_to_refuse(
    ledger: Ledger,
) -> None:
    _, registered = await ledger.register_file(record())
    elsewhere = registered.model_copy(update={"status": FileStatus.COMPLETED})

    moved = await ledger.transition(
        registered.file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING}, current=elsewhere
    )

    assert moved.status is FileStatus.VALIDATING


async def test_ledger_transition_known_record_of_another_file_raises(ledger: Ledger) -> None:
    _, registered = await ledger.register_file(record())

    with pytest.raises(ValueError, match="the record given is of file"):
        await ledger.transition(
            record(2).file_id,
            FileStatus.VALIDATING,
            expected={FileStatus.PENDING},
            current=registered,
        )


async def test_ledger_refused_event_is_a_history_step_and_leaves_the_record_alone(
    ledger: Ledger,
) -> None:
    # GIVEN a file being validated
    file_id = record().file_id
    await ledger.register_file(record())
    validating = await ledger.transition(
        file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING}
    )
    # WHEN an event about it is refused
    await ledger.record_refusal(
        validating,
        event_type="sluice.file.validated.v1",
        event_id="e-1",
        code="event_ledger_mismatch",
        reason="staged_prefix: event 's3://a/', ledger 's3://b/'",
    )
    # THEN the history keeps the attempt, where the file was, and the record did not move: the
    # next transition still wins its version lock
    steps = await ledger.history(file_id)
    assert [s["to_status"] for s in steps] == ["PENDING", "VALIDATING", "REFUSED"]
    refused = steps[-1]
    assert refused["from_status"] == "VALIDATING"
    assert refused["version"] == validating.version
    assert (refused["event_type"], refused["event_id"], refused["error_code"]) == (
        "sluice.file.validated.v1",
        "e-1",
        "event_ledger_mismatch",
    )
    assert await ledger.get(file_id) == validating
    moved = await ledger.transition(
        file_id, FileStatus.TRANSFORMING, expected={FileStatus.VALIDATING}, current=validating
    )
    assert moved.version == validating.version + 1


async def test_ledger_step_stamped_after_the_step_before_when_the_clock_is_behind(
    ledger: Ledger,
) -> None:
    # GIVEN a file registered by a worker whose clock ran an hour ahead of this one's
    ahead = DAY + timedelta(hours=1)
    await ledger.register_file(record(created_at=ahead, updated_at=ahead))
    file_id = record().file_id
    # WHEN this worker (its clock behind) moves it twice
    first = await ledger.transition(file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING})
    second = await ledger.transition(
        file_id, FileStatus.VALIDATING, expected={FileStatus.VALIDATING}
    )
    # THEN each step is stamped after the one before it: time order is version order
    assert ahead < first.updated_at < second.updated_at
    steps = await ledger.history(file_id)
    assert [s["version"] for s in steps] == [0, 1, 2]
    assert [s["at"] for s in steps] == sorted(s["at"] for s in steps)


async def test_ledger_transition_assumed_claims_the_exact_record_without_a_read(
    ledger: Ledger,
) -> None:
    # GIVEN a file whose record a fact carried exactly (as its producer left it)
    _, registered = await ledger.register_file(record())

    # WHEN the next stage claims it on the condition that the stored record is that one
    claimed = await ledger.transition_assumed(registered, FileStatus.VALIDATING, rows_in=10)

    # THEN the claim is the stored record, one version on, with the history step
    assert claimed is not None
    assert (claimed.status, claimed.version, claimed.rows_in) == (FileStatus.VALIDATING, 1, 10)
    assert await ledger.get(registered.file_id) == claimed
    steps = await ledger.history(registered.file_id)
    assert [(s["from_status"], s["to_status"], s["version"]) for s in steps] == [
        (None, "PENDING", 0),
        ("PENDING", "VALIDATING", 1),
    ]


@pytest.mark.parametrize(
    "differs",
    [
        {"key": "orders/spoofed.csv"},
        {"bucket": "other-raw"},
        {"dataset_version": 2},
        {"size_bytes": 124},
        {"rows_in": 7},
        {"etag": "0" * 32},
        {"version": 1},
    ],
    ids=lambda differs: next(iter(differs)),
)
async def test_ledger_transition_assumed_writes_nothing_when_any_field_differs(
    ledger: Ledger, differs: dict[str, object]
) -> None:
    # GIVEN a registered file and a fact whose record differs from it in one field: a spoofed
    # identity, a count, or a version the file never had (status and version alone would pass)
    _, stored = await ledger.register_file(record())
    assumed = stored.model_copy(update=differs)

    # WHEN a stage claims on the assumption
    claimed = await ledger.transition_assumed(assumed, FileStatus.VALIDATING)

    # THEN nothing is written: the stored record and its history are as they were
    assert claimed is None
    assert await ledger.get(stored.file_id) == stored
    assert len(await ledger.history(stored.file_id)) == 1


async def test_ledger_transition_assumed_of_a_stale_record_loses_to_the_claim_before(
    ledger: Ledger,
) -> None:
    # GIVEN two deliveries of one fact; the first has claimed the file
    _, registered = await ledger.register_file(record())
    first = await ledger.transition_assumed(registered, FileStatus.VALIDATING)

    # WHEN the second claims on the same (now stale) record
    second = await ledger.transition_assumed(registered, FileStatus.VALIDATING)

    # THEN it writes nothing (its caller reads the record and decides as without the fact)
    assert first is not None
    assert second is None
    assert await ledger.get(registered.file_id) == first


async def test_ledger_transition_assumed_missing_file_writes_nothing(ledger: Ledger) -> None:
    assert await ledger.transition_assumed(record(), FileStatus.VALIDATING) is None
    assert await ledger.get(record().file_id) is None
