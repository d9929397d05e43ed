"""`sluice contracts check` as a CI gate: built-ins, and a team's contract in its own git repo."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.unit.cli.support import Invoke

MODEL_V1 = """
from typing import ClassVar
from contracts.envelope import ContractModel

class ShipmentSentV1(ContractModel):
    TYPE: ClassVar[str] = "acme.shipment.sent.v1"
    SOURCE: ClassVar[str] = "acme.shipping"
    shipment_id: str
    carrier: str
"""
EXAMPLE = {
    "specversion": "1.0",
    "id": "s-1",
    "source": "acme.shipping",
    "type": "acme.shipment.sent.v1",
    "time": "2024-01-15T10:00:00Z",
    "correlationid": "s-1",
    "data": {"shipment_id": "s-1", "carrier": "ups"},
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def team_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """GIVEN a team's repository with one committed contract (model, schema, golden example)."""
    from contracts.tools import ContractFolder, generate

    folder = tmp_path / "acme_cli_contracts" / "shipment_sent" / "v1"
    (folder / "examples").mkdir(parents=True)
    for package in (
        tmp_path / "acme_cli_contracts",
        tmp_path / "acme_cli_contracts" / "shipment_sent",
    ):
        (package / "__init__.py").write_text("")
    (folder / "__init__.py").write_text("from .model import ShipmentSentV1\n")
    (folder / "model.py").write_text(textwrap.dedent(MODEL_V1))
    (folder / "examples" / "sent.json").write_bytes(orjson.dumps(EXAMPLE))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in list(sys.modules):
        if name.startswith("acme_cli_contracts"):
            monkeypatch.delitem(sys.modules, name)
    import importlib

    model = importlib.import_module("acme_cli_contracts.shipment_sent.v1").ShipmentSentV1

    generate([ContractFolder.of(model)])
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "v1")
    return folder


MODEL = "acme_cli_contracts.shipment_sent.v1.model:ShipmentSentV1"


def test_contracts_check_builtins_pass(sluice: Invoke) -> None:
    result = sluice("--json", "contracts", "check")

    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["ok"] is True
    assert "sluice.file.processed.v1" in report["contracts"]


def test_contracts_check_team_contract_unchanged_passes(sluice: Invoke, team_repo: Path) -> None:
    result = sluice("contracts", "check", "--model", MODEL)

    assert result.exit_code == 0, result.output
    assert "1 contracts OK" in result.stdout


def test_contracts_check_removed_field_needs_new_major(sluice: Invoke, team_repo: Path) -> None:
    # WHEN the team drops `carrier` within v1 and regenerates the schema
    model = team_repo / "model.py"
    model.write_text(model.read_text().replace("    carrier: str\n", ""))
    _regenerate(team_repo)

    result = sluice("--json", "contracts", "check", "--model", MODEL, "--against", "HEAD")

    assert result.exit_code == 1
    problems = orjson.loads(result.stdout)["problems"]
    assert any("carrier: field removed" in p and "new major" in p for p in problems), problems


def test_contracts_check_changed_golden_example_fails(sluice: Invoke, team_repo: Path) -> None:
    example = team_repo / "examples" / "sent.json"
    example.write_bytes(orjson.dumps({**EXAMPLE, "id": "s-2"}))

    result = sluice("--json", "contracts", "check", "--model", MODEL)

    assert result.exit_code == 1
    assert any(
        "changed after it was recorded" in p for p in orjson.loads(result.stdout)["problems"]
    )


def test_contracts_check_unknown_ref_exits_2(sluice: Invoke, team_repo: Path) -> None:
    result = sluice("contracts", "check", "--model", MODEL, "--against", "no-such-ref")

    assert result.exit_code == 2
    assert "not a git commit" in result.stderr


def test_contracts_check_bad_model_path_exits_2(sluice: Invoke) -> None:
    result = sluice("contracts", "check", "--model", "no_such_module_xyz:Model")

    assert result.exit_code == 2
    assert "cannot import" in result.stderr


SAMPLE = (
    Path(__file__).resolve().parents[3]
    / "packages"
    / "sluice-contracts"
    / "examples"
    / "acme_inventory"
)


