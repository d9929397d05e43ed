"""Fixtures for the policy tests: every deploy template translated once per session."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tools.templates import load_template, parameter_values, state_machines, template_paths
from tools.templates import translate as translate_template


@pytest.fixture(scope="session")
def _translated_cache() -> dict[str, dict[str, Any]]:
    return {name: translate_template(path) for name, path in template_paths().items()}


@pytest.fixture
def translated(_translated_cache: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> translated CloudFormation template (a fresh copy: tests may mutate it)."""
    return copy.deepcopy(_translated_cache)


@pytest.fixture(scope="session")
def params() -> dict[str, dict[str, Any]]:
    """name -> deploy-time parameter values (defaults, SSM names resolved)."""
    return {name: parameter_values(load_template(path)) for name, path in template_paths().items()}


@pytest.fixture(scope="session")
def batch_asl() -> tuple[str, dict[str, Any]]:
    """(ASL text, DefinitionSubstitutions) of the batch state machine."""
    (_, asl_path, substitutions), *_ = state_machines(template_paths()["orchestration"])
    return asl_path.read_text("utf-8"), substitutions


@pytest.fixture
def batch_definition(batch_asl: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """The parsed batch ASL (a fresh copy)."""
    parsed: dict[str, Any] = json.loads(batch_asl[0])
    return parsed


@pytest.fixture(scope="session")
def rules_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "orchestration" / "rules"
