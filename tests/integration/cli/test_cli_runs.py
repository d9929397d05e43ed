"""`sluice runs` against the ledger on moto and Map Runs on the local workflow engine."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config

from sluice.context import CliContext
from sluice.local.workflow import InvokeResult, ThreadedWorkflowService
from sluice.local.workflow.adapters import Boto3SdkCaller
from sluice.local.workflow.server import make_server
from sluice_shared.ports import RunRecord
from tests.integration.cli.support import Invoke, Platform

ROLE = "arn:aws:iam::123456789012:role/sfn"
FAN_OUT = {
    "StartAt": "Process Partitions",
    "States": {
        "Process Partitions": {
            "Type": "Map",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "JSONL"},
                "Parameters": {"Bucket": "it-work", "Key": "plan.jsonl"},
            },
            "MaxConcurrency": 2,
            "ToleratedFailurePercentage": 50,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "Process",
                "States": {
                    "Process": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:part",
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    },
}


class OddPartitionsFail:
    async def invoke(self, function_name_or_arn: str, payload: Any) -> InvokeResult:
        if payload["n"] % 2:
            return InvokeResult(error_type="PoisonInputError", error_message="odd")
        return InvokeResult(payload={"rows": payload["n"]})


@pytest.fixture
def workflow(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The local workflow engine; the CLI's Step Functions calls go to it, as they do behind
    `sluice local up`'s single endpoint."""
    service = ThreadedWorkflowService(
        invoker=OddPartitionsFail(), sdk=Boto3SdkCaller(platform.endpoint)
    ).start()
    server = make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    original = CliContext.client

    def route(self: CliContext, service_name: str) -> Any:
        if service_name == "stepfunctions":
            return boto3.client(
                "stepfunctions",
                endpoint_url=url,
                region_name="us-east-1",
                config=Config(inject_host_prefix=False),
            )
        return original(self, service_name)

    monkeypatch.setattr(CliContext, "client", route)
    try:
        yield boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1")
    finally:
        server.shutdown()
        server.server_close()
        service.close()


def _finished(sfn: Any, arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60  # a deadline, not a budget: generous for a loaded machine
    while True:
        doc = sfn.describe_execution(executionArn=arn)
        if doc["status"] != "RUNNING" or time.monotonic() > deadline:
            return dict(doc)
        time.sleep(0.05)


def _finished_fan_out(platform: Platform, workflow: Any, name: str) -> str:
    """Run the 4-partition fan-out (2 children fail, 50 % tolerated) to success; its ARN."""
    platform.client("s3").put_object(
        Bucket="it-work", Key="plan.jsonl", Body="\n".join(json.dumps({"n": n}) for n in range(4))
    )
    machine = workflow.create_state_machine(
        name="batch", definition=json.dumps(FAN_OUT), roleArn=ROLE
    )["stateMachineArn"]
    arn = str(
        workflow.start_execution(stateMachineArn=machine, name=name, input="{}")["executionArn"]
    )
    assert _finished(workflow, arn)["status"] == "SUCCEEDED"
    return arn


async def test_runs_lists_recent_runs_newest_first(platform: Platform, sluice: Invoke) -> None:
    now = datetime.now(UTC)
    for n, age in ((1, timedelta(hours=3)), (2, timedelta(minutes=5)), (3, timedelta(days=3))):
        when = now - age
        await platform.ledger.put_run(
            RunRecord(
                run_id=f"run-{n}", status="SUCCEEDED", files=n, created_at=when, updated_at=when
            )
        )

    result = sluice("--json", "runs", "--since", "1d")

    assert result.exit_code == 0, result.output
    assert [r["run_id"] for r in orjson.loads(result.stdout)] == ["run-2", "run-1"]


async def test_runs_show_reports_map_run_counts(
    platform: Platform, sluice: Invoke, workflow: Any
) -> None:
    # GIVEN a finished distributed map over 4 partitions of which 2 fail (tolerated: 50 %)
    arn = _finished_fan_out(platform, workflow, "run-7")
    await platform.ledger.put_run(
        RunRecord(
            run_id="run-7",
            status="SUCCEEDED",
            execution_arn=arn,
            files=1,
            details={"partitions": 4},
        )
    )

    result = sluice("--json", "runs", "show", "run-7")
    human = sluice("runs", "show", "run-7")

    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["execution"]["status"] == "SUCCEEDED"
    (map_run,) = report["map_runs"]
    assert map_run["items"]["total"] == 4
    assert map_run["items"]["failed"] == 2
    assert map_run["items"]["succeeded"] == 2
    assert map_run["tolerated_failure_percentage"] == 50
    assert "map run: SUCCEEDED" in human.stdout
    assert "partitions: 4" in human.stdout


async def test_runs_show_of_failed_run_exits_1(platform: Platform, sluice: Invoke) -> None:
    await platform.ledger.put_run(RunRecord(run_id="run-9", status="FAILED"))

    result = sluice("--json", "runs", "show", "run-9")

    assert result.exit_code == 1
    assert orjson.loads(result.stdout)["run"]["status"] == "FAILED"


async def test_runs_show_of_unknown_run_exits_3(platform: Platform, sluice: Invoke) -> None:
    result = sluice("runs", "show", "nope")

    assert result.exit_code == 3
    assert "run nope is not in the ledger" in result.stderr


def _report_log(path: Path, function: str, billed: list[int], memory: int = 1024) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{function}.log").write_text(
        "".join(
            f"REPORT RequestId: {function}-{n}\tDuration: {ms - 0.3:.2f} ms\t"
            f"Billed Duration: {ms} ms\tMemory Size: {memory} MB\tMax Memory Used: 99 MB\n"
            for n, ms in enumerate(billed)
        )
    )


