"""Running the `sluice` CLI in-process, with no network."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from sluice.cli import cli
from tests.unit.cli.support import Invoke


@pytest.fixture
def sluice() -> Invoke:
    """`sluice ARGS…` against an endpoint nobody listens on: a command that tried the network
    would fail with exit 3, so offline commands prove they are offline."""

    def run(*args: str, input: str | bytes | None = None) -> Result:
        return CliRunner().invoke(cli, ["--endpoint-url", "http://127.0.0.1:9", *args], input=input)

    return run
