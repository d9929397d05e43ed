"""Fixtures shared by the unit tests of the stage services."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice_shared.stages import StageSettings


@pytest.fixture
def settings(tmp_path: Path) -> StageSettings:
    return StageSettings(
        raw_bucket="raw",
        work_bucket="work",
        processed_bucket="processed",
        error_bucket="errors",
        event_bus="bus",
        ledger_table="ledger",
        scratch_dir=tmp_path / "scratch",
    )
