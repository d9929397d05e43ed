"""A team's own contract folder outside the repository: found, generated and checked with the
same tools as the built-ins; written against `sluice_contracts`, the installable package's name."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import contracts
from contracts.errors import InvalidContract
from contracts.events import FileProcessedV1
from contracts.publish import entries, entries_json, validated
from contracts.tools import ToolError, check, discover, first_example, generate

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "packages" / "sluice-contracts" / "examples" / "acme_inventory"
SAMPLE_TYPE = "acme.inventory.counted.v1"
BUS_ARN = "arn:aws:events:us-east-1:123456789012:event-bus/sluice-dev-bus"


@pytest.fixture
def team_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """GIVEN the sample team folder copied outside the repository, schema and examples removed."""
    root = tmp_path / "team" / "acme_inventory"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("__pycache__"))
    version = root / "inventory_counted" / "v1"
    (version / "schema.json").unlink()
    shutil.rmtree(version / "examples")
    for name in list(sys.modules):
        if name.startswith("acme_inventory"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield root
    # the copy is gone after the test: a later import must not find its modules
    for name in [m for m in sys.modules if m.startswith("acme_inventory")]:
        del sys.modules[name]


def test_sluice_contracts_imports_as_the_same_modules_in_the_repository() -> None:
    # By name: the alias exists at run time only (mypy knows the package as `contracts`).
    package = importlib.import_module("sluice_contracts")
    envelope = importlib.import_module("sluice_contracts.envelope")
    events = importlib.import_module("sluice_contracts.events")

    assert package is contracts
    assert envelope.ContractModel is contracts.ContractModel
    assert events.FileProcessedV1 is FileProcessedV1


def test_discover_finds_a_team_package_outside_the_repository(team_copy: Path) -> None:
    [folder] = discover(team_copy)

    assert folder.model.TYPE == SAMPLE_TYPE
    assert folder.path == team_copy / "inventory_counted" / "v1"
    assert issubclass(folder.model, contracts.ContractModel)


def test_discover_loads_model_files_of_a_folder_that_is_no_package(tmp_path: Path) -> None:
    # GIVEN a bare folder: no __init__.py anywhere
    version = tmp_path / "bare" / "parcel_weighed" / "v1"
    version.mkdir(parents=True)
    (version / "model.py").write_text(
        textwrap.dedent(
            """
            from typing import ClassVar
            from sluice_contracts import ContractModel

            class ParcelWeighedV1(ContractModel):
                TYPE: ClassVar[str] = "acme.parcel.weighed.v1"
                SOURCE: ClassVar[str] = "acme.depot"
                grams: int
            """
        )
    )

    [folder] = discover(tmp_path / "bare")

    assert folder.model.TYPE == "acme.parcel.weighed.v1"
    assert folder.path == version


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", "found none"),
        ("import no_such_module_anywhere\n", "import failed: ModuleNotFoundError"),
        (
            "from typing import ClassVar\nfrom sluice_contracts import ContractModel\n"
            "class AV1(ContractModel):\n    TYPE: ClassVar[str] = 'acme.a.v1'\n"
            "class BV1(ContractModel):\n    TYPE: ClassVar[str] = 'acme.b.v1'\n",
            "found AV1, BV1",
        ),
    ],
)
def test_discover_rejects_a_folder_without_exactly_one_model(
    tmp_path: Path, source: str, message: str
) -> None:
    version = tmp_path / "broken" / "fact" / "v1"
    version.mkdir(parents=True)
    (version / "model.py").write_text(source)

    with pytest.raises(ToolError, match=message):
        discover(tmp_path / "broken")


def test_discover_rejects_a_folder_without_contracts(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="holds no contract"):
        discover(tmp_path)


def test_generate_writes_schema_golden_example_and_checksums_for_a_team_folder(
    team_copy: Path,
) -> None:
    # GIVEN a team folder with only its model; WHEN generated
    folders = discover(team_copy)
    written = generate(folders)

    # THEN schema, a first golden example from the fields' examples and its checksum exist,
    # and the folder passes the same check as the built-ins
    version = team_copy / "inventory_counted" / "v1"
    assert {p.relative_to(version).as_posix() for p in written} == {
        "schema.json",
        "examples/first.json",
        "examples/CHECKSUMS",
    }
    schema = json.loads((version / "schema.json").read_text())
    assert schema["x-sluice-type"] == SAMPLE_TYPE
    example = json.loads((version / "examples" / "first.json").read_text())
    assert example["data"]["sku"] == "SKU-1042"
    assert example["source"] == "acme.warehouse"
    assert check(folders) == []
    assert generate(folders) == []


def test_check_reports_an_edited_team_example(team_copy: Path) -> None:
    folders = discover(team_copy)
    generate(folders)
    example = team_copy / "inventory_counted" / "v1" / "examples" / "first.json"
    example.write_text(example.read_text().replace('"SKU-1042"', '"SKU-9"'))

    problems = check(folders)

    assert any("changed after it was recorded" in p for p in problems)


def test_first_example_needs_examples_for_every_required_field() -> None:
    assert first_example(FileProcessedV1) is None


def _processed() -> contracts.Envelope[Any]:
    example = REPO / "contracts/events/file_processed/v1/examples"
    document = json.loads(next(iter(sorted(example.glob("*.json")))).read_text())
    return validated(document)


def test_entries_json_gives_detail_as_a_string_and_time_in_iso_8601() -> None:
    envelope = _processed()

    [entry] = entries_json(entries([envelope], BUS_ARN))

    assert entry["EventBusName"] == BUS_ARN
    assert (entry["Source"], entry["DetailType"]) == (envelope.source, envelope.type)
    assert json.loads(entry["Detail"]) == envelope.model_dump(mode="json")
    assert entry["Time"] == envelope.time.isoformat().replace("+00:00", "Z")
    assert datetime.fromisoformat(entry["Time"]).tzinfo == UTC


def test_validated_lists_every_problem_of_a_bad_event() -> None:
    document = _processed().model_dump(mode="json")
    document["data"]["rows_in"] = -1
    del document["data"]["bucket"]

    with pytest.raises(InvalidContract) as info:
        validated(document)

    assert len(info.value.problems) == 2


def test_entries_refuse_an_empty_bus() -> None:
    with pytest.raises(ValueError, match="no event bus"):
        entries([_processed()], "")
