"""The soak: many files through every fault at once. `make soak` runs all ten seeds; the PR tier
(`make test`) runs the first (`pr_tier`), so a change that breaks the soak fails CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice_shared.faults import DeliveryFaults
from tests.reliability.scenario import Rig, assert_reconciled

PR_TIER_SEEDS = (1,)


@pytest.mark.soak
@pytest.mark.parametrize(
    "seed",
    [
        pytest.param(seed, marks=[pytest.mark.pr_tier] if seed in PR_TIER_SEEDS else [])
        for seed in range(1, 11)
    ],
)
def test_soak_all_faults_at_once_many_files_reconcile(rig: Rig, tmp_path: Path, seed: int) -> None:
    # GIVEN every delivery duplicated and shuffled, S3 errors and phantom writes, DynamoDB
    # throttling, PutEvents partial failures and a worker killed mid-batch
    rig.delivery = DeliveryFaults(duplicate=True, reorder="shuffle", seed=seed)
    spec = {
        "seed": seed,
        "rules": [
            {"service": "s3", "operation": "*", "kind": "error", "fraction": 0.05},
            {"service": "s3", "operation": "PutObject", "kind": "phantom", "fraction": 0.1},
            {"service": "dynamodb", "operation": "*", "kind": "throttle", "fraction": 0.1},
            {"service": "events", "operation": "PutEvents", "kind": "partial", "fraction": 0.1},
            {"service": "s3", "operation": "PutObject", "kind": "crash", "skip": 7, "times": 1},
        ],
    }
    rig.start(spec)
    keys = [
        *(f"orders/2024/03/{day:02d}/part.csv" for day in range(1, 5)),
        *(f"sensor_readings/2024/03/{day:02d}/part.jsonl" for day in range(1, 3)),
        "orders/2024/03/09/part.csv.gz",
    ]
    truths = {
        key: rig.upload_generated(
            tmp_path, key, rows=3000, seed=seed * 100 + n, gzip=key.endswith(".gz")
        )
        for n, key in enumerate(keys)
    }
    # WHEN the pipeline settles
    rig.settle(len(keys), timeout=120)
    # THEN everything reconciles with the ground truth, and every fault fired
    result = rig.reconcile(truths)
    assert_reconciled(result)
    assert result.output_rows == sum(t.expected_good_keys for t in truths.values())
    assert rig.injector is not None
    assert all(rule["fired"] > 0 for rule in rig.injector.counters()), rig.injector.counters()
    assert rig.crashes == 1
    assert rig.delivery.duplicated > 0
