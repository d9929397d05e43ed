"""Helpers shared by the load-test runner and the event-path benchmark (no Locust import):
the local runtime's lifecycle and a description of this machine."""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def machine() -> str:
    """CPU model, core count, OS and Python of this machine (the report's context)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def ensure_local_runtime(
    port: int, stage: str, state_dir: Path, max_concurrency: int
) -> int | None:
    """Start `sluice local up --detach` on `port` unless a runtime answers there.

    Returns:
        The pid of the runtime this call started, or None when one was already running.

    Raises:
        click.ClickException: the runtime did not come up (its log's tail in the message).
    """
    from sluice.commands.local import running, start_detached

    if running(port):
        return None
    args = ["--stage", stage, "local", "up", "--port", str(port), "--state-dir", str(state_dir)]
    args += ["--max-concurrency", str(max_concurrency), "--no-schedules"]
    return start_detached(args, state_dir, port, timeout=180.0)


def stop_local_runtime(port: int, pid: int) -> None:
    """Ask the runtime on `port` to shut down; kill `pid` if it lingers."""
    import contextlib
    import signal

    import psutil

    from sluice.commands.local import _call
    from sluice.local.errors import LocalRuntimeError

    with contextlib.suppress(LocalRuntimeError):
        _call(port, "shutdown", {})
    try:
        psutil.Process(pid).wait(30)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
