"""DynamoDbLedger against a moto server: idempotent registration, forward-only transitions,
optimistic locking, history, the status/day index, runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from types_aiobotocore_dynamodb.client import DynamoDBClient

from sluice_shared.aws.dynamodb import (
    LEDGER_TABLE_SPEC,
    DynamoDbLedger,
    create_ledger_table,
    iso,
)
from sluice_shared.ports import (
    FileRecord,
    FileStatus,
    IllegalTransitionError,
    RunRecord,
    StaleRunError,
    StaleStateError,
)

TABLE = "sluice-ledger"
DAY = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)


class Clock:
    """Advances one second per call, from `start`."""

    def __init__(self, start: datetime = DAY) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def record(n: int = 1, **extra: Any) -> FileRecord:
    values: dict[str, Any] = {
        "file_id": f"{n:032x}",
        "dataset": "orders",
        "dataset_version": 1,
        "bucket": "sluice-raw",
        "key": f"orders/f{n}.csv",
        "etag": "abc",
        "size_bytes": 123,
        "correlation_id": f"{n:032x}",
        "created_at": DAY,
        "updated_at": DAY,
    }
    return FileRecord.model_validate({**values, **extra})


@pytest.fixture
async def ledger(dynamodb: DynamoDBClient) -> DynamoDbLedger:
    await create_ledger_table(dynamodb, TABLE)
    return DynamoDbLedger(dynamodb, TABLE, clock=Clock())


async def test_ledger_table_matches_the_spec(dynamodb: DynamoDBClient, ledger: Any) -> None:
    table = (await dynamodb.describe_table(TableName=TABLE))["Table"]
    ttl = await dynamodb.describe_time_to_live(TableName=TABLE)

    assert table["KeySchema"] == LEDGER_TABLE_SPEC["KeySchema"]
    assert [i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])] == ["gsi1"]
    assert ttl["TimeToLiveDescription"].get("AttributeName") == "ttl"


async def test_ledger_register_twice_second_returns_existing(ledger: DynamoDbLedger) -> None:
    created, first = await ledger.register_file(record())
    again, existing = await ledger.register_file(record(size_bytes=999))

    assert (created, again) == (True, False)
    assert existing == first
    assert existing.size_bytes == 123


async def test_ledger_get_roundtrips_every_field(ledger: DynamoDbLedger) -> None:
    original = record(error_code=None, rows_in=None)
    await ledger.register_file(original)

    assert await ledger.get(original.file_id) == original
    assert await ledger.get("f" * 32) is None


async def test_ledger_transitions_forward_to_completed_with_history(
    ledger: DynamoDbLedger,
) -> None:
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
    assert all(s["ttl"] > int(DAY.timestamp()) for s in steps)


async def test_ledger_backward_or_terminal_exit_is_illegal(ledger: DynamoDbLedger) -> None:
    file_id = record().file_id
    await ledger.register_file(record())
    await ledger.transition(file_id, FileStatus.FAILED, expected={FileStatus.PENDING})

    with pytest.raises(IllegalTransitionError):
        await ledger.transition(file_id, FileStatus.PENDING, expected={FileStatus.VALIDATING})
    with pytest.raises(IllegalTransitionError):
        await ledger.transition(file_id, FileStatus.VALIDATING, expected={FileStatus.FAILED})


async def test_ledger_duplicate_delivery_gets_stale_state_with_current(
    ledger: DynamoDbLedger,
) -> None:
    file_id = record().file_id
    await ledger.register_file(record())
    await ledger.transition(file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING})

    with pytest.raises(StaleStateError) as caught:
        await ledger.transition(file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING})

    assert caught.value.current is not None
    assert caught.value.current.status == FileStatus.VALIDATING
    assert len(await ledger.history(file_id)) == 2


async def test_ledger_missing_file_transition_is_stale(ledger: DynamoDbLedger) -> None:
    with pytest.raises(StaleStateError) as caught:
        await ledger.transition("e" * 32, FileStatus.VALIDATING, expected={FileStatus.PENDING})

    assert caught.value.current is None


async def test_ledger_concurrent_transitions_exactly_one_wins(ledger: DynamoDbLedger) -> None:
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


def competing_write(
    dynamodb: DynamoDBClient, file_id: str, status: FileStatus
) -> Callable[..., Any]:
    """A `before-call` hook that, once, lets another writer move the record first (between the
    adapter's read and its conditional write)."""
    fired = False

    async def hook(**_: Any) -> None:
        nonlocal fired
        if fired:
            return
        fired = True
        await dynamodb.update_item(
            TableName=TABLE,
            Key={"PK": {"S": f"FILE#{file_id}"}, "SK": {"S": "META"}},
            UpdateExpression="SET #s = :s, #v = #v + :one",
            ExpressionAttributeNames={"#s": "status", "#v": "version"},
            ExpressionAttributeValues={":s": {"S": status.value}, ":one": {"N": "1"}},
        )

    return hook


async def test_ledger_stale_writer_loses_to_a_competing_transition(
    dynamodb: DynamoDBClient, session: Any
) -> None:
    # GIVEN two clients: the ledger's, and a competitor that writes just before the ledger does
    await create_ledger_table(dynamodb, TABLE)
    file_id = record().file_id
    async with session.client("dynamodb") as ledger_client:
        ledger = DynamoDbLedger(ledger_client, TABLE, clock=Clock())
        await ledger.register_file(record())
        ledger_client.meta.events.register(
            "before-call.dynamodb.TransactWriteItems",
            competing_write(dynamodb, file_id, FileStatus.VALIDATING),
        )

        # WHEN the ledger tries PENDING -> VALIDATING on the version it read
        with pytest.raises(StaleStateError) as caught:
            await ledger.transition(file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING})

    # THEN its conditional write lost, and it reports the competitor's state
    assert caught.value.current is not None
    assert (caught.value.current.status, caught.value.current.version) == (
        FileStatus.VALIDATING,
        1,
    )


