"""The compatibility rules of a data contract within its version, one test per rule (see
"Changing a data contract" in contracts/README.md), and the check against a git ref."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from contracts.datasets import load_contract
from contracts.datasets.compat import check_against, check_dataset_compatibility
from contracts.datasets.loader import DATASETS_DIR
from contracts.datasets.model import DatasetContract
from contracts.tools import ToolError


def _variant(name: str, change: Any) -> tuple[DatasetContract, DatasetContract]:
    """The shipped contract `name` and a copy with `change(data)` applied to its dict form."""
    old = load_contract(name)
    data = old.model_dump(mode="json")
    change(data)
    return old, DatasetContract.model_validate(data)


def _messages(old: DatasetContract, new: DatasetContract) -> list[str]:
    return [b.message for b in check_dataset_compatibility(old, new)]


def _column(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["columns"] if c["name"] == name)


# Additive within a version ------------------------------------------------------------------


def test_rule_new_nullable_column_is_additive_for_jsonl() -> None:
    def add(data: dict[str, Any]) -> None:
        data["columns"].append({"name": "firmware", "type": "string", "nullable": True})

    assert _messages(*_variant("sensor_readings", add)) == []


def test_rule_column_made_nullable_is_additive() -> None:
    def relax(data: dict[str, Any]) -> None:
        _column(data, "customer_id")["nullable"] = True

    assert _messages(*_variant("orders", relax)) == []


def test_rule_relaxed_constraint_is_additive() -> None:
    def relax(data: dict[str, Any]) -> None:
        _column(data, "quantity")["constraints"].update(min=0, max=None)
        _column(data, "currency")["constraints"]["enum"].append("CHF")
        _column(data, "note")["constraints"]["max_length"] = 1000
        _column(data, "country")["constraints"]["regex"] = None

    assert _messages(*_variant("orders", relax)) == []


def test_rule_new_derived_or_lookup_column_is_additive() -> None:
    def add(data: dict[str, Any]) -> None:
        data["transform"]["derived"].append({"name": "sku_upper", "op": "upper", "args": ["sku"]})

    assert _messages(*_variant("orders", add)) == []


def test_rule_description_owner_and_quarantine_policy_may_change() -> None:
    def document(data: dict[str, Any]) -> None:
        data.update(description="Order lines.", owner="team-checkout")
        data["quarantine"] = {"policy": "skip", "max_bad_ratio": 0.05}

    assert _messages(*_variant("orders", document)) == []


# Breaking: a new version ------------------------------------------------------------------


def test_rule_removed_column_needs_new_version() -> None:
    def remove(data: dict[str, Any]) -> None:
        data["columns"] = [c for c in data["columns"] if c["name"] != "battery"]

    assert _messages(*_variant("sensor_readings", remove)) == [
        "column 'battery' removed (or renamed): files and readers still have it"
    ]


def test_rule_renamed_column_needs_new_version() -> None:
    def rename(data: dict[str, Any]) -> None:
        _column(data, "battery")["name"] = "battery_level"

    messages = _messages(*_variant("sensor_readings", rename))
    assert messages == ["column 'battery' removed (or renamed): files and readers still have it"]


def test_rule_new_column_in_csv_needs_new_version() -> None:
    def add(data: dict[str, Any]) -> None:
        data["columns"].append({"name": "coupon", "type": "string", "nullable": True})

    [message] = _messages(*_variant("orders", add))
    assert message.startswith("column 'coupon' added to a CSV contract")


def test_rule_new_required_column_needs_new_version() -> None:
    def add(data: dict[str, Any]) -> None:
        data["columns"].append({"name": "firmware", "type": "string", "nullable": False})

    [message] = _messages(*_variant("sensor_readings", add))
    assert "added as non-nullable" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: _column(d, "quantity").update(type="float64"),
            "quantity: type changed from int64 to float64",
        ),
        (
            lambda d: d["transform"]["casts"].update(quantity="string"),
            "output column 'quantity' is computed differently (column of type int64 → column of "
            "type string)",
        ),
        (
            lambda d: d["transform"]["derived"][0].update(type="int64"),
            "output column 'line_total' is computed differently",
        ),
    ],
)
def test_rule_type_change_needs_new_version(change: Any, expected: str) -> None:
    messages = _messages(*_variant("orders", change))
    assert len(messages) == 1, messages
    assert messages[0].startswith(expected)


@pytest.mark.parametrize(
    ("column", "constraints", "nullable", "expected"),
    [
        ("note", {}, False, "note: made non-nullable"),
        ("quantity", {"min": 2}, None, "quantity: min raised from 1.0 to 2"),
        ("quantity", {"max": 100}, None, "quantity: max lowered from 1000.0 to 100"),
        ("currency", {"enum": ["EUR", "USD"]}, None, "currency: enum values removed ['GBP']"),
        ("sku", {"enum": ["S1"]}, None, "sku: narrowed to the enum ['S1']"),
        ("sku", {"max_length": 12}, None, "sku: max_length lowered from 24 to 12"),
        ("note", {"max_length": None, "regex": "^[a-z ]*$"}, None, "note: regex changed"),
    ],
)
def test_rule_tighter_constraint_needs_new_version(
    column: str, constraints: dict[str, Any], nullable: bool | None, expected: str
) -> None:
    def tighten(data: dict[str, Any]) -> None:
        spec = _column(data, column)
        spec["constraints"].update(constraints)
        if nullable is not None:
            spec["nullable"] = nullable

    messages = _messages(*_variant("orders", tighten))
    assert any(m.startswith(expected) for m in messages), messages


def test_rule_changed_primary_key_needs_new_version() -> None:
    def rekey(data: dict[str, Any]) -> None:
        data["primary_key"] = ["order_id", "sku"]

    assert _messages(*_variant("orders", rekey)) == [
        "primary key changed from ['order_id'] to ['order_id', 'sku']"
    ]


def test_rule_changed_partitioning_needs_new_version() -> None:
    def repartition(data: dict[str, Any]) -> None:
        data["partition_by"][0]["transform"] = "month"

    [message] = _messages(*_variant("orders", repartition))
    assert message.startswith("partitioning changed")


def test_rule_dropped_or_redefined_output_column_needs_new_version() -> None:
    def change(data: dict[str, Any]) -> None:
        data["transform"]["drop"].append("note")
        data["transform"]["lookups"][0]["key"] = "name"

    messages = _messages(*_variant("orders", change))
    assert "output column 'note' removed: readers still have it" in messages
    assert any(
        m.startswith("output column 'country_name' is computed differently") for m in messages
    )


def test_rule_changed_format_needs_new_version() -> None:
    def reformat(data: dict[str, Any]) -> None:
        data["format"]["delimiter"] = ";"

    assert _messages(*_variant("orders", reformat)) == ["format.delimiter changed from ',' to ';'"]


def test_rule_csv_column_order_is_part_of_the_layout() -> None:
    def reorder(data: dict[str, Any]) -> None:
        data["columns"][0], data["columns"][1] = data["columns"][1], data["columns"][0]

    assert _messages(*_variant("orders", reorder)) == ["CSV columns reordered"]


# Against a git ref --------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    """GIVEN a repository whose data contracts are committed."""
    root = tmp_path / "datasets"
    shutil.copytree(DATASETS_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "contracts")
    return root


def test_check_against_head_reports_a_breaking_edit_with_its_path(committed: Path) -> None:
    contract = committed / "orders" / "v1.yaml"
    contract.write_text(contract.read_text().replace("max: 1000}", "max: 10}"))

    [problem] = check_against(committed)

    assert problem.file.endswith("orders/v1.yaml")
    assert problem.where == "columns[4]"
    assert problem.message == "quantity: max lowered from 1000.0 to 10.0 (versus HEAD)"
    assert "put the change in v2.yaml" in problem.hint


def test_check_against_head_accepts_a_new_version_file(committed: Path) -> None:
    v1 = (committed / "orders" / "v1.yaml").read_text()
    (committed / "orders" / "v2.yaml").write_text(
        v1.replace("version: 1", "version: 2").replace("max: 1000}", "max: 10}")
    )

    assert check_against(committed) == []


def test_check_against_unknown_ref_is_a_tool_error(committed: Path) -> None:
    with pytest.raises(ToolError, match="not a git commit"):
        check_against(committed, "no-such-ref")