async def test_cost_of_run_counts_transitions_and_express_children(
    platform: Platform, sluice: Invoke, workflow: Any, tmp_path: Path
) -> None:
    # GIVEN a finished batch run (4 Express children) and the REPORT lines of its functions
    arn = _finished_fan_out(platform, workflow, "run-c")
    await platform.ledger.put_run(
        RunRecord(run_id="run-c", status="SUCCEEDED", execution_arn=arn, files=1)
    )
    _report_log(tmp_path / "logs", "sluice-it-batch-run-partition", [1000, 1000, 2000, 4000])

    result = sluice("--json", "cost", "run-c", "--logs", str(tmp_path), "--gb", "2")

    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    lines = {line["item"]: line for line in report["lines"]}
    assert lines["Step Functions standard"]["measured"] is True
    assert lines["Step Functions standard"]["quantity"] >= 1
    assert lines["Step Functions express requests"]["quantity"] == 4
    # 8 s of child Lambda time × 64 MB
    assert lines["Step Functions express duration"]["quantity"] == pytest.approx(8 * 64 / 1024)
    assert lines["Lambda compute (arm64)"]["quantity"] == 8
    assert report["files"] == 1
    assert report["gigabytes"] == pytest.approx(2)
    assert report["run_id"] == "run-c"


async def test_cost_since_reads_file_volume_from_ledger(
    platform: Platform, sluice: Invoke, tmp_path: Path
) -> None:
    from sluice_shared.ports import FileRecord

    for n, size in enumerate((2**30, 2**29)):
        await platform.ledger.register_file(
            FileRecord(
                file_id=f"{n:032x}",
                dataset="orders",
                bucket="it-raw",
                key=f"orders/{n}.csv",
                size_bytes=size,
            )
        )
    _report_log(tmp_path, "sluice-it-validate", [1000])

    result = sluice("--json", "cost", "--since", "1h", "--logs", str(tmp_path))

    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["files"] == 2
    assert report["gigabytes"] == pytest.approx(1.5)
    lines = {line["item"]: line for line in report["lines"]}
    # 1 GiB → 16 buckets, 0.5 GiB → 8: PUT = (3·16+5) + (3·8+5) = 82
    assert lines["S3 PUT/LIST requests"]["quantity"] == 82


async def test_cost_of_unknown_run_exits_3(
    platform: Platform, sluice: Invoke, tmp_path: Path
) -> None:
    _report_log(tmp_path, "f", [100])

    result = sluice("cost", "nope", "--logs", str(tmp_path))

    assert result.exit_code == 3


async def test_cloudwatch_reports_are_read_per_log_group(platform: Platform) -> None:
    from sluice.ops.cost import read_cloudwatch_reports

    # GIVEN two function log groups of the stage and one of another stage
    logs = platform.client("logs")
    now_ms = int(time.time() * 1000)
    for group, billed in (
        ("/aws/lambda/sluice-it-validate", 1200),
        ("/aws/lambda/sluice-it-output", 800),
        ("/aws/lambda/sluice-prod-output", 999),
    ):
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="s")
        logs.put_log_events(
            logGroupName=group,
            logStreamName="s",
            logEvents=[
                {"timestamp": now_ms, "message": "START RequestId: a Version: $LATEST"},
                {
                    "timestamp": now_ms,
                    "message": f"REPORT RequestId: a\tDuration: 1.00 ms\tBilled Duration: "
                    f"{billed} ms\tMemory Size: 512 MB\tMax Memory Used: 80 MB\t",
                },
            ],
        )

    found = read_cloudwatch_reports(
        logs, prefix="/aws/lambda/sluice-it-", start_ms=now_ms - 60_000, end_ms=now_ms + 60_000
    )

    assert sorted((i.function, i.billed_ms) for i in found) == [
        ("sluice-it-output", 800),
        ("sluice-it-validate", 1200),
    ]