async def test_ledger_lock_lost_to_same_status_write_retries_and_wins(
    dynamodb: DynamoDBClient, session: Any
) -> None:
    await create_ledger_table(dynamodb, TABLE)
    file_id = record().file_id
    async with session.client("dynamodb") as ledger_client:
        ledger = DynamoDbLedger(ledger_client, TABLE, clock=Clock())
        await ledger.register_file(record())
        ledger_client.meta.events.register(
            "before-call.dynamodb.TransactWriteItems",
            competing_write(dynamodb, file_id, FileStatus.PENDING),
        )

        moved = await ledger.transition(
            file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING}
        )

    # The competitor bumped the version to 1 but left PENDING: the retry builds on version 1.
    assert (moved.status, moved.version) == (FileStatus.VALIDATING, 2)


async def test_ledger_list_by_status_uses_the_day_index(ledger: DynamoDbLedger) -> None:
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


async def test_ledger_runs_roundtrip(ledger: DynamoDbLedger) -> None:
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


def test_iso_is_fixed_width_and_sortable() -> None:
    early = iso(datetime(2024, 1, 1, tzinfo=UTC))
    late = iso(datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC))

    assert early == "2024-01-01T00:00:00.000000Z"
    assert len(early) == len(late)
    assert early < late


async def test_ledger_put_run_replacing_a_stale_read_raises_and_keeps_the_winner(
    ledger: DynamoDbLedger,
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


async def test_ledger_put_run_replacing_a_missing_run_raises(ledger: DynamoDbLedger) -> None:
    ghost = RunRecord(run_id="run-ghost", created_at=DAY, updated_at=DAY)
    with pytest.raises(StaleRunError):
        await ledger.put_run(ghost, replaces=ghost)
    assert await ledger.get_run("run-ghost") is None


def counting(client: Any, operation: str) -> list[int]:
    """Count `operation` calls the client makes (a one-element list, bumped per call)."""
    calls = [0]

    def hook(**_: Any) -> None:
        calls[0] += 1

    client.meta.events.register(f"before-call.dynamodb.{operation}", hook)
    return calls


async def test_ledger_transition_on_known_record_skips_the_read(
    dynamodb: DynamoDBClient, session: Any
) -> None:
    await create_ledger_table(dynamodb, TABLE)
    async with session.client("dynamodb") as client:
        ledger = DynamoDbLedger(client, TABLE, clock=Clock())
        _, registered = await ledger.register_file(record())
        reads = counting(client, "GetItem")

        claimed = await ledger.transition(
            registered.file_id,
            FileStatus.VALIDATING,
            expected={FileStatus.PENDING},
            current=registered,
        )
        counted = await ledger.transition(
            registered.file_id,
            FileStatus.VALIDATING,
            expected={FileStatus.VALIDATING},
            current=claimed,
            rows_in=20,
        )

        assert reads[0] == 0
        stored = await ledger.get(registered.file_id)
    assert stored == counted
    assert (stored.status, stored.version, stored.rows_in) == (FileStatus.VALIDATING, 2, 20)
    assert [s["to_status"] for s in await ledger.history(registered.file_id)] == [
        "PENDING",
        "VALIDATING",
        "VALIDATING",
    ]


async def test_ledger_transition_on_stale_known_record_reads_and_builds_on_the_stored_one(
    ledger: DynamoDbLedger,
) -> None:
    _, registered = await ledger.register_file(record())
    file_id = registered.file_id
    await ledger.transition(file_id, FileStatus.PENDING, expected={FileStatus.PENDING}, rows_in=5)

    moved = await ledger.transition(
        file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING}, current=registered
    )

    assert (moved.version, moved.rows_in) == (2, 5)  # the write lost, the retry read version 1
    assert await ledger.get(file_id) == moved


async def test_ledger_transition_known_record_in_other_status_is_not_trusted_to_refuse(
    ledger: DynamoDbLedger,
) -> None:
    _, registered = await ledger.register_file(record())
    elsewhere = registered.model_copy(update={"status": FileStatus.COMPLETED})

    moved = await ledger.transition(
        registered.file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING}, current=elsewhere
    )

    assert moved.status is FileStatus.VALIDATING


async def test_ledger_transition_known_record_of_another_file_raises(
    ledger: DynamoDbLedger,
) -> None:
    _, registered = await ledger.register_file(record())

    with pytest.raises(ValueError, match="the record given is of file"):
        await ledger.transition(
            record(2).file_id,
            FileStatus.VALIDATING,
            expected={FileStatus.PENDING},
            current=registered,
        )
