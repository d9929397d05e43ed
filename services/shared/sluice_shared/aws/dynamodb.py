"""`Ledger` over one DynamoDB table (schema: docs/architecture.md, "Ledger").

Every write that changes a file's state is a transaction of two items: the conditional write of
the `META` item (optimistic lock on `version`) and the `STEP#<ts>#<status>` history item, so the
history can never disagree with the state. A registration from an S3 notification adds a third:
the key's `SEQUENCER` item, so an older version notified late is refused by the same write.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import orjson
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from sluice_shared.aws.errors import ConditionalCheckFailed, translating
from sluice_shared.clock import TICK, not_before
from sluice_shared.ports import (
    REFUSED_STEP,
    FileRecord,
    FileStatus,
    RunRecord,
    StaleRunError,
    StaleStateError,
    SupersededError,
    check_fields,
    check_transition,
    sequencer_order,
    utc_now,
)
from sluice_shared.retry import aws_retry, with_retry

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from tenacity import AsyncRetrying
    from types_aiobotocore_dynamodb.client import DynamoDBClient

PK: Final = "PK"
SK: Final = "SK"
META: Final = "META"
SEQUENCER: Final = "SEQUENCER"
# The position of the `SEQUENCER` item in the registration transaction (after META and STEP).
_SEQUENCER_ITEM: Final = 2
GSI1: Final = "gsi1"
TTL_ATTRIBUTE: Final = "ttl"
DEFAULT_HISTORY_TTL = timedelta(days=90)
# Losing the optimistic lock to a writer that left the status acceptable is retried this often.
MAX_LOCK_RETRIES = 3

LEDGER_TABLE_SPEC: Final[Mapping[str, Any]] = {
    "KeySchema": [
        {"AttributeName": PK, "KeyType": "HASH"},
        {"AttributeName": SK, "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": PK, "AttributeType": "S"},
        {"AttributeName": SK, "AttributeType": "S"},
        {"AttributeName": "gsi1pk", "AttributeType": "S"},
        {"AttributeName": "gsi1sk", "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": GSI1,
            "KeySchema": [
                {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
"""`CreateTable` arguments (without `TableName`) of the ledger; templates are checked against it."""

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def iso(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601 (`2024-01-02T03:04:05.000006Z`): sorts lexicographically."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_pk(file_id: str) -> str:
    """The partition key of a file's items."""
    return f"FILE#{file_id}"


def key_pk(bucket: str, key: str) -> str:
    """The partition key of the item keeping a raw object key's latest registered sequencer."""
    return f"KEY#{bucket}/{key}"


def status_day_key(status: FileStatus, day: date) -> str:
    """The `gsi1pk` of a file in `status` last updated on `day` (UTC)."""
    return f"{status.value}#{day.isoformat()}"


def _to_attrs(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: _SERIALIZER.serialize(value) for name, value in values.items() if value is not None
    }


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (attribute-value form) as plain Python values (Decimal → int/float)."""
    values: dict[str, Any] = {}
    for name, value in item.items():
        decoded = _DESERIALIZER.deserialize(value)
        if isinstance(decoded, Decimal):
            decoded = int(decoded) if decoded == decoded.to_integral_value() else float(decoded)
        values[name] = decoded
    return values


def _record_values(record: FileRecord) -> dict[str, Any]:
    values = record.model_dump(mode="python")
    values["status"] = record.status.value
    values["created_at"] = iso(record.created_at)
    values["updated_at"] = iso(record.updated_at)
    return values


def _meta_item(record: FileRecord) -> dict[str, Any]:
    values = _record_values(record)
    values[PK] = file_pk(record.file_id)
    values[SK] = META
    values["gsi1pk"] = status_day_key(record.status, record.updated_at.astimezone(UTC).date())
    values["gsi1sk"] = values["updated_at"]
    return _to_attrs(values)


def _record_from(item: Mapping[str, Any]) -> FileRecord:
    return FileRecord.model_validate(plain(item))


def history_query(file_id: str) -> dict[str, Any]:
    """`Query` arguments (without the table) for a file's `STEP#` history, oldest first."""
    return {
        "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :step)",
        "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
        "ExpressionAttributeValues": {":pk": {"S": file_pk(file_id)}, ":step": {"S": "STEP#"}},
        "ConsistentRead": True,
    }


def history_step(step: dict[str, Any], *, drop: tuple[str, ...] = (PK, SK)) -> dict[str, Any]:
    """A history item (already `plain`) without its keys; the registration step, which has no
    predecessor, gets `from_status: None`."""
    for key in drop:
        step.pop(key, None)
    step.setdefault("from_status", None)
    return step


