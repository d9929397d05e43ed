"""`sluice.local.packages`: what a local function may import, from the deployed layer's lock."""

from __future__ import annotations

import logging

import pytest

from sluice.local import packages


def test_layer_lock_names_the_templates_runtime_and_architecture() -> None:
    lock = packages.layer_lock("python3.12", "arm64")

    assert lock.name == "aarch64-manylinux_2_28-py3.12.txt"
    assert lock.exists()
    assert packages.layer_lock("python3.12", "x86_64").name == "x86_64-manylinux_2_28-py3.12.txt"


def test_hidden_packages_are_the_venvs_not_the_layers_nor_the_projects() -> None:
    hidden = packages.hidden_packages("python3.12", "arm64")
    shipped = packages.locked_names(packages.layer_lock("python3.12", "arm64"))

    assert {"pyarrow", "aioboto3", "pydantic"} <= shipped
    assert not {"pyarrow", "aiobotocore", "yaml", "pydantic", "orjson"} & hidden  # the layer's
    assert not {"contracts", "sluice", "sluice_shared", "json", "asyncio"} & hidden  # own, stdlib
    assert {"moto", "numpy", "pandas", "click"} <= hidden  # CLI, benchmarks


def test_without_a_layer_lock_nothing_is_hidden(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sluice.local.packages"):
        assert packages.hidden_packages("python3.99", "arm64") == frozenset()
    assert "no layer lock aarch64-manylinux_2_28-py3.99.txt" in caplog.text
