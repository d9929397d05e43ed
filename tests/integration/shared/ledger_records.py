"""Builders shared by the ledger tests (the port contract and the DynamoDB-only tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sluice_shared.ports import FileRecord

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
    """A PENDING file record of `orders`; `n` makes the file id unique."""
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
