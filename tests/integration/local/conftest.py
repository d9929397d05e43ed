"""An in-process `LocalRuntime` provisioned from the fixture templates, on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from sluice.local.provisioner import Limits
from sluice.local.runtime import LocalRuntime, RuntimeOptions
from tests.processes import free_port

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[3]


def fixture_options(state_dir: Path, port: int) -> RuntimeOptions:
    return RuntimeOptions(
        repo_root=REPO,
        state_dir=state_dir,
        port=port,
        stage="test",
        templates=[FIXTURES / "platform.yaml", FIXTURES / "service.yaml"],
        limits=Limits(max_concurrency=2),
        schedules_enabled=False,
    )


@pytest.fixture
async def runtime(moto_endpoint: str, tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    """A fresh runtime per test (moto_endpoint resets the in-process moto state first)."""
    rt = LocalRuntime(fixture_options(tmp_path / "state", free_port()))
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


@pytest.fixture
def aws(runtime: LocalRuntime) -> Callable[[str], Any]:
    """`aws("sqs")` → an aioboto3 client context manager on the runtime's endpoint."""
    session = aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=runtime.endpoint_url)

    return client


Waiter = Callable[..., Awaitable[Any]]


@pytest.fixture
def wait_for() -> Waiter:
    """`await wait_for(probe, timeout=60)`: poll an async probe until it returns truthy.

    The timeout is a deadline for a broken run to fail by, not a performance budget: generous,
    so a loaded machine only makes a passing test slower."""
    return _wait_for


async def _wait_for(
    probe: Callable[[], Awaitable[Any]],
    timeout: float = 60.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
    interval: float = 0.2,
) -> Any:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")
