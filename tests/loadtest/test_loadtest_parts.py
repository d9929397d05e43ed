"""The load-test harness's own logic, without a runtime: shapes, custom events, reconciliation
of deliveries, the journal and the report arithmetic (no network, no Locust import)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from contracts.registry import parse_eventbridge_event
from loadtests import report as rpt
from loadtests.events import (
    REGISTRY,
    Delivery,
    EventFactory,
    LoadtestReplayedV1,
    entry_id,
    golden_examples,
    reconcile_events,
    sink_name,
)
from loadtests.journal import Journal, Upload
from loadtests.shapes import spawn_rate_at, users_at


def test_users_at_steady_holds_users_until_duration_then_stops() -> None:
    assert [users_at("steady", t, 4, 10) for t in (0, 5, 9.9)] == [4, 4, 4]
    assert users_at("steady", 10, 4, 10) is None


def test_users_at_ramp_grows_over_first_half_then_holds() -> None:
    wanted = [users_at("ramp", t, 9, 20) for t in (0, 2.5, 5, 7.5, 10, 15)]
    assert wanted == [1, 3, 5, 7, 9, 9]


def test_users_at_spike_peaks_in_middle_fifth_only() -> None:
    wanted = {t: users_at("spike", t, 9, 10) for t in (0, 3.9, 4, 5.9, 6, 9)}
    assert wanted == {0: 3, 3.9: 3, 4: 9, 5.9: 9, 6: 3, 9: 3}
    assert spawn_rate_at("spike", 9, 1.0) == 9.0
    assert spawn_rate_at("ramp", 9, 1.0) == 1.0


def test_users_at_unknown_shape_raises() -> None:
    with pytest.raises(ValueError, match="unknown shape"):
        users_at("zigzag", 0, 1, 1)


def test_event_factory_entries_have_unique_ids_and_parse_with_the_custom_registry() -> None:
    factory = EventFactory("run-1", prefix="u0-")
    entries = factory.entries("bus", 10) + factory.entries("bus", 10)
    ids = [entry_id(e) for e in entries]

    assert len(set(ids)) == 20
    assert all(i.startswith("u0-") for i in ids)
    assert {e["DetailType"] for e in entries} == {LoadtestReplayedV1.TYPE}
    event = {
        "source": entries[0]["Source"],
        "detail-type": entries[0]["DetailType"],
        "detail": json.loads(entries[0]["Detail"]),
    }
    envelope = parse_eventbridge_event(event, registry=REGISTRY)
    assert envelope.correlationid == "run-1"
    assert envelope.data.payload == golden_examples()[0][1]


def test_event_factory_cycles_through_every_golden_example() -> None:
    examples = golden_examples()
    factory = EventFactory("run-2")
    seen = {factory.envelope().data.example for _ in range(len(examples))}
    assert seen == {name for name, _ in examples}
    assert len(examples) >= 7


def test_event_factory_rejects_more_than_ten_entries() -> None:
    with pytest.raises(ValueError, match=r"1\.\.10"):
        EventFactory("run-3").entries("bus", 11)


def test_reconcile_events_separates_lost_duplicated_and_unexpected() -> None:
    delivery = Delivery(counts=Counter({"a": 1, "b": 2, "x": 1}))
    verdict = reconcile_events({"a", "b", "c"}, delivery)

    assert verdict.lost == ["c"]
    assert verdict.duplicated == {"b": 2}
    assert verdict.unexpected == ["x"]
    assert verdict.delivered_unique == 2
    assert not verdict.ok


def test_reconcile_events_all_delivered_once_is_ok() -> None:
    verdict = reconcile_events({"a", "b"}, Delivery(counts=Counter({"a": 1, "b": 1})))
    assert verdict.ok
    assert verdict.delivered_unique == 2


def test_sink_name_fits_an_eventbridge_rule_name() -> None:
    assert len(sink_name("dev", "x" * 100)) == 64
    assert sink_name("dev", "r1") == "sluice-dev-lt-r1"


def test_journal_save_then_load_round_trips(tmp_path: Path) -> None:
    journal = Journal()
    journal.reset("run-9")
    journal.accepted(["e1", "e2"], at=100.0)
    journal.failed(3)
    journal.uploaded(Upload("orders/loadtest/run-9/a.csv", "orders", 10, 99.5, {"rows_total": 5}))
    path = tmp_path / "journal.json"
    journal.save(path)

    loaded = Journal.load(path)
    assert loaded.to_dict() == journal.to_dict()
    assert loaded.events_failed == 3


def test_hop_latencies_measure_between_consecutive_ledger_steps() -> None:
    uploads = [{"key": "k", "started_at": 100.0}]
    steps = {"k": {"PENDING": 101.0, "VALIDATING": 103.0, "TRANSFORMING": 104.5}}
    hops = rpt.hop_latencies(uploads, steps)

    assert hops["ingest"] == [1.0]
    assert hops["to-validate"] == [2.0]
    assert hops["validate"] == [1.5]
    assert hops["transform"] == []


def test_file_latencies_use_completed_items_only() -> None:
    uploads = [{"key": "a", "started_at": 10.0}, {"key": "b", "started_at": 10.0}]
    records = {
        "a": [{"status": "COMPLETED", "updated_at": "1970-01-01T00:00:25+00:00"}],
        "b": [{"status": "VALIDATING", "updated_at": "1970-01-01T00:00:30+00:00"}],
    }
    assert rpt.file_latencies(uploads, records) == [(25.0, 15.0)]


def test_per_second_counts_every_second_including_empty_ones() -> None:
    assert rpt.per_second([0.1, 0.5, 2.2], 0.0) == [(0, 2), (1, 0), (2, 1)]
    assert rpt.per_second([], 0.0) == []
