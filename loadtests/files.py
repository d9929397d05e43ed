"""Files for load tests: generated bodies with ground truth, unique raw keys, ledger lookups."""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtests.report import epoch
from sluice.generate import DATASETS, generate
from sluice_shared.aws.dynamodb import plain
from sluice_shared.keys import file_id_for

__all__ = [
    "DATASETS",
    "EXTENSIONS",
    "TERMINAL",
    "Body",
    "body",
    "file_steps",
    "ledger_by_key",
    "ledger_items",
    "raw_key",
    "uploaded_file_id",
    "wait_files",
    "wait_terminal",
]

EXTENSIONS = {"orders": "csv", "sensor_readings": "jsonl"}
TERMINAL = frozenset({"COMPLETED", "FAILED", "QUARANTINED"})


@dataclass(frozen=True)
class Body:
    """A generated file body and what a correct pipeline must find in it."""

    dataset: str
    data: bytes
    truth: dict[str, Any]


_cache: dict[tuple[str, int, float, int], Body] = {}
_cache_lock = threading.Lock()


def body(dataset: str, rows: int, *, bad_ratio: float = 0.05, seed: int = 0) -> Body:
    """A generated body of `rows` rows of `dataset` (cached: the same arguments, the same bytes).

    Raises:
        ValueError: unknown dataset or inconsistent arguments (see `sluice.generate.generate`).
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    key = (dataset, rows, bad_ratio, seed)
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            return found
        with tempfile.TemporaryDirectory(prefix="sluice-lt-") as tmp:
            path = Path(tmp) / f"body.{EXTENSIONS[dataset]}"
            truth = generate(dataset, path, rows=rows, bad_ratio=bad_ratio, seed=seed)
            made = Body(dataset=dataset, data=path.read_bytes(), truth=asdict(truth))
        _cache[key] = made
        return made


def raw_key(dataset: str, run_id: str, name: str) -> str:
    """`<dataset>/loadtest/<run_id>/<name>.<ext>`: the dataset is the first key segment."""
    return f"{dataset}/loadtest/{run_id}/{name}.{EXTENSIONS[dataset]}"


def ledger_by_key(
    dynamodb: Any, table: str, prefix_contains: str
) -> dict[str, list[dict[str, Any]]]:
    """META items of files whose raw key contains `prefix_contains`, as plain values, by key.

    A key with more than one item was registered twice (e.g. two object versions).
    """
    found: dict[str, list[dict[str, Any]]] = {}
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="SK = :meta AND begins_with(PK, :file) AND contains(#k, :run)",
        ExpressionAttributeNames={"#k": "key"},
        ExpressionAttributeValues={
            ":meta": {"S": "META"},
            ":file": {"S": "FILE#"},
            ":run": {"S": prefix_contains},
        },
        ConsistentRead=True,
    ):
        for item in page.get("Items", []):
            record = plain(item)
            found.setdefault(str(record["key"]), []).append(record)
    return found


def uploaded_file_id(bucket: str, key: str, response: dict[str, Any]) -> str:
    """The ledger's `file_id` of an object, from the PutObject answer (version id, else ETag)."""
    return file_id_for(bucket, key, response.get("VersionId"), response.get("ETag"))


def ledger_items(dynamodb: Any, table: str, file_ids: list[str]) -> dict[str, dict[str, Any]]:
    """META items of `file_ids` (BatchGetItem, consistent), as plain values by file id; ids the
    ledger does not hold (yet) are absent."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(file_ids), 100):
        keys = [
            {"PK": {"S": f"FILE#{i}"}, "SK": {"S": "META"}} for i in file_ids[start : start + 100]
        ]
        request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
        while request:
            response = dynamodb.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table, []):
                record = plain(item)
                found[str(record["file_id"])] = record
            request = response.get("UnprocessedKeys") or {}
    return found


def wait_files(
    dynamodb: Any,
    table: str,
    file_ids: list[str],
    *,
    timeout_s: float,
    poll_s: float = 1.0,
) -> dict[str, dict[str, Any]]:
    """Poll the ledger until every file in `file_ids` is terminal, or `timeout_s`; returns the
    last META item of each file found. Only files not yet terminal are read again, so a poll
    costs what is left, not what the ledger holds."""
    deadline = time.monotonic() + timeout_s
    records: dict[str, dict[str, Any]] = {}
    pending = list(file_ids)
    while True:
        records.update(ledger_items(dynamodb, table, pending))
        pending = [i for i in pending if records.get(i, {}).get("status") not in TERMINAL]
        if not pending or time.monotonic() >= deadline:
            return records
        time.sleep(poll_s)


def wait_terminal(
    dynamodb: Any,
    table: str,
    run_id: str,
    keys: set[str],
    *,
    timeout_s: float,
    poll_s: float = 1.0,
    on_poll: Any = None,
) -> dict[str, list[dict[str, Any]]]:
    """Poll the ledger until every key in `keys` has a terminal META item, or `timeout_s`.

    `on_poll(records)` is called after each scan (progress, sampling). Returns the last scan.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        records = ledger_by_key(dynamodb, table, f"/loadtest/{run_id}/")
        if on_poll is not None:
            on_poll(records)
        done = all(any(r.get("status") in TERMINAL for r in records.get(key, [])) for key in keys)
        if done or time.monotonic() >= deadline:
            return records
        time.sleep(poll_s)


def file_steps(dynamodb: Any, table: str, file_id: str) -> dict[str, float]:
    """Epoch of the first history step per status of one file."""
    found: dict[str, float] = {}
    response = dynamodb.query(
        TableName=table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :step)",
        ExpressionAttributeValues={":pk": {"S": f"FILE#{file_id}"}, ":step": {"S": "STEP#"}},
        ConsistentRead=True,
    )
    for item in response.get("Items", []):
        _, stamp, status = str(item["SK"]["S"]).split("#", 2)
        at = epoch(stamp)
        if at is not None and (status not in found or at < found[status]):
            found[status] = at
    return found
