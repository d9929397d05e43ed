"""`sluice local up --detach | status-lite | trigger | down` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.processes import free_port, run_sluice

FIXTURES = Path(__file__).parent / "fixtures"


def sluice(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return run_sluice(*args, timeout=timeout)


def _up_args(port: int, state: Path) -> list[str]:
    return [
        "--stage",
        "test",
        "local",
        "up",
        "--port",
        str(port),
        "--state-dir",
        str(state),
        "--template",
        str(FIXTURES / "platform.yaml"),
        "--template",
        str(FIXTURES / "service.yaml"),
    ]


def _items(port: int) -> list[dict[str, Any]]:
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    return [dict(item) for item in ddb.scan(TableName="sluice-test-ledger")["Items"]]


EXTRA = """\
Resources:
  Extra:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: sluice-test-extra
"""


def _queues(port: int) -> list[str]:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    return [url.rsplit("/", 1)[1] for url in sqs.list_queues().get("QueueUrls", [])]


def test_detached_up_trigger_reprovision_and_down(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    # GIVEN a detached runtime
    started = sluice(*_up_args(port, state), "--detach")
    assert started.returncode == 0, started.stderr
    assert f"up on http://127.0.0.1:{port}" in started.stdout
    assert "skipped" in started.stdout
    page = f"http://127.0.0.1:{port}/_sluice/status/"
    assert f"status page: {page}" in started.stdout
    try:
        # AND the status page it prints is served by the runtime itself
        with urllib.request.urlopen(page, timeout=30) as answer:
            assert answer.status == 200
            assert "<title>sluice — test</title>" in answer.read().decode()
        pid = json.loads((state / "runtime.json").read_text())["pid"]
        # WHEN a schedule is triggered from the CLI
        # (pointed at the runtime the way every other command is: --endpoint-url)
        endpoint = f"http://127.0.0.1:{port}"
        fired = sluice("--endpoint-url", endpoint, "local", "trigger", "sluice-test-tick")
        assert fired.returncode == 0, fired.stderr
        deadline = time.monotonic() + 90
        while not any(str(i["PK"]).find("TICK#") >= 0 for i in _items(port)):
            assert time.monotonic() < deadline, "the triggered schedule never reached the function"
            time.sleep(0.3)
        status = sluice("local", "status-lite", "--port", str(port))
        assert "sluice-test-tick" in status.stdout
        assert "schedule sluice-test-tick: rate(1 hour)" in status.stdout
        # AND up runs again against the running runtime
        again = sluice(*_up_args(port, state))
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert json.loads((state / "runtime.json").read_text())["pid"] == pid
        assert any("TICK#" in str(i["PK"]) for i in _items(port))
        # AND so does `up --detach` (the README's next step after `make run` left it up)
        detached = sluice(*_up_args(port, state), "--detach")
        assert detached.returncode == 0, detached.stderr
        assert "already running" in detached.stdout
        assert json.loads((state / "runtime.json").read_text())["pid"] == pid
        # AND `up --template X` against it provisions X, and X only
        extra = tmp_path / "extra.yaml"
        extra.write_text(EXTRA)
        added = sluice(*_up_args(port, state)[:-4], "--template", str(extra))
        assert added.returncode == 0, added.stderr
        assert "provisioned extra.yaml" in added.stdout
        assert "resources: 1 " in added.stdout
        assert "sluice-test-extra" in _queues(port)
        # AND what only a new runtime can change is refused, naming the way out
        refused = sluice(*_up_args(port, state), "--no-iam")
        assert refused.returncode != 0
        assert "--no-iam cannot change it" in refused.stderr
        assert "sluice local down" in refused.stderr
    finally:
        stopped = sluice("--endpoint-url", f"http://127.0.0.1:{port}", "local", "down")
    # THEN down stops it and removes its state file
    assert stopped.returncode == 0, stopped.stderr
    assert not (state / "runtime.json").exists()
    # (refused, not merely slow: a timeout would pass a runtime that is still up but loaded)
    with pytest.raises(urllib.error.URLError) as gone:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_sluice/health", timeout=60)
    assert isinstance(gone.value.reason, ConnectionRefusedError), gone.value


def test_up_on_a_taken_port_names_port_and_holder(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = sluice(*_up_args(port, tmp_path), timeout=60)
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use by pid {os.getpid()}" in result.stderr


def test_unknown_template_property_fails_up_naming_it(tmp_path: Path) -> None:
    template = tmp_path / "bad.yaml"
    template.write_text(
        "Resources:\n"
        "  Q:\n"
        "    Type: AWS::SQS::Queue\n"
        "    Properties:\n"
        "      QueueName: q\n"
        "      Teleport: true\n"
    )
    result = sluice(
        "local",
        "up",
        "--port",
        str(free_port()),
        "--state-dir",
        str(tmp_path),
        "--template",
        str(template),
        timeout=60,
    )
    assert result.returncode != 0
    assert "bad/Q property Teleport: property is not supported" in result.stderr


def test_detached_up_no_iam_lets_a_function_role_do_anything(tmp_path: Path) -> None:
    import boto3

    port = free_port()
    # GIVEN a runtime started with --no-iam
    started = sluice(*_up_args(port, tmp_path / "state"), "--detach", "--no-iam", "--no-prewarm")
    assert started.returncode == 0, started.stderr
    try:
        # WHEN the worker's credentials write where its role grants nothing
        creds = sluice("local", "credentials", "sluice-test-worker", "--port", str(port))
        assert creds.returncode == 0, creds.stderr
        env = dict(
            line.removeprefix("export ").split("=", 1)
            for line in creds.stdout.splitlines()
            if line.startswith("export ")
        )
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"],
        )
        s3.put_object(Bucket="sluice-test-raw-123456789012", Key="any.csv", Body=b"a\n")
        # THEN it is allowed, and status-lite says enforcement is off
        status = sluice("local", "status-lite", "--port", str(port))
        assert "IAM not enforced (--no-iam): 0 denial(s)" in status.stdout
    finally:
        sluice("local", "down", "--port", str(port))
