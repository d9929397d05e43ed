"""One runtime, many commands: `--endpoint-url` picks the runtime for `local *` as for the rest,
the health answer names the checkout and state directory, `local run`/`up` refuse another
checkout's runtime, and `cost`/`status --metrics` find the runtime's state directory."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import pytest

from sluice.local.runtime import LocalRuntime
from tests.integration.local.conftest import FIXTURES, REPO, fixture_options
from tests.processes import free_port, run_sluice


@pytest.fixture
async def other_checkout(moto_endpoint: str, tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    """A runtime serving another checkout (its own repository root), state in a folder of its
    own, on a free port."""
    root = tmp_path / "other-checkout"
    root.mkdir()
    options = fixture_options(tmp_path / "elsewhere" / "state", free_port())
    options.repo_root = root
    rt = LocalRuntime(options)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


async def sluice(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # the runtime serves from this event loop: the CLI process runs off it
    return await asyncio.to_thread(run_sluice, *args, timeout=120, cwd=cwd, env=env)


def _health(url: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{url}/_sluice/health", timeout=5) as response:
        doc: dict[str, str] = json.loads(response.read())
    return doc


async def test_health_names_checkout_and_state_dir(other_checkout: LocalRuntime) -> None:
    health = await asyncio.to_thread(_health, other_checkout.endpoint_url)
    assert health["repo_root"] == str(other_checkout.options.repo_root.resolve())
    assert health["state_dir"] == str(other_checkout.state_dir.resolve())


async def test_local_commands_follow_endpoint_url(
    other_checkout: LocalRuntime, tmp_path: Path
) -> None:
    url = other_checkout.endpoint_url
    port = str(other_checkout.options.port)
    # WHEN status-lite is pointed at the runtime by --endpoint-url alone (no --port)
    shown = await sluice("--endpoint-url", url, "local", "status-lite")
    # THEN it shows that runtime (not whatever holds the default port)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"{url}  stage test")
    same = await sluice("--endpoint-url", url, "local", "status-lite", "--port", port)
    assert same.returncode == 0, same.stderr
    # AND a --port naming another runtime than --endpoint-url is refused
    clash = await sluice("--endpoint-url", url, "local", "status-lite", "--port", "1")
    assert clash.returncode == 2
    assert "name different runtimes" in clash.stderr
    # AND SLUICE_LOCAL_PORT points local and other commands at it alike
    by_env = {"SLUICE_LOCAL_PORT": port}
    lite = await sluice("local", "status-lite", env=by_env)
    assert lite.returncode == 0, lite.stderr
    assert lite.stdout.startswith(f"{url}  stage test")
    metrics = await sluice("--json", "status", "--metrics", env=by_env, cwd=tmp_path)
    assert metrics.returncode == 0, metrics.stderr  # the runtime's state dir, found by its port
    remote = await sluice("--endpoint-url", "https://s3.amazonaws.com", "local", "down")
    assert remote.returncode == 2
    assert "not a local runtime" in remote.stderr


async def test_run_and_up_refuse_another_checkouts_runtime(
    other_checkout: LocalRuntime, tmp_path: Path
) -> None:
    url = other_checkout.endpoint_url
    port = other_checkout.options.port
    sample = tmp_path / "one.csv"
    sample.write_text("id\n1\n")
    # WHEN this checkout's `local run` and `local up` find the other checkout's runtime
    for args in (
        ("local", "run", str(sample), "--dataset", "orders"),
        ("local", "up", "--template", str(FIXTURES / "platform.yaml")),
    ):
        refused = await sluice("--stage", "test", "--endpoint-url", url, *args)
        # THEN they refuse it, naming both checkouts and the ways out
        assert refused.returncode == 2, refused.stdout + refused.stderr
        message = " ".join(refused.stderr.split())
        assert str(other_checkout.options.repo_root.resolve()) in message
        assert f"(this is {REPO})" in message
        assert f"sluice local down --port {port}" in message
        assert "--port N" in message
        assert "uploaded" not in refused.stdout
    # AND the runtime was neither re-provisioned nor given a file
    assert other_checkout.runner.stats()["sluice-test-worker"]["invocations"] == 0


async def test_cost_and_metrics_find_the_runtime_state_dir(
    other_checkout: LocalRuntime, tmp_path: Path
) -> None:
    url = other_checkout.endpoint_url
    client = boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    event = {"Records": [{"messageId": "m", "body": json.dumps({"id": "cost"})}]}
    await asyncio.to_thread(
        client.invoke, FunctionName="sluice-test-worker", Payload=json.dumps(event).encode()
    )
    elsewhere = tmp_path / "some-folder"
    elsewhere.mkdir()
    # WHEN cost runs from an unrelated folder against the runtime (state dir not the default)
    cost = await sluice(
        "--json", "--endpoint-url", url, "cost", "--files", "1", "--gb", "0.01", cwd=elsewhere
    )
    # THEN it reads the REPORT lines of that runtime's state dir
    assert cost.returncode == 0, cost.stderr
    assert json.loads(cost.stdout)["report_lines_from"] == str(other_checkout.state_dir.resolve())
    metrics = await sluice("--json", "--endpoint-url", url, "status", "--metrics", cwd=elsewhere)
    assert metrics.returncode == 0, metrics.stderr
    assert isinstance(json.loads(metrics.stdout), dict)
