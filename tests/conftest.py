"""Fixtures every tier shares: AWS isolation, and a moto server on 127.0.0.1 for the tiers that
talk HTTP (integration, e2e). Unit tests never touch the network."""

from __future__ import annotations

import logging
import socket
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "Sluice",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker, the longest modules first (`tests/durations.py`): the workers take
    modules in this order, so the last ones handed out are short. A module's tests keep their
    order and stay together."""
    if not hasattr(config, "workerinput"):
        return
    from tests.durations import seconds

    modules = {item.nodeid.split("::")[0] for item in items}
    rank = {module: -seconds(module) for module in modules}
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])


@pytest.fixture(autouse=True)
def _isolated_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever sees a real credential, profile or endpoint."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server for the session, on a free loopback port; yields its endpoint URL."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.server import ThreadedMotoServer

    # One access-log line per request drowns every failure report in noise.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # DynamoDB applies a transaction as one step (its conditions hold when its writes land);
    # moto's threaded server does not: two claims of one file under the ledger's version lock,
    # checked at once, could both pass. One transaction at a time, as the local runtime's
    # endpoint runs them (`sluice.local.endpoint.INLINE_ACTIONS`).
    transact = DynamoDBBackend.transact_write_items
    one_at_a_time = threading.Lock()

    def atomic_transact(self: Any, *args: Any, **kwargs: Any) -> Any:
        with one_at_a_time:
            return transact(self, *args, **kwargs)

    DynamoDBBackend.transact_write_items = atomic_transact  # type: ignore[method-assign]
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        DynamoDBBackend.transact_write_items = transact  # type: ignore[method-assign]


@pytest.fixture
def test_event_pattern() -> Iterator[None]:
    """EventBridge's TestEventPattern on the test server, as the local runtime serves it (moto
    has none: `sluice.local.events_patches`)."""
    from sluice.local import events_patches

    undo = events_patches.apply()
    try:
        yield
    finally:
        undo()


@pytest.fixture
def moto_endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean moto state for one test; AWS_ENDPOINT_URL points every client at it."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server
