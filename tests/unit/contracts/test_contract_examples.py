"""The committed contracts keep their promises: examples parse, schemas match the models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from contracts.events import BUILTIN_MODELS
from contracts.registry import parse_envelope
from contracts.tools import ContractFolder, builtin_folders, check, read_checksums, render_schema

FOLDERS = builtin_folders()
EXAMPLES = [(folder, path) for folder in FOLDERS for path in folder.example_files()]


def test_builtin_folders_cover_every_builtin_model() -> None:
    assert [folder.model for folder in FOLDERS] == list(BUILTIN_MODELS)
    assert all(folder.path.name == f"v{folder.model.TYPE.rsplit('.v', 1)[1]}" for folder in FOLDERS)


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.model.TYPE)
def test_every_contract_has_a_golden_example(folder: ContractFolder) -> None:
    assert folder.example_files()


@pytest.mark.parametrize(
    ("folder", "example"), EXAMPLES, ids=[f"{f.model.TYPE}/{p.name}" for f, p in EXAMPLES]
)
def test_golden_example_parses_as_its_contract(folder: ContractFolder, example: Path) -> None:
    envelope = parse_envelope(example.read_bytes(), accepted=[folder.model.TYPE])

    assert isinstance(envelope.data, folder.model)
    assert envelope.source == folder.model.SOURCE


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.model.TYPE)
def test_committed_schema_equals_model(folder: ContractFolder) -> None:
    assert folder.schema_path.read_bytes() == render_schema(folder.model)
    assert orjson.loads(folder.schema_path.read_bytes())["x-sluice-type"] == folder.model.TYPE


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.model.TYPE)
def test_golden_example_checksums_hold(folder: ContractFolder) -> None:
    recorded = read_checksums(folder.checksums_path.read_text())

    assert sorted(recorded) == sorted(p.name for p in folder.example_files())
    for example in folder.example_files():
        assert hashlib.sha256(example.read_bytes()).hexdigest() == recorded[example.name]


def test_contract_check_on_builtins_reports_nothing() -> None:
    assert check() == []
