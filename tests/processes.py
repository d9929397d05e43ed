"""Helpers for tests that start servers or the `sluice` CLI as processes of their own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_sluice(
    *args: str, timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `sluice ARGS` in a child Python and return it finished, output captured as text.

    The child does not inherit AWS_ENDPOINT_URL: the local runtime serves its own endpoint and
    the CLI must find it through its own options; `env` adds variables. Raises
    subprocess.TimeoutExpired after `timeout` seconds; a non-zero exit is returned, not raised.
    """
    child_env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", "from sluice.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env,
        cwd=cwd,
        check=False,
    )
