"""The whole suite from the real templates (`sluice local up`), driven like a user would:
`sluice local run --sample`, and a file copied in with the AWS CLI followed in the ledger."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.processes import free_port, run_sluice

REPO = Path(__file__).resolve().parents[2]


def _sluice(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return run_sluice(*args, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The suite up from deploy/*.yaml on a free port; yields the port."""
    port = free_port()
    state = tmp_path_factory.mktemp("local-suite")
    up = _sluice("local", "up", "--detach", "--port", str(port), "--state-dir", str(state))
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield port
    finally:
        _sluice("local", "down", "--port", str(port))


def test_local_run_sample_completes_and_reconciles(suite: int) -> None:
    result = _sluice("local", "run", "--sample", "--port", str(suite), "--timeout", "300")
    assert result.returncode == 0, result.stdout + result.stderr
    samples = [
        p for p in (REPO / "samples").rglob("*") if p.is_file() and p.parent != REPO / "samples"
    ]
    data_files = [p for p in samples if not p.name.endswith(".truth.json")]
    assert f"{len(data_files)} completed" in result.stdout
    assert "end-to-end latency: p50" in result.stdout


def test_aws_cli_copy_is_processed_to_completed(suite: int, tmp_path: Path) -> None:
    # GIVEN the raw bucket and ledger names the platform published in SSM
    endpoint = f"http://127.0.0.1:{suite}"
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    ssm = session.client("ssm", endpoint_url=endpoint)
    raw = ssm.get_parameter(Name="/sluice/dev/raw-bucket-name")["Parameter"]["Value"]
    table = ssm.get_parameter(Name="/sluice/dev/ledger-table-name")["Parameter"]["Value"]
    source = REPO / "samples" / "orders" / "orders-2024-03-01.csv"
    truth = json.loads(source.with_name(source.name + ".truth.json").read_text())
    cli = shutil.which("aws")
    assert cli is not None, "the AWS CLI is part of the machine's base Python"
    # WHEN a file is copied in with the AWS CLI
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    env.pop("AWS_ENDPOINT_URL", None)
    key = "orders/cli/orders-2024-03-01.csv"
    copied = subprocess.run(
        [cli, "--endpoint-url", endpoint, "s3", "cp", str(source), f"s3://{raw}/{key}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert copied.returncode == 0, copied.stderr
    # THEN the ledger shows it COMPLETED with reconciled counts
    ddb = session.client("dynamodb", endpoint_url=endpoint)
    deadline = time.monotonic() + 300
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        items = ddb.scan(
            TableName=table,
            FilterExpression="#k = :k AND SK = :meta",
            ExpressionAttributeNames={"#k": "key"},
            ExpressionAttributeValues={":k": {"S": key}, ":meta": {"S": "META"}},
        )["Items"]
        if items and items[0]["status"]["S"] in ("COMPLETED", "FAILED", "QUARANTINED"):
            record = dict(items[0])
            break
        time.sleep(0.5)
    assert record, "the file never reached a terminal state"
    assert record["status"]["S"] == "COMPLETED"
    rows_in = int(record["rows_in"]["N"])
    assert rows_in == truth["rows_total"]
    assert rows_in == int(record["rows_out"]["N"]) + int(record["rows_quarantined"]["N"])


def _make_run_args() -> list[str]:
    """The `sluice` arguments of `make run`'s recipe, as the Makefile has them."""
    lines = (REPO / "Makefile").read_text().splitlines()
    recipe = lines[lines.index("run: setup") + 1].split()
    assert recipe[0] == "$(BIN)/sluice", recipe
    return recipe[1:]


def test_make_run_starts_fresh_and_leaves_the_runtime_up_for_query(suite: int) -> None:
    # GIVEN this checkout's runtime already holds outputs (the runs above)
    endpoint = f"http://127.0.0.1:{suite}"
    before = _sluice("--endpoint-url", endpoint, "query", "select count(*) from orders")
    assert before.returncode == 0, before.stdout + before.stderr
    assert int(before.stdout.splitlines()[2]) > 286
    # WHEN make run's command runs against it
    args = _make_run_args()
    ran = _sluice(*args, "--port", str(suite), "--timeout", "300")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "for a fresh run" in ran.stdout
    assert f"sluice local down --port {suite}` stops it" in ran.stdout
    # THEN the runtime is still up and holds the samples' rows alone (178 + 108 orders)
    after = _sluice("--endpoint-url", endpoint, "query", "select count(*) from orders")
    assert after.returncode == 0, after.stdout + after.stderr
    assert [line.strip() for line in after.stdout.splitlines()[:3]] == [
        "count_star()",
        "------------",
        "286",
    ]
