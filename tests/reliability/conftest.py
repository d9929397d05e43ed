"""Fixtures of the reliability scenarios (see `scenario.py`), and the soak switch: tests marked
`soak` are deselected unless the marker expression asks for them (`make soak` runs
`pytest -m soak`) or they are also marked `pr_tier` (the soak's first seeds run in `make test`),
so the PR tier stays fast without skipping anything it collects."""

from __future__ import annotations

import pytest

from tests.reliability.scenario import fast_retries, rig

__all__ = ["fast_retries", "rig"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "soak" in (config.option.markexpr or ""):
        return

    def soak_only(item: pytest.Item) -> bool:
        return item.get_closest_marker("soak") is not None and not item.get_closest_marker(
            "pr_tier"
        )

    soak = [item for item in items if soak_only(item)]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if not soak_only(item)]