@pytest.fixture
def team_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """GIVEN the sample team folder (models only) outside the repository and outside git."""
    import shutil

    root = tmp_path / "acme_inventory"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("__pycache__", "examples"))
    (root / "inventory_counted" / "v1" / "schema.json").unlink()
    for name in list(sys.modules):
        if name.startswith("acme_inventory"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield root
    # the copy is gone after the test: a later import must not find its modules
    for name in [m for m in sys.modules if m.startswith("acme_inventory")]:
        del sys.modules[name]


def test_contracts_generate_path_writes_a_team_folder_then_check_passes(
    sluice: Invoke, team_folder: Path
) -> None:
    generated = sluice("--json", "contracts", "generate", "--path", str(team_folder))
    checked = sluice("contracts", "check", "--path", str(team_folder))

    assert generated.exit_code == 0, generated.output
    written = orjson.loads(generated.stdout)["written"]
    assert sorted(Path(p).name for p in written) == ["CHECKSUMS", "first.json", "schema.json"]
    assert checked.exit_code == 0, checked.output
    assert "1 contracts OK" in checked.stdout


def test_contracts_check_path_without_generate_fails_with_the_hint(
    sluice: Invoke, team_folder: Path
) -> None:
    result = sluice("--json", "contracts", "check", "--path", str(team_folder))

    assert result.exit_code == 1
    problems = orjson.loads(result.stdout)["problems"]
    assert any("schema.json is missing" in p for p in problems), problems
    assert any("has no golden example" in p for p in problems), problems


def test_contracts_generate_path_without_contracts_exits_2(sluice: Invoke, tmp_path: Path) -> None:
    result = sluice("contracts", "generate", "--path", str(tmp_path))

    assert result.exit_code == 2
    assert "holds no contract" in result.stderr


def _regenerate(folder: Path) -> None:
    import importlib

    from contracts.tools import ContractFolder, generate

    module = importlib.import_module("acme_cli_contracts.shipment_sent.v1.model")
    module = importlib.reload(module)
    generate([ContractFolder.of(module.ShipmentSentV1)])


@pytest.fixture
def datasets_copy(tmp_path: Path) -> Path:
    """GIVEN a copy of the repository's data contracts and lookups, outside any git repo."""
    import shutil

    from contracts.datasets.loader import DATASETS_DIR

    root = tmp_path / "datasets"
    shutil.copytree(DATASETS_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return root


def test_contracts_check_datasets_passes_on_the_repository(sluice: Invoke) -> None:
    result = sluice("contracts", "check", "--datasets")

    assert result.exit_code == 0, result.output
    assert "2 data contracts OK" in result.stdout


def test_contracts_check_datasets_on_broken_copy_exits_1_with_yaml_path(
    sluice: Invoke, datasets_copy: Path
) -> None:
    contract = datasets_copy / "orders" / "v1.yaml"
    contract.write_text(
        contract.read_text().replace(
            "{table: countries, column: country", "{table: countries, on: country"
        )
    )

    result = sluice("contracts", "check", "--datasets", "--datasets-dir", str(datasets_copy))

    assert result.exit_code == 1
    assert "orders/v1.yaml: transform.lookups[0].on: the key `on` was read as the boolean true" in (
        result.stdout
    )
    assert "data contract problem(s)" in result.stderr


def test_contracts_check_datasets_finds_a_derived_op_on_the_wrong_type(
    sluice: Invoke, datasets_copy: Path
) -> None:
    # WHEN a derived column multiplies a string column (its declared type hides nothing)
    contract = datasets_copy / "orders" / "v1.yaml"
    contract.write_text(
        contract.read_text().replace("args: [quantity, unit_price]", "args: [quantity, currency]")
    )

    result = sluice(
        "--json", "contracts", "check", "--datasets", "--datasets-dir", str(datasets_copy)
    )

    assert result.exit_code == 1
    [problem] = orjson.loads(result.stdout)["problems"]
    assert problem["where"] == "transform.derived[0]"
    assert "multiply needs numbers, got string" in problem["message"]


def test_contracts_check_datasets_missing_folder_exits_2(sluice: Invoke, tmp_path: Path) -> None:
    result = sluice("contracts", "check", "--datasets", "--datasets-dir", str(tmp_path / "nope"))

    assert result.exit_code == 2
    assert "is not a folder" in result.stderr


@pytest.fixture
def committed_datasets(datasets_copy: Path) -> Path:
    """GIVEN the data contracts committed in a git repository."""
    repo = datasets_copy.parent
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "contracts")
    return datasets_copy


def test_contracts_check_datasets_breaking_edit_within_a_version_exits_1(
    sluice: Invoke, committed_datasets: Path
) -> None:
    contract = committed_datasets / "sensor_readings" / "v1.yaml"
    contract.write_text(
        contract.read_text().replace(
            "primary_key: [device_id, reading_ts, metric]", "primary_key: [device_id, reading_ts]"
        )
    )

    result = sluice(
        "contracts",
        "check",
        "--datasets",
        "--datasets-dir",
        str(committed_datasets),
        "--against",
        "HEAD",
    )

    assert result.exit_code == 1
    assert "sensor_readings/v1.yaml: primary_key: primary key changed from" in result.stdout
    assert "put the change in v2.yaml" in result.stdout


def test_contracts_check_datasets_unknown_ref_exits_2(
    sluice: Invoke, committed_datasets: Path
) -> None:
    result = sluice(
        "contracts",
        "check",
        "--datasets",
        "--datasets-dir",
        str(committed_datasets),
        "--against",
        "nope",
    )

    assert result.exit_code == 2
    assert "not a git commit" in result.stderr
