"""The batch path on the local runtime (`sluice local up`): the real templates provisioned, the
batch functions in worker processes, ingest routing a large file to the state machine, and the
`sluice batch start` CLI following a backfill to the end.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pyarrow.parquet as pq
import pytest

from contracts.datasets import load_contract
from sluice.generate import generate
from sluice_shared.datapath.buckets import bucket_count_for
from sluice_shared.datapath.output import write_partitioned
from sluice_shared.datapath.transform import load_lookups, transform_bucket
from sluice_shared.datapath.validate import validate_file
from sluice_shared.limits import Limits
from tests.processes import free_port

REPO = Path(__file__).resolve().parents[2]
SLUICE = [str(Path(sys.executable).parent / "sluice")]
THRESHOLD = 2_000_000
# Unique per session: a runtime shared across sessions (SLUICE_IAM_PROOF_PORT) keeps earlier
# sessions' files, and the ledger lookup is by key.
LARGE_KEY = f"orders/2024/10/large-{uuid.uuid4().hex[:12]}.csv"
PARTITION = 1_048_576


class Local:
    def __init__(self, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self.port = port

    def client(self, service: str) -> Any:
        factory: Any = boto3.client
        return factory(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def name(self, suffix: str) -> str:
        return str(
            self.client("ssm").get_parameter(Name=f"/sluice/dev/{suffix}")["Parameter"]["Value"]
        )

    def file(self, key: str) -> dict[str, Any] | None:
        table = self.name("ledger-table-name")
        for page in self.client("dynamodb").get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                record = {k: next(iter(v.values())) for k, v in item.items()}
                if record.get("SK") == "META" and record.get("key") == key:
                    return record
        return None

    def wait_file(self, key: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.file(key)
            if record and record["status"] in {"COMPLETED", "FAILED", "QUARANTINED"}:
                return record
            time.sleep(0.5)
        raise TimeoutError(f"{key} not terminal: {self.file(key)}")

    def parquet_rows(self, file_id: str) -> list[dict[str, Any]]:
        s3, bucket = self.client("s3"), self.name("processed-bucket-name")
        rows: list[dict[str, Any]] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                if f"part-{file_id}-" in obj["Key"]:
                    data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                    partition = dict(p.split("=", 1) for p in obj["Key"].split("/")[:-1])
                    rows.extend(
                        {**r, **partition} for r in pq.read_table(io.BytesIO(data)).to_pylist()
                    )
        return sorted(rows, key=lambda r: orjson.dumps(r, default=str))


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    """`sluice local up` on a free port with the repository's templates, a 2 MB batch threshold
    and 1 MiB partitions; `sluice local down` afterwards. With SLUICE_IAM_PROOF_PORT set, the
    runtime already up on that port instead (`make iam-proof` starts it with those parameters)."""
    attached = os.environ.get("SLUICE_IAM_PROOF_PORT")
    if attached:
        yield Local(int(attached))
        return
    port = free_port()
    state = tmp_path_factory.mktemp("local-state")
    # The runtime's Step Functions SDK integrations (ItemReader, ResultWriter) use boto3's
    # default credential chain: give the detached process fake credentials.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
    up = subprocess.run(
        [
            *SLUICE,
            "local",
            "up",
            "--port",
            str(port),
            "--state-dir",
            str(state),
            "--detach",
            "--no-schedules",
            "--no-prewarm",
            "--param",
            f"BatchThresholdBytes={THRESHOLD}",
            "--param",
            f"BatchPartitionBytes={PARTITION}",
            "--param",
            "BatchMaxConcurrency=2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield Local(port)
    finally:
        subprocess.run(
            [*SLUICE, "local", "down", "--port", str(port), "--state-dir", str(state)],
            cwd=REPO,
            capture_output=True,
            timeout=60,
        )


def whole_file_rows(src: Path, key: str, work: Path) -> list[dict[str, Any]]:
    """The Parquet rows of processing `src` whole with the data-path functions (as the
    real-time path does: one partition, every bucket transformed and written)."""
    contract = load_contract("orders")
    buckets = bucket_count_for(src.stat().st_size)
    result = validate_file(
        src, contract, work / "v", limits=Limits(), key=key, bucket_count=buckets
    )
    rows: list[dict[str, Any]] = []
    lookups = load_lookups(contract)
    for bucket, staged in result.staged.items():
        out = transform_bucket(
            [staged],
            contract,
            work / f"t{bucket}.arrow",
            lookups=lookups,
            quarantine_path=work / f"q{bucket}.jsonl",
        )
        assert out.staged is not None
        written = write_partitioned(
            [out.staged], contract, work / f"p{bucket}", file_id="x", bucket=bucket
        )
        for obj in written.objects:
            partition = dict(p.split("=", 1) for p in obj.key.split("/")[:-1])
            rows.extend({**r, **partition} for r in pq.read_table(obj.local_path).to_pylist())
    return sorted(rows, key=lambda r: orjson.dumps(r, default=str))


def test_batch_local_runtime_ingest_routes_large_file_through_partitions(
    local: Local, tmp_path: Path
) -> None:
    # GIVEN a 3.5 MB orders CSV, above the 2 MB batch threshold
    src = tmp_path / "large.csv"
    generate("orders", src, rows=42_000, bad_ratio=0.02, duplicate_ratio=0.01, seed=21)
    assert src.stat().st_size > 3 * PARTITION
    key = LARGE_KEY
    # WHEN it lands in the raw bucket
    local.client("s3").put_object(
        Bucket=local.name("raw-bucket-name"), Key=key, Body=src.read_bytes()
    )
    # THEN ingest starts the batch workflow, which completes the file
    record = local.wait_file(key)
    assert record["status"] == "COMPLETED", record
    assert int(record["rows_in"]) == int(record["rows_out"]) + int(record["rows_quarantined"])
    run_id = f"file-{record['file_id']}"
    sfn = local.client("stepfunctions")
    machine = local.name("batch-state-machine-arn")
    execution = sfn.describe_execution(
        executionArn=f"{machine.replace(':stateMachine:', ':execution:')}:{run_id}"
    )
    assert execution["status"] == "SUCCEEDED"
    runs = sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"]
    (validate,) = [r["mapRunArn"] for r in runs if "Validate Partitions" in r["mapRunArn"]]
    partitions = sfn.describe_map_run(mapRunArn=validate)["itemCounts"]["total"]
    assert partitions >= 3
    # AND the Parquet equals processing the file whole, row for row
    assert local.parquet_rows(str(record["file_id"])) == whole_file_rows(src, key, tmp_path)


def test_batch_local_runtime_cli_backfill_of_objects_that_predate_the_pipeline(
    local: Local, tmp_path: Path
) -> None:
    # GIVEN two files that reached the raw bucket while its notifications were off (objects
    # that predate the pipeline: nothing happened on upload)
    s3, raw = local.client("s3"), local.name("raw-bucket-name")
    notifications = s3.get_bucket_notification_configuration(Bucket=raw)
    notifications.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=raw, NotificationConfiguration={})
    try:
        for name, rows in (("a.csv", 500), ("b.csv", 12_000)):
            path = tmp_path / name
            generate("orders", path, rows=rows, seed=rows, bad_ratio=0.01)
            s3.put_object(Bucket=raw, Key=f"orders/backfill/{name}", Body=path.read_bytes())
    finally:
        s3.put_bucket_notification_configuration(
            Bucket=raw, NotificationConfiguration=notifications
        )
    assert local.file("orders/backfill/a.csv") is None
    # WHEN `sluice batch start --prefix` runs against the local endpoint
    done = subprocess.run(
        [
            *SLUICE,
            "--endpoint-url",
            local.endpoint,
            "batch",
            "start",
            "--prefix",
            "orders/backfill/",
            "--name",
            "cli-backfill",
            "--poll",
            "0.5",
            "--timeout",
            "240",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # THEN it follows the run to success with progress lines and a reconciled summary
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCEEDED" in done.stdout
    assert "items" in done.stdout
    assert "run cli-backfill: COMPLETED" in done.stdout
    for name in ("a.csv", "b.csv"):
        record = local.file(f"orders/backfill/{name}")
        assert record is not None
        assert record["status"] == "COMPLETED", record
        assert int(record["rows_in"]) == int(record["rows_out"]) + int(record["rows_quarantined"])


def test_batch_local_runtime_cli_failed_run_exits_non_zero(local: Local) -> None:
    # GIVEN/WHEN a run over a manifest that does not exist
    done = subprocess.run(
        [
            *SLUICE,
            "--endpoint-url",
            local.endpoint,
            "batch",
            "start",
            "--manifest",
            "s3://sluice-archive/nothing-here.jsonl",
            "--name",
            "cli-bad",
            "--poll",
            "0.5",
            "--timeout",
            "120",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=200,
    )
    # THEN the run fails, says why, and the command exits 1
    assert done.returncode == 1, done.stdout + done.stderr
    assert "run cli-bad: FAILED" in done.stdout


def test_batch_local_runtime_schedule_fires_a_backfill_window(local: Local) -> None:
    # GIVEN the raw bucket holds objects created today (by the tests above), already processed
    sfn = local.client("stepfunctions")
    machine = local.name("batch-state-machine-arn")
    before = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]}
    # WHEN the backfill schedule fires now
    fired = subprocess.run(
        [*SLUICE, "local", "trigger", "sluice-dev-backfill", "--port", str(local.port)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fired.returncode == 0, fired.stdout + fired.stderr
    # THEN a batch execution runs over the window and succeeds
    deadline = time.monotonic() + 120
    while True:
        new = [
            e
            for e in sfn.list_executions(stateMachineArn=machine)["executions"]
            if e["executionArn"] not in before
        ]
        if new and new[0]["status"] != "RUNNING":
            break
        assert time.monotonic() < deadline, new
        time.sleep(0.5)
    (execution,) = new
    assert execution["status"] == "SUCCEEDED", execution
    # AND its run record covers the window: today's raw object was seen and, being already
    # COMPLETED, skipped rather than processed twice
    table = local.name("ledger-table-name")
    item = local.client("dynamodb").get_item(
        TableName=table, Key={"PK": {"S": f"RUN#{execution['name']}"}, "SK": {"S": "META"}}
    )["Item"]
    details = orjson.loads(item["details"]["S"])
    assert details["source"] == "schedule"
    assert any(s["key"] == LARGE_KEY for s in details["skipped"])
    assert item["status"]["S"] == "COMPLETED"
