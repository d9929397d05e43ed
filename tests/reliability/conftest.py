"""Fixtures of the reliability scenarios (see `scenario.py`), and the soak switch: tests marked
`soak` are deselected unless the marker expression asks for them (`make soak` runs
`pytest -m soak`), so the PR tier stays fast without skipping anything it collects."""

from __future__ import annotations

import pytest

from tests.reliability.scenario import fast_retries, rig

__all__ = ["fast_retries", "rig"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "soak" in (config.option.markexpr or ""):
        return
    soak = [item for item in items if item.get_closest_marker("soak") is not None]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if item.get_closest_marker("soak") is None]
