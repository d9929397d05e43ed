"""Scenarios with injected AWS faults and dying workers; each ends reconciled, and each fault is
shown to have fired."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from sluice_shared.retry import DEFAULT_MAX_DELAY
from tests.reliability.scenario import Rig, assert_reconciled

KEYS = ("orders/2024/03/01/a.csv", "sensor_readings/2024/03/01/b.jsonl")


def run_files(rig: Rig, tmp_path: Path, spec: dict[str, Any] | None) -> dict[str, Any]:
    rig.start(spec)
    truths = {key: rig.upload_generated(tmp_path, key, seed=n) for n, key in enumerate(KEYS)}
    rig.settle(len(truths))
    assert_reconciled(rig.reconcile(truths))
    return truths


def test_scenario_s3_errors_and_phantom_writes_retried_bounded_no_duplicate_rows(
    rig: Rig, tmp_path: Path, fast_retries: list[float]
) -> None:
    # GIVEN 10% of all S3 calls failing before they are applied, and 20% of the writes applied
    # but answered with a 5xx (phantom writes)
    spec = {
        "seed": 11,
        "rules": [
            {"service": "s3", "operation": "*", "kind": "error", "fraction": 0.1},
            {"service": "s3", "operation": "PutObject", "kind": "phantom", "fraction": 0.2},
        ],
    }
    # WHEN two files go through, THEN they reconcile (no duplicate row, nothing lost)
    run_files(rig, tmp_path, spec)
    # AND both kinds of fault fired, each answered by one bounded, jittered retry
    assert rig.injector is not None
    counters = rig.injector.counters()
    assert all(rule["fired"] > 0 for rule in counters), counters
    assert len(fast_retries) >= rig.injector.fired()
    assert max(fast_retries) <= DEFAULT_MAX_DELAY


def test_scenario_dynamodb_throttling_retried_files_complete(
    rig: Rig, tmp_path: Path, fast_retries: list[float]
) -> None:
    spec = {
        "seed": 5,
        "rules": [{"service": "dynamodb", "operation": "*", "kind": "throttle", "fraction": 0.2}],
    }
    run_files(rig, tmp_path, spec)
    assert rig.injector is not None
    assert rig.injector.fired("dynamodb") > 0
    assert len(fast_retries) >= rig.injector.fired("dynamodb")


def test_scenario_eventbridge_partial_failures_resend_and_reconcile(
    rig: Rig, tmp_path: Path
) -> None:
    # GIVEN PutEvents keeping 30% of the entries off the bus (dropped: lost unless resent) and
    # answering 30% of the accepted ones as failed although they were delivered (a resend
    # makes a duplicate event that the next stage must absorb)
    spec = {
        "seed": 3,
        "rules": [
            {"service": "events", "operation": "PutEvents", "kind": "drop", "fraction": 0.3},
            {"service": "events", "operation": "PutEvents", "kind": "partial", "fraction": 0.3},
        ],
    }
    # WHEN two files go through, THEN they reconcile
    run_files(rig, tmp_path, spec)
    # AND both kinds of fault fired, and every dropped fact reached the bus later: resent
    assert rig.injector is not None
    assert all(rule["fired"] > 0 for rule in rig.injector.counters()), rig.injector.counters()
    dropped = {orjson.loads(entry["Detail"])["id"] for entry in rig.injector.dropped}
    assert dropped
    assert dropped <= {fact.event_id for fact in rig.facts()}


@pytest.mark.parametrize(
    ("operation", "skip"),
    [("PutObject", 2), ("TransactWriteItems", 3)],
)
def test_scenario_worker_killed_mid_batch_redelivered_without_duplicates(
    rig: Rig, tmp_path: Path, operation: str, skip: int
) -> None:
    # GIVEN a worker that dies right after its n-th write was applied (a staged object or a
    # ledger transition), once
    service = "s3" if operation == "PutObject" else "dynamodb"
    spec = {
        "seed": 1,
        "rules": [
            {"service": service, "operation": operation, "kind": "crash", "skip": skip, "times": 1}
        ],
    }
    # WHEN the batch is redelivered to a fresh environment, THEN everything reconciles
    run_files(rig, tmp_path, spec)
    assert rig.crashes == 1
    assert rig.injector is not None
    assert rig.injector.fired(service, operation) == 1
