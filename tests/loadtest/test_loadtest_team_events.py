"""The load test sends a team's own event type, taken from a golden example and validated against
its schema first; its sink (a rule on a moto server's bus → a queue) receives exactly that type."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from loadtests.events import (
    EventFactory,
    TeamEventError,
    create_sink,
    delete_sink,
    drain_sink,
    entry_id,
    reconcile_events,
    team_events,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "packages" / "sluice-contracts" / "examples" / "acme_inventory"
EXAMPLE = SAMPLE / "inventory_counted" / "v1" / "examples" / "first.json"
TYPE = "acme.inventory.counted.v1"


def test_team_events_from_a_golden_example_carry_its_type_and_data() -> None:
    [event] = team_events(EXAMPLE)
    factory = EventFactory("run-t", prefix="u1-", team=[event])

    entries = factory.entries("bus", 10)

    golden = json.loads(EXAMPLE.read_text())
    assert {e["DetailType"] for e in entries} == {TYPE}
    assert {e["Source"] for e in entries} == {golden["source"]}
    assert len({entry_id(e) for e in entries}) == 10
    detail = json.loads(entries[0]["Detail"])
    assert detail["data"] == golden["data"]
    assert detail["correlationid"] == "run-t"


def test_team_events_of_a_folder_are_all_its_examples() -> None:
    assert [e.type for e in team_events(SAMPLE)] == [TYPE]


def test_team_events_refuse_an_example_that_breaks_its_schema(tmp_path: Path) -> None:
    # GIVEN a copy of the team folder whose golden example breaks the schema
    root = tmp_path / "acme_inventory"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("__pycache__"))
    example = root / "inventory_counted" / "v1" / "examples" / "first.json"
    document = json.loads(example.read_text())
    document["data"]["quantity"] = -1
    example.write_text(json.dumps(document))

    with pytest.raises(TeamEventError, match=r"data\.quantity: -1 is less than the minimum"):
        team_events(example)


def test_team_events_refuse_sluice_sources_and_examples_without_schema(tmp_path: Path) -> None:
    builtin = next((REPO_ROOT / "contracts/events/file_processed/v1/examples").glob("*.json"))
    loose = tmp_path / "loose.json"
    shutil.copyfile(EXAMPLE, loose)

    with pytest.raises(TeamEventError, match="Sluice's own"):
        team_events(builtin)
    with pytest.raises(TeamEventError, match=r"no schema\.json"):
        team_events(loose)
    with pytest.raises(TeamEventError, match="no golden example"):
        team_events(tmp_path / "empty")


def test_sink_receives_exactly_the_team_events_published(moto_endpoint: str) -> None:
    # GIVEN a bus on the moto server and the run's sink for the team's type
    client: Any = boto3.client
    events, sqs = (
        client("events", endpoint_url=moto_endpoint),
        client("sqs", endpoint_url=moto_endpoint),
    )
    events.create_event_bus(Name="lt-bus")
    team = team_events(EXAMPLE)
    sink = create_sink(sqs, events, bus_name="lt-bus", stage="it", run_id="run-s", team=team)
    try:
        # WHEN a factory's entries are put, plus one of another run that must not arrive
        entries = EventFactory("run-s", team=team).entries("lt-bus", 7)
        other = EventFactory("run-other", team=team).entries("lt-bus", 1)
        assert events.put_events(Entries=entries + other)["FailedEntryCount"] == 0

        delivery = drain_sink(sqs, sink.queue_url, expected=7, quiet_s=0.5, timeout_s=20)
    finally:
        delete_sink(sqs, events, sink)

    # THEN every event of the run arrived once, read back as the team's type
    verdict = reconcile_events({entry_id(e) for e in entries}, delivery)
    assert verdict.ok, verdict
    assert verdict.delivered_unique == 7


def test_loadtest_run_refuses_an_invalid_example_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "acme" / "fact" / "v1" / "examples" / "x.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"type": "acme.fact.v1"}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_LOADTEST_")}

    done = subprocess.run(
        [sys.executable, "-m", "loadtests.run", "--event-example", str(bad), "--port", "9"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 2, done.stdout + done.stderr
    assert "not a golden example" in done.stderr
