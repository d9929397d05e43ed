"""`sluice local run` bookkeeping: ledger items → outcome, reconciliation, summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.local.run import (
    FileRun,
    expected_outcome,
    percentile,
    reconciles,
    sample_files,
    summary_table,
    update_from_item,
)


def _item(status: str, rows: tuple[int, int, int] | None = None) -> dict[str, dict[str, str]]:
    item = {"status": {"S": status}, "updated_at": {"S": "2026-01-01T00:00:10+00:00"}}
    if rows is not None:
        for name, value in zip(("rows_in", "rows_out", "rows_quarantined"), rows, strict=True):
            item[name] = {"N": str(value)}
    return item


def _run(**expected: object) -> FileRun:
    run = FileRun(Path("a.csv"), "orders", "orders/a.csv", expected=dict(expected))
    run.uploaded_at = 1767225600.0  # 2026-01-01T00:00:00Z
    return run


def test_update_from_item_terminal_sets_counts_and_latency_from_ledger() -> None:
    run = _run()
    update_from_item(run, _item("COMPLETED", (10, 8, 2)), now=1767225700.0)
    assert (run.status, run.rows_in, run.rows_out, run.rows_quarantined) == ("COMPLETED", 10, 8, 2)
    assert run.latency_s == pytest.approx(10.0)
    assert run.problems() == []


def test_update_from_item_non_terminal_leaves_latency_unset() -> None:
    run = _run()
    update_from_item(run, _item("VALIDATING"), now=0.0)
    assert run.latency_s is None
    assert not run.terminal


def test_problems_flags_unreconciled_counts() -> None:
    run = _run()
    update_from_item(run, _item("COMPLETED", (10, 8, 1)), now=0.0)
    assert run.problems() == ["rows do not reconcile: 10 != 8 + 1"]


def test_problems_flags_status_other_than_completed() -> None:
    run = _run()
    update_from_item(run, _item("FAILED"), now=0.0)
    assert run.problems() == ["status FAILED, expected COMPLETED"]


def test_problems_accepts_expected_quarantine_from_truth() -> None:
    run = _run(status="QUARANTINED", rows_in=5)
    update_from_item(run, _item("QUARANTINED", (5, 0, 5)), now=0.0)
    assert run.problems() == []


def test_problems_compares_truth_counts() -> None:
    run = _run(rows_in=11)
    update_from_item(run, _item("COMPLETED", (10, 8, 2)), now=0.0)
    assert run.problems() == ["rows_in 10, expected 11"]


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [([], 50, None), ([3.0], 95, 3.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0), ([1.0, 2.0, 9.0], 95, 9.0)],
)
def test_percentile_nearest_rank(values: list[float], pct: float, expected: float | None) -> None:
    assert percentile(values, pct) == expected


def test_reconciles_needs_all_three_counts() -> None:
    assert reconciles(3, 2, 1)
    assert not reconciles(3, 2, None)
    assert not reconciles(3, 2, 0)


def test_sample_files_skips_truth_and_keys_by_dataset(tmp_path: Path) -> None:
    (tmp_path / "orders" / "2024").mkdir(parents=True)
    (tmp_path / "orders" / "2024" / "a.csv").write_text("x")
    (tmp_path / "orders" / "2024" / "a.csv.truth.json").write_text(json.dumps({"rows_total": 1}))
    (tmp_path / "README.md").write_text("not a dataset")
    found = sample_files(tmp_path)
    assert [(d, k) for _, d, k in found] == [("orders", "orders/2024/a.csv")]
    assert expected_outcome(found[0][0]) == {"rows_in": 1}


def test_expected_outcome_derives_counts_from_generator_truth(tmp_path: Path) -> None:
    sample = tmp_path / "a.csv"
    truth = {"rows_total": 200, "expected_good_keys": 178, "rows_bad": {"x": 9, "y": 9}}
    sample.with_name("a.csv.truth.json").write_text(json.dumps({**truth, "rows_duplicate": 4}))
    assert expected_outcome(sample) == {"rows_in": 200, "rows_out": 178, "rows_quarantined": 22}


def test_summary_table_has_rows_totals_and_percentiles() -> None:
    done = _run()
    update_from_item(done, _item("COMPLETED", (10, 8, 2)), now=0.0)
    text = summary_table([done])
    assert "orders/a.csv" in text
    assert "1 completed" in text
    assert "p50 10.00 s, p95 10.00 s" in text
