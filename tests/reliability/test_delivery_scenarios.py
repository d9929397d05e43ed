"""Scenarios about delivery: the baseline, every delivery duplicated, reordered batches."""

from __future__ import annotations

from pathlib import Path

from sluice.generate import GroundTruth
from tests.reliability.scenario import Rig, assert_reconciled

FILES: tuple[tuple[str, dict[str, bool]], ...] = (
    ("orders/2024/03/01/a.csv", {}),
    ("sensor_readings/2024/03/01/b.jsonl", {}),
    ("orders/2024/03/02/c.csv.gz", {"gzip": True}),
)


def upload_all(rig: Rig, tmp_path: Path) -> dict[str, GroundTruth]:
    return {
        key: rig.upload_generated(tmp_path, key, seed=n, **kwargs)
        for n, (key, kwargs) in enumerate(FILES)
    }


def test_scenario_baseline_three_files_reconcile_with_ground_truth(
    rig: Rig, tmp_path: Path
) -> None:
    # GIVEN three generated files (bad rows, duplicates, gzip) and no faults
    rig.start()
    truths = upload_all(rig, tmp_path)
    # WHEN the pipeline settles
    files = rig.settle(len(truths))
    # THEN every file completed and the output reconciles with the ground truth
    assert {f["status"] for f in files.values()} == {"COMPLETED"}
    result = rig.reconcile(truths)
    assert_reconciled(result)
    assert result.output_rows == sum(t.expected_good_keys for t in truths.values())


def test_scenario_every_delivery_duplicated_output_is_identical(
    rig: Rig, tmp_path: Path, moto_endpoint: str
) -> None:
    # GIVEN the baseline output of the three files
    rig.start()
    truths = upload_all(rig, tmp_path)
    rig.settle(len(truths))
    baseline = rig.output_snapshot()
    # WHEN the same files go through again on a fresh stack where every SQS delivery (S3 →
    # ingest, and each bus → stage hop) reaches its handler twice, and batches come reversed
    from sluice_shared.faults import DeliveryFaults
    from tests.e2e.harness import build_stack, close_handlers
    from tests.reliability.scenario import Rig as RigType

    close_handlers()
    import urllib.request

    with urllib.request.urlopen(
        urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"), timeout=10
    ):
        pass
    dup = RigType(build_stack(moto_endpoint), rig.monkeypatch)
    dup.delivery = DeliveryFaults(duplicate=True, reorder="reverse")
    dup.start()
    upload_all(dup, tmp_path)
    dup.settle(len(truths))
    # THEN the duplicates really happened, and the output is byte-for-byte the baseline's
    assert dup.delivery.duplicated >= 4 * len(truths)
    assert dup.output_snapshot() == baseline
    assert_reconciled(dup.reconcile(truths))


def test_scenario_republished_facts_keep_their_event_id_across_duplicate_deliveries(
    rig: Rig, tmp_path: Path
) -> None:
    # GIVEN every SQS delivery made twice (a step that already finished answers a duplicate by
    # publishing its fact again: output re-announces a completed file)
    from sluice_shared.faults import DeliveryFaults

    rig.delivery = DeliveryFaults(duplicate=True)
    rig.start()
    key, kwargs = FILES[0]
    truth = rig.upload_generated(tmp_path, key, seed=0, **kwargs)
    # WHEN the file settles
    rig.settle(1)
    assert_reconciled(rig.reconcile({key: truth}))
    # THEN some fact reached the bus more than once, and every copy of a fact carries the same
    # event id: a subscriber can drop the copies by id
    ids: dict[tuple[str | None, str], set[str]] = {}
    copies: dict[tuple[str | None, str], int] = {}
    for fact in rig.facts():
        ids.setdefault((fact.file_id, fact.type), set()).add(fact.event_id)
        copies[(fact.file_id, fact.type)] = copies.get((fact.file_id, fact.type), 0) + 1
    assert max(copies.values()) > 1, copies
    assert {fact: len(found) for fact, found in ids.items()} == dict.fromkeys(ids, 1)
