"""DynamoDbLedger on a moto server: what only the DynamoDB adapter has (the table, history TTLs,
conditional writes racing another writer, the read a known record saves). The behaviour every
`Ledger` shares is proved for this adapter and the fake alike in `test_port_contract_ledger.py`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from types_aiobotocore_dynamodb.client import DynamoDBClient

from sluice_shared.aws.dynamodb import (
    LEDGER_TABLE_SPEC,
    DynamoDbLedger,
    create_ledger_table,
    iso,
)
from sluice_shared.ports import FileStatus, StaleStateError
from tests.integration.shared.ledger_records import DAY, TABLE, Clock, record


@pytest.fixture
async def ledger(dynamodb: DynamoDBClient) -> DynamoDbLedger:
    await create_ledger_table(dynamodb, TABLE)
    return DynamoDbLedger(dynamodb, TABLE, clock=Clock())


async def test_ledger_history_steps_expire_after_the_retention(ledger: DynamoDbLedger) -> None:
    await ledger.register_file(record())
    await ledger.transition(record().file_id, FileStatus.VALIDATING, expected={FileStatus.PENDING})

    steps = await ledger.history(record().file_id)

    assert len(steps) == 2
    assert all(s["ttl"] > int(DAY.timestamp()) for s in steps)


async def test_ledger_table_matches_the_spec(dynamodb: DynamoDBClient, ledger: Any) -> None:
    table = (await dynamodb.describe_table(TableName=TABLE))["Table"]
    ttl = await dynamodb.describe_time_to_live(TableName=TABLE)

    assert table["KeySchema"] == LEDGER_TABLE_SPEC["KeySchema"]
    assert [i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])] == ["gsi1"]
    assert ttl["TimeToLiveDescription"].get("AttributeName") == "ttl"


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


def test_iso_is_fixed_width_and_sortable() -> None:
    early = iso(datetime(2024, 1, 1, tzinfo=UTC))
    late = iso(datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC))

    assert early == "2024-01-01T00:00:00.000000Z"
    assert len(early) == len(late)
    assert early < late


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
