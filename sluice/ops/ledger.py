"""Read-only ledger queries for the CLI (synchronous boto3; the services use the aioboto3
`sluice_shared.aws.dynamodb.DynamoDbLedger`, whose item layout this module reads)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from sluice.ops.window import days_between
from sluice_shared.aws.dynamodb import (
    GSI1,
    META,
    PK,
    SK,
    file_pk,
    history_query,
    history_step,
    iso,
    plain,
    status_day_key,
)
from sluice_shared.ports import FileRecord, FileStatus, RunRecord

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator, Mapping

    from mypy_boto3_dynamodb.client import DynamoDBClient


@dataclass(frozen=True, slots=True)
class FileDetail:
    """A file's record, its history steps (oldest first) and the raw META item, which may hold
    attributes the `FileRecord` model does not name (e.g. an execution ARN)."""

    record: FileRecord
    history: list[dict[str, Any]]
    raw: dict[str, Any]


class LedgerReader:
    """Queries over the ledger table.

    Args:
        client: a boto3 DynamoDB client.
        table: the ledger table name.
    """

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def _pages(self, operation: str, request: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        paginator: Any = self._client.get_paginator(operation)  # type: ignore[call-overload]
        for page in paginator.paginate(TableName=self._table, **request):
            for item in page.get("Items", []):
                yield plain(item)

    def file(self, file_id: str) -> FileDetail | None:
        """The file's record with its history, or None when the ledger does not know it."""
        response = self._client.get_item(
            TableName=self._table,
            Key={PK: {"S": file_pk(file_id)}, SK: {"S": META}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            return None
        raw = plain(item)
        # Operators see what happened, not the table's housekeeping (`ttl`).
        steps = [
            history_step(step, drop=(PK, SK, "ttl"))
            for step in self._pages("query", history_query(file_id))
        ]
        return FileDetail(record=FileRecord.model_validate(raw), history=steps, raw=raw)

    def files(
        self,
        *,
        since: datetime,
        until: datetime,
        statuses: Collection[FileStatus] | None = None,
        dataset: str | None = None,
    ) -> list[FileRecord]:
        """Files whose last update falls in `[since, until]`, newest first.

        Queries the status/day index once per (status, UTC day) in the window: with no
        `statuses`, every status. `dataset` filters on the server side. Eventually consistent.
        """
        chosen = list(FileStatus) if not statuses else list(statuses)
        found: list[FileRecord] = []
        for day in days_between(since, until):
            for status in chosen:
                request: dict[str, Any] = {
                    "IndexName": GSI1,
                    "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk BETWEEN :lo AND :hi",
                    "ExpressionAttributeValues": {
                        ":pk": {"S": status_day_key(status, day)},
                        ":lo": {"S": iso(since)},
                        ":hi": {"S": iso(until)},
                    },
                }
                if dataset is not None:
                    request["FilterExpression"] = "dataset = :dataset"
                    request["ExpressionAttributeValues"][":dataset"] = {"S": dataset}
                found.extend(FileRecord.model_validate(i) for i in self._pages("query", request))
        found.sort(key=lambda record: record.updated_at, reverse=True)
        return found

    def run(self, run_id: str) -> RunRecord | None:
        """The batch run `run_id`, or None."""
        response = self._client.get_item(
            TableName=self._table,
            Key={PK: {"S": f"RUN#{run_id}"}, SK: {"S": META}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _run_from(plain(item)) if item else None

    def runs(self, *, since: datetime) -> list[RunRecord]:
        """Batch runs created at or after `since`, newest first.

        Runs have no index of their own (a handful a day), so this scans the table for
        `RUN#` items with a server-side filter: it reads every item once; keep it for operators.
        """
        request = {
            "FilterExpression": "begins_with(#pk, :run) AND #sk = :meta AND created_at >= :since",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {
                ":run": {"S": "RUN#"},
                ":meta": {"S": META},
                ":since": {"S": iso(since)},
            },
        }
        runs = [_run_from(item) for item in self._pages("scan", request)]
        runs.sort(key=lambda run: run.created_at, reverse=True)
        return runs


def _run_from(values: dict[str, Any]) -> RunRecord:
    details = values.get("details")
    if isinstance(details, str):
        values["details"] = orjson.loads(details) if details else {}
    return RunRecord.model_validate(values)


def now() -> datetime:
    """The current time in UTC (one place, so commands agree on "now")."""
    return datetime.now(UTC)