def _exact_condition(record: FileRecord, names: dict[str, str], values: dict[str, Any]) -> str:
    """` AND ...` clauses requiring every field of the stored `META` item other than its key,
    status and version to be `record`'s (a field `record` leaves None: absent), adding their
    placeholders to `names` and `values`."""
    clauses = []
    stored = _record_values(record)
    for index, name in enumerate(sorted(set(stored) - {"file_id", "status", "version"})):
        names[f"#f{index}"] = name
        if stored[name] is None:
            clauses.append(f"attribute_not_exists(#f{index})")
        else:
            values[f":f{index}"] = _SERIALIZER.serialize(stored[name])
            clauses.append(f"#f{index} = :f{index}")
    return "".join(f" AND {clause}" for clause in clauses)


class DynamoDbLedger:
    """The DynamoDB implementation of `sluice_shared.ports.Ledger`.

    Args:
        client: an open aioboto3 DynamoDB client.
        table: the ledger table (created with `LEDGER_TABLE_SPEC`).
        clock: the time source (timezone-aware); tests pass a fixed clock.
        history_ttl: how long history items live (the table's TTL attribute is `ttl`).
        retry: builds the retry policy per request (default `aws_retry`).
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        clock: Callable[[], datetime] = utc_now,
        history_ttl: timedelta = DEFAULT_HISTORY_TTL,
        retry: Callable[[], AsyncRetrying] = aws_retry,
    ) -> None:
        self._client = client
        self._table = table
        self._clock = clock
        self._ttl = history_ttl
        self._retry = retry

    # ------------------------------------------------------------------------------------- files

    async def register_file(
        self, record: FileRecord, *, sequencer: str | None = None
    ) -> tuple[bool, FileRecord]:
        """See `Ledger.register_file`. The history gets a step `from_status=None`; with a
        `sequencer`, the key's `SEQUENCER` item is checked and written in the same transaction
        (no request of its own)."""
        step = self._step_item(record, from_status=None, fields={})
        items: list[Any] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _meta_item(record),
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": PK},
                }
            },
            {"Put": {"TableName": self._table, "Item": step}},
        ]
        if sequencer is not None:
            items.append(self._latest_sequencer_put(record, sequencer))

        async def call() -> None:
            with translating():
                await self._client.transact_write_items(TransactItems=items)

        try:
            await with_retry(call, self._retry)
        except ConditionalCheckFailed as failed:
            if _SEQUENCER_ITEM in failed.failed_items:
                raise SupersededError(
                    f"s3://{record.bucket}/{record.key} has a later notification than "
                    f"{sequencer} registered"
                ) from None
            existing = await self.get(record.file_id)
            if existing is None:
                if sequencer is not None and not failed.failed_items:
                    # The endpoint did not say which condition failed, and the file's did not.
                    raise SupersededError(
                        f"s3://{record.bucket}/{record.key} has a later notification registered"
                    ) from None
                # Deleted between the two calls: nothing sane to return.
                raise StaleStateError(
                    f"file {record.file_id} existed and then vanished",
                    file_id=record.file_id,
                    current=None,
                ) from None
            return False, existing
        return True, record

    def _latest_sequencer_put(self, record: FileRecord, sequencer: str) -> dict[str, Any]:
        """The transaction item that keeps the latest S3 sequencer registered for the record's
        key, conditional on no later one being there (an equal one is the same notification
        again, or a retry of this write)."""
        if sequencer_order(sequencer) != sequencer:
            raise ValueError(f"sequencer {sequencer!r} is not in sequencer_order form")
        item = _to_attrs(
            {
                PK: key_pk(record.bucket, record.key),
                SK: SEQUENCER,
                "bucket": record.bucket,
                "key": record.key,
                "sequencer": sequencer,
                "file_id": record.file_id,
                "version_id": record.version_id,
                "updated_at": iso(record.updated_at),
            }
        )
        return {
            "Put": {
                "TableName": self._table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(#pk) OR #seq <= :seq",
                "ExpressionAttributeNames": {"#pk": PK, "#seq": "sequencer"},
                "ExpressionAttributeValues": {":seq": {"S": sequencer}},
            }
        }

    async def transition(
        self,
        file_id: str,
        to: FileStatus,
        *,
        expected: Collection[FileStatus],
        current: FileRecord | None = None,
        **fields: Any,
    ) -> FileRecord:
        """See `Ledger.transition`. A usable `current` saves the GetItem before the write; a
        stale one costs a failed write, then the file is read as without it."""
        check_transition(to, expected)
        check_fields(fields)
        wanted = {FileStatus(s) for s in expected}
        # A known record in another status is not trusted to refuse the move: it may be stale
        # (a replay resets files), so only the stored record decides.
        known = current if current is not None and current.status in wanted else None
        if known is not None and known.file_id != file_id:
            raise ValueError(f"the record given is of file {known.file_id}, not {file_id}")
        for attempt in range(MAX_LOCK_RETRIES + (known is not None)):
            current = known if attempt == 0 and known is not None else await self.get(file_id)
            if current is None:
                raise StaleStateError(
                    f"file {file_id} is not in the ledger", file_id=file_id, current=None
                )
            if current.status not in wanted:
                raise StaleStateError(
                    f"file {file_id} is {current.status}, expected one of "
                    f"{', '.join(sorted(wanted))}",
                    file_id=file_id,
                    current=current,
                )
            updated = FileRecord.model_validate(
                {
                    **current.model_dump(),
                    **fields,
                    "status": to,
                    "version": current.version + 1,
                    # Never before the step it follows, whatever this worker's clock says:
                    # the history's time order is its version order (`sluice_shared.clock`).
                    "updated_at": not_before(self._clock(), current.updated_at + TICK),
                }
            )
            try:
                await self._write_transition(current, updated, wanted, fields)
            except ConditionalCheckFailed:
                continue  # someone else wrote between our read and write: look again
            return updated
        latest = await self.get(file_id)
        raise StaleStateError(
            f"file {file_id} kept changing under transition to {to}",
            file_id=file_id,
            current=latest,
        )

    async def transition_assumed(
        self, assumed: FileRecord, to: FileStatus, **fields: Any
    ) -> FileRecord | None:
        """See `Ledger.transition_assumed`: one conditional write, no read, no retry."""
        check_transition(to, (assumed.status,))
        check_fields(fields)
        updated = FileRecord.model_validate(
            {
                **assumed.model_dump(),
                **fields,
                "status": to,
                "version": assumed.version + 1,
                "updated_at": not_before(self._clock(), assumed.updated_at + TICK),
            }
        )
        try:
            await self._write_transition(assumed, updated, {assumed.status}, fields, exact=True)
        except ConditionalCheckFailed:
            return None
        return updated

    async def _write_transition(
        self,
        current: FileRecord,
        updated: FileRecord,
        wanted: set[FileStatus],
        fields: Mapping[str, Any],
        *,
        exact: bool = False,
    ) -> None:
        """The transaction of a transition: the `META` Put, conditional on the status being in
        `wanted` and the version being `current`'s (with `exact`, also on every other field of
        the stored record being `current`'s: absent where `current` has None), and the history
        step."""
        names = {"#status": "status", "#version": "version"}
        values: dict[str, Any] = {":v": {"N": str(current.version)}}
        placeholders = []
        for index, status in enumerate(sorted(wanted)):
            values[f":s{index}"] = {"S": status.value}
            placeholders.append(f":s{index}")
        condition = f"#status IN ({', '.join(placeholders)}) AND #version = :v"
        if exact:
            condition += _exact_condition(current, names, values)
        step = self._step_item(updated, from_status=current.status, fields=fields)

        async def call() -> None:
            with translating():
                await self._client.transact_write_items(
                    TransactItems=[
                        {
                            # A whole-item Put under the version lock equals an update of the
                            # changed attributes, and clears attributes set back to None.
                            "Put": {
                                "TableName": self._table,
                                "Item": _meta_item(updated),
                                "ConditionExpression": condition,
                                "ExpressionAttributeNames": names,
                                "ExpressionAttributeValues": values,
                            }
                        },
                        {"Put": {"TableName": self._table, "Item": step}},
                    ]
                )

        await with_retry(call, self._retry)

    def _step_item(
        self, record: FileRecord, *, from_status: FileStatus | None, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        at = iso(record.updated_at)
        expires = int((record.updated_at + self._ttl).timestamp())
        values: dict[str, Any] = {
            **{name: value for name, value in fields.items()},
            PK: file_pk(record.file_id),
            SK: f"STEP#{at}#{record.status.value}",
            "at": at,
            "from_status": from_status.value if from_status else None,
            "to_status": record.status.value,
            "version": record.version,
            TTL_ATTRIBUTE: expires,
        }
        return _to_attrs(values)

    async def record_refusal(
        self, record: FileRecord, *, event_type: str, event_id: str, code: str, reason: str
    ) -> None:
        """See `Ledger.record_refusal`: one unconditional put of a `STEP#<ts>#REFUSED` item
        (the `META` item is not touched, so no writer's lock is disturbed), stamped after the
        step the file was in, like every step (`sluice_shared.clock`)."""
        now = not_before(self._clock(), record.updated_at + TICK)
        at = iso(now)
        item = _to_attrs(
            {
                PK: file_pk(record.file_id),
                SK: f"STEP#{at}#{REFUSED_STEP}",
                "at": at,
                "from_status": record.status.value,
                "to_status": REFUSED_STEP,
                "version": record.version,
                "event_type": event_type,
                "event_id": event_id,
                "error_code": code,
                "error": reason,
                TTL_ATTRIBUTE: int((now + self._ttl).timestamp()),
            }
        )

        async def call() -> None:
            with translating():
                await self._client.put_item(TableName=self._table, Item=item)

        await with_retry(call, self._retry)

    async def get(self, file_id: str) -> FileRecord | None:
        """See `Ledger.get`."""

        async def call() -> dict[str, Any] | None:
            with translating():
                response = await self._client.get_item(
                    TableName=self._table,
                    Key={PK: {"S": file_pk(file_id)}, SK: {"S": META}},
                    ConsistentRead=True,
                )
            item = response.get("Item")
            return dict(item) if item else None

        item = await with_retry(call, self._retry)
        return _record_from(item) if item else None

    async def history(self, file_id: str) -> list[dict[str, Any]]:
        """See `Ledger.history`."""
        items = await self._query(history_query(file_id))
        return [history_step(plain(item)) for item in items]

    async def list_by_status(self, status: FileStatus, day: date) -> list[FileRecord]:
        """See `Ledger.list_by_status`."""
        items = await self._query(
            {
                "IndexName": GSI1,
                "KeyConditionExpression": "gsi1pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": status_day_key(status, day)}},
            }
        )
        return [_record_from(item) for item in items]

    async def _query(self, request: Mapping[str, Any]) -> list[dict[str, Any]]:
        items: list[Any] = []
        start: dict[str, Any] | None = None
        while True:
            page_request = {"TableName": self._table, **request}
            if start is not None:
                page_request["ExclusiveStartKey"] = start

            async def call(page_request: dict[str, Any] = page_request) -> dict[str, Any]:
                with translating():
                    return dict(await self._client.query(**page_request))

            page = await with_retry(call, self._retry)
            items.extend(dict(item) for item in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    # -------------------------------------------------------------------------------------- runs

    async def put_run(self, run: RunRecord, *, replaces: RunRecord | None = None) -> None:
        """See `Ledger.put_run`. `details` is stored as a JSON string (DynamoDB has no floats)."""
        values = run.model_dump(mode="python")
        values["created_at"] = iso(run.created_at)
        values["updated_at"] = iso(run.updated_at)
        values["details"] = orjson.dumps(run.details).decode()
        values[PK] = f"RUN#{run.run_id}"
        values[SK] = META
        item = _to_attrs(values)

        condition: dict[str, Any] = {}
        if replaces is not None:
            condition = {
                "ConditionExpression": "#updated = :read",
                "ExpressionAttributeNames": {"#updated": "updated_at"},
                "ExpressionAttributeValues": {":read": {"S": iso(replaces.updated_at)}},
            }

        async def call() -> None:
            with translating():
                await self._client.put_item(TableName=self._table, Item=item, **condition)

        try:
            await with_retry(call, self._retry)
        except ConditionalCheckFailed:
            raise StaleRunError(f"run {run.run_id} changed since it was read") from None

    async def get_run(self, run_id: str) -> RunRecord | None:
        """See `Ledger.get_run`."""

        async def call() -> dict[str, Any] | None:
            with translating():
                response = await self._client.get_item(
                    TableName=self._table,
                    Key={PK: {"S": f"RUN#{run_id}"}, SK: {"S": META}},
                    ConsistentRead=True,
                )
            item = response.get("Item")
            return dict(item) if item else None

        item = await with_retry(call, self._retry)
        if item is None:
            return None
        values = plain(item)
        values["details"] = orjson.loads(values.get("details", "{}"))
        return RunRecord.model_validate(values)


async def create_ledger_table(client: DynamoDBClient, table: str) -> None:
    """Create the ledger table from `LEDGER_TABLE_SPEC`, wait for it, and switch on TTL.

    Used by tests and the local runtime; on AWS the platform template creates the same table.
    """
    with translating():
        await client.create_table(TableName=table, **LEDGER_TABLE_SPEC)
        waiter = client.get_waiter("table_exists")
        await waiter.wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        await client.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
