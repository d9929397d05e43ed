"""`sluice events validate|example|publish --dry-run` (offline)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from contracts.envelope import ContractModel
from contracts.events import BUILTIN_MODELS
from tests.unit.cli.support import Invoke

PROCESSED = "sluice.file.processed.v1"
BUS_ARN = "arn:aws:events:us-east-1:123456789012:event-bus/sluice-dev-bus"


def _example(sluice: Invoke, contract_type: str) -> dict[str, Any]:
    result = sluice("events", "example", contract_type)
    assert result.exit_code == 0, result.output
    loaded: dict[str, Any] = orjson.loads(result.stdout)
    return loaded


@pytest.mark.parametrize("model", BUILTIN_MODELS, ids=lambda m: m.TYPE)
def test_events_example_of_every_builtin_validates(
    sluice: Invoke, model: type[ContractModel]
) -> None:
    example = _example(sluice, model.TYPE)

    result = sluice("--json", "events", "validate", "-", input=orjson.dumps(example))

    assert example["type"] == model.TYPE
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)[0]["ok"] is True


def test_events_example_of_unknown_type_exits_2_listing_known(sluice: Invoke) -> None:
    result = sluice("events", "example", "sluice.file.exploded.v1")

    assert result.exit_code == 2
    assert PROCESSED in result.stderr


def test_events_validate_reports_every_problem_and_exits_1(sluice: Invoke) -> None:
    # GIVEN an envelope with two broken data fields and one missing attribute
    event = _example(sluice, PROCESSED)
    del event["correlationid"]
    event["data"]["file_id"] = "not-hex"
    event["data"]["rows_out"] = "12"

    result = sluice("--json", "events", "validate", "-", input=orjson.dumps(event))

    assert result.exit_code == 1
    (checked,) = orjson.loads(result.stdout)
    assert checked["code"] == "invalid_contract"
    joined = "\n".join(checked["problems"])
    assert "correlationid" in joined
    assert "data.file_id" in joined
    assert "data.rows_out" in joined


def test_events_validate_reads_eventbridge_event_and_checks_detail_type(
    sluice: Invoke, tmp_path: Path
) -> None:
    envelope = _example(sluice, PROCESSED)
    good = {"source": envelope["source"], "detail-type": PROCESSED, "detail": envelope}
    bad = {**good, "detail-type": "sluice.file.validated.v1"}
    path = tmp_path / "events.json"
    path.write_bytes(orjson.dumps([good, bad]))

    result = sluice("--json", "events", "validate", str(path))

    assert result.exit_code == 1
    first, second = orjson.loads(result.stdout)
    assert (first["kind"], first["ok"]) == ("eventbridge", True)
    assert (second["ok"], second["code"]) == (False, "contract_type_mismatch")


def test_events_validate_reads_json_lines(sluice: Invoke) -> None:
    envelope = _example(sluice, PROCESSED)
    lines = orjson.dumps(envelope) + b"\n{broken\n" + orjson.dumps(envelope) + b"\n"

    result = sluice("--json", "events", "validate", "-", input=lines)

    assert [r["ok"] for r in orjson.loads(result.stdout)] == [True, False, True]
    assert result.exit_code == 1


def test_events_validate_of_non_json_exits_2(sluice: Invoke) -> None:
    result = sluice("events", "validate", "-", input="not json")

    assert result.exit_code == 2
    assert "not JSON" in result.stderr


def test_events_publish_dry_run_validates_before_sending(sluice: Invoke) -> None:
    data = _example(sluice, PROCESSED)["data"]

    result = sluice(
        "--json",
        "events",
        "publish",
        "--type",
        PROCESSED,
        "--data",
        orjson.dumps(data).decode(),
        "--dry-run",
        "--bus",
        BUS_ARN,
    )

    assert result.exit_code == 0, result.output
    [entry] = orjson.loads(result.stdout)["entries"]
    assert entry["DetailType"] == PROCESSED
    assert entry["Source"] == "sluice.output"
    assert entry["EventBusName"] == BUS_ARN
    assert orjson.loads(entry["Detail"])["correlationid"] == data["file_id"]


def test_events_publish_dry_run_prints_entries_put_events_reads(sluice: Invoke) -> None:
    # GIVEN a valid event; WHEN printed with --dry-run (human output, meant for a file)
    data = _example(sluice, PROCESSED)["data"]

    result = sluice(
        "events", "publish", "--type", PROCESSED, "--data", orjson.dumps(data).decode(),
        "--dry-run", "--bus", BUS_ARN,
    )  # fmt: skip

    # THEN it is the list `aws events put-events --entries file://...` takes: Detail a JSON
    # string, Time ISO 8601, the real bus
    assert result.exit_code == 0, result.output
    [entry] = orjson.loads(result.stdout)
    assert set(entry) == {"Source", "DetailType", "Detail", "EventBusName", "Time"}
    assert isinstance(entry["Detail"], str)
    assert orjson.loads(entry["Detail"])["data"] == data
    assert entry["Time"].endswith("Z")
    assert entry["EventBusName"] == BUS_ARN


def test_events_publish_invalid_data_exits_1_before_any_network(
    sluice: Invoke, tmp_path: Path
) -> None:
    # The endpoint is unreachable: exit 1 (not 3) proves validation ran before any call.
    data = _example(sluice, PROCESSED)["data"]
    data.pop("manifest_uri", None)
    data["rows_in"] = -1
    path = tmp_path / "data.json"
    path.write_bytes(orjson.dumps(data))

    result = sluice("--json", "events", "publish", "--type", PROCESSED, "--data", f"@{path}")

    assert result.exit_code == 1
    report = orjson.loads(result.stdout)
    assert report["ok"] is False
    assert any(p.startswith("data.rows_in") for p in report["problems"])
    assert "nothing was sent" in result.stderr


def test_events_publish_unknown_type_exits_2_with_hint(sluice: Invoke) -> None:
    result = sluice("events", "publish", "--type", "acme.order.placed.v1", "--data", "{}")

    assert result.exit_code == 2
    assert "--model" in result.stderr


def test_events_publish_bad_data_json_exits_2(sluice: Invoke) -> None:
    result = sluice("events", "publish", "--type", PROCESSED, "--data", "{oops")

    assert result.exit_code == 2
    assert "not JSON" in result.stderr


SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://schemas.acme.example/acme.order.placed.v1.json",
    "x-sluice-type": "acme.order.placed.v1",
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "total": {"type": "number", "minimum": 0}},
    "required": ["order_id", "total"],
}


def test_events_publish_custom_type_with_schema_builds_envelope(
    sluice: Invoke, tmp_path: Path
) -> None:
    schema = tmp_path / "schema.json"
    schema.write_bytes(orjson.dumps(SCHEMA))
    args = [
        "--json",
        "events",
        "publish",
        "--type",
        "acme.order.placed.v1",
        "--schema",
        str(schema),
    ]

    ok = sluice(
        *args,
        "--source",
        "acme.orders",
        "--data",
        '{"order_id": "o1", "total": 3}',
        "--correlation-id",
        "o1",
        "--dry-run",
        "--bus",
        BUS_ARN,
    )
    bad = sluice(*args, "--source", "acme.orders", "--data", '{"total": -3}', "--dry-run")
    no_source = sluice(*args, "--data", '{"order_id": "o1", "total": 3}', "--dry-run")

    assert ok.exit_code == 0, ok.output
    detail = orjson.loads(orjson.loads(ok.stdout)["entries"][0]["Detail"])
    assert detail["dataschema"] == SCHEMA["$id"]
    assert (detail["source"], detail["correlationid"]) == ("acme.orders", "o1")
    assert bad.exit_code == 1
    problems = orjson.loads(bad.stdout)["problems"]
    assert any("order_id" in p for p in problems)
    assert any(p.startswith("data.total") for p in problems)
    assert no_source.exit_code == 2
    assert "--source" in no_source.stderr


def test_events_validate_custom_type_with_schema(sluice: Invoke, tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_bytes(orjson.dumps(SCHEMA))
    event = {
        "specversion": "1.0",
        "id": "e1",
        "source": "acme.orders",
        "type": "acme.order.placed.v1",
        "time": "2024-01-15T10:00:00Z",
        "correlationid": "o1",
        "data": {"order_id": "o1", "total": "3"},
    }

    result = sluice(
        "--json", "events", "validate", "-", "--schema", str(schema), input=orjson.dumps(event)
    )

    assert result.exit_code == 1
    assert orjson.loads(result.stdout)[0]["problems"] == ["data.total: '3' is not of type 'number'"]


def test_events_custom_model_is_read_with_model_option(
    sluice: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a team's own contract model, importable as acme_events_cli
    (tmp_path / "acme_events_cli.py").write_text(
        textwrap.dedent(
            """
            from typing import ClassVar
            from contracts.envelope import ContractModel

            class OrderPlacedV1(ContractModel):
                TYPE: ClassVar[str] = "acme.order.placed.v1"
                SOURCE: ClassVar[str] = "acme.orders"
                order_id: str
                total: float
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "acme_events_cli", raising=False)

    result = sluice(
        "--json",
        "events",
        "publish",
        "--type",
        "acme.order.placed.v1",
        "--model",
        "acme_events_cli:OrderPlacedV1",
        "--data",
        '{"order_id": "o1", "total": 2.5}',
        "--dry-run",
        "--bus",
        BUS_ARN,
    )
    missing = sluice("events", "validate", "-", "--model", "acme_events_cli:Nope", input="{}")

    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["entries"][0]["Source"] == "acme.orders"
    assert missing.exit_code == 2
    assert "not a contracts ContractModel" in missing.stderr


def test_events_validate_missing_file_exits_2(sluice: Invoke, tmp_path: Path) -> None:
    result = sluice("events", "validate", str(tmp_path / "none.json"))

    assert result.exit_code == 2
