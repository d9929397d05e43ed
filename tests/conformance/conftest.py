"""One local runtime for the whole corpus, started once in a thread of its own.

The runtime (`stack.yaml`: the stand-in functions and a bucket) serves on a free port; cases talk
to it with real boto3 clients, as a team's AWS CLI would. It is package-scoped: every case of
`tests/conformance/` shares it, so the corpus pays one start (the stand-ins' cold starts
included) however many cases it holds.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sluice.local.provisioner import Limits
from sluice.local.runtime import LocalRuntime, RuntimeOptions
from tests.processes import free_port

HERE = Path(__file__).parent
REPO = HERE.parents[1]
START_DEADLINE = 120.0  # a deadline for a broken start, not a budget


class RuntimeThread:
    """A `LocalRuntime` on its own event loop in a daemon thread.

    Args:
        options: how to run it.
    """

    def __init__(self, options: RuntimeOptions) -> None:
        self.runtime = LocalRuntime(options)
        self._loop = asyncio.new_event_loop()
        self._started: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, name="conformance-runtime", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.runtime.start())
        except BaseException as exc:
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        self._loop.run_until_complete(self.runtime.wait_stopped())

    def start(self) -> str:
        """Start and provision; returns the endpoint URL."""
        self._thread.start()
        self._started.result(timeout=START_DEADLINE)
        return self.runtime.endpoint_url

    def stop(self) -> None:
        """Stop the runtime and join its thread."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.runtime.stop(), self._loop).result(timeout=60)
            self._thread.join(timeout=60)
        self._loop.close()


def client(endpoint: str, service: str) -> Any:
    """A boto3 client of `service` on `endpoint` (dummy credentials; StartSyncExecution without
    its `sync-` host prefix)."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="package")
def local_endpoint(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint of a local runtime provisioned from `stack.yaml` (IAM off: the corpus is
    about the languages, not about roles)."""
    # The runtime embeds the same in-process moto as the session's moto server: start clean.
    with urllib.request.urlopen(
        urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10
    ):
        pass
    options = RuntimeOptions(
        repo_root=REPO,
        state_dir=tmp_path_factory.mktemp("conformance-state"),
        port=free_port(),
        stage="conformance",
        templates=[HERE / "stack.yaml"],
        limits=Limits(max_concurrency=2),
        schedules_enabled=False,
        prewarm=False,
        iam=False,
    )
    thread = RuntimeThread(options)
    try:
        yield thread.start()
    finally:
        thread.stop()
