"""Files for load tests: generated bodies with ground truth, unique raw keys, ledger lookups."""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sluice.generate import DATASETS, generate
from sluice.ops.ledger import plain

__all__ = [
    "DATASETS",
    "EXTENSIONS",
    "TERMINAL",
    "Body",
    "body",
    "ledger_by_key",
    "raw_key",
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
