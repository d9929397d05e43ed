"""boto3 against the standalone Step Functions endpoint, with S3 on the moto server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sluice.local.workflow import InvokeResult, ThreadedWorkflowService
from sluice.local.workflow.adapters import Boto3SdkCaller
from tests.integration.workflow.support import served, wait_done
from tests.processes import free_port

ROLE = "arn:aws:iam::123456789012:role/sfn"


class PartitionFunction:
    """Stands in for the local function runner: fails the partitions named in `bad`."""

    def __init__(self) -> None:
        self.bad: set[int] = set()

    async def invoke(self, function_name_or_arn: str, payload: Any) -> InvokeResult:
        numbers = [item["n"] for item in payload["Items"]]
        if self.bad & set(numbers):
            return InvokeResult(error_type="TransientError", error_message=f"bad {numbers}")
        return InvokeResult(payload={"rows": sum(numbers), "run": payload["BatchInput"]["run"]})


@pytest.fixture
def endpoint(moto_endpoint: str) -> Iterator[tuple[str, PartitionFunction]]:
    function = PartitionFunction()
    service = ThreadedWorkflowService(invoker=function, sdk=Boto3SdkCaller(moto_endpoint)).start()
    with served(service) as url:
        yield url, function


def _sfn(url: str) -> Any:
    # StartSyncExecution carries a `sync-` host prefix that an IP endpoint cannot take.
    return boto3.client(
        "stepfunctions",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(inject_host_prefix=False),
    )


BATCH = {
    "Comment": "Fan partitions out from a JSONL manifest; tolerate one bad partition in four.",
    "StartAt": "Process Partitions",
    "States": {
        "Process Partitions": {
            "Type": "Map",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "JSONL"},
                "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.manifest"},
            },
            "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$.run"}},
            "MaxConcurrency": 2,
            "ToleratedFailurePercentage": 25,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "Process",
                "States": {
                    "Process": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:process",
                        "End": True,
                    }
                },
            },
            "ResultWriter": {
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {"Bucket.$": "$.bucket", "Prefix": "results"},
            },
            "End": True,
        }
    },
}


def test_boto3_drives_distributed_map_over_moto_s3(
    endpoint: tuple[str, PartitionFunction], moto_endpoint: str
) -> None:
    url, function = endpoint
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="work")
    manifest = "\n".join(json.dumps({"n": n}) for n in range(8))
    s3.put_object(Bucket="work", Key="plans/run1.jsonl", Body=manifest.encode())
    sfn = _sfn(url)
    arn = sfn.create_state_machine(name="batch", definition=json.dumps(BATCH), roleArn=ROLE)[
        "stateMachineArn"
    ]
    # GIVEN one of four batches fails (25% of items: at the tolerance, not above)
    function.bad = {7}
    started = sfn.start_execution(
        stateMachineArn=arn,
        name="run1",
        input=json.dumps({"bucket": "work", "manifest": "plans/run1.jsonl", "run": "r1"}),
    )
    doc = wait_done(sfn, started["executionArn"])
    assert doc["status"] == "SUCCEEDED", doc.get("cause")
    output = json.loads(doc["output"])
    (run,) = sfn.list_map_runs(executionArn=started["executionArn"])["mapRuns"]
    assert output["MapRunArn"] == run["mapRunArn"]
    described = sfn.describe_map_run(mapRunArn=run["mapRunArn"])
    assert described["itemCounts"]["total"] == 8
    assert described["itemCounts"]["failed"] == 2
    assert described["executionCounts"]["succeeded"] == 3
    assert described["maxConcurrency"] == 2
    children = sfn.list_executions(mapRunArn=run["mapRunArn"])["executions"]
    assert len(children) == 4
    # THEN the ResultWriter files in S3 are what Reconcile reads
    key = output["ResultWriterDetails"]["Key"]
    body = s3.get_object(Bucket="work", Key=key)["Body"].read()
    files = json.loads(body)["ResultFiles"]
    (succeeded_file,) = files["SUCCEEDED"]
    records = json.loads(s3.get_object(Bucket="work", Key=succeeded_file["Key"])["Body"].read())
    assert sorted(json.loads(r["Output"])["rows"] for r in records) == [1, 5, 9]
    assert (
        succeeded_file["Size"]
        == s3.head_object(Bucket="work", Key=succeeded_file["Key"])["ContentLength"]
    )
    history = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    assert {"ExecutionStarted", "MapRunStarted", "MapRunSucceeded", "ExecutionSucceeded"} <= {
        e["type"] for e in history
    }


def test_boto3_redrive_completes_failed_run(
    endpoint: tuple[str, PartitionFunction], moto_endpoint: str
) -> None:
    url, function = endpoint
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="work")
    s3.put_object(
        Bucket="work",
        Key="m.jsonl",
        Body="\n".join(json.dumps({"n": n}) for n in range(8)).encode(),
    )
    sfn = _sfn(url)
    arn = sfn.create_state_machine(name="batch", definition=json.dumps(BATCH), roleArn=ROLE)[
        "stateMachineArn"
    ]
    function.bad = {0, 2}
    started = sfn.start_execution(
        stateMachineArn=arn,
        input=json.dumps({"bucket": "work", "manifest": "m.jsonl", "run": "r2"}),
    )
    failed = wait_done(sfn, started["executionArn"])
    assert (failed["status"], failed["error"]) == (
        "FAILED",
        "States.ExceedToleratedFailureThreshold",
    )
    assert failed["redriveStatus"] == "REDRIVABLE"
    function.bad = set()
    sfn.redrive_execution(executionArn=started["executionArn"])
    done = wait_done(sfn, started["executionArn"])
    assert done["status"] == "SUCCEEDED", done.get("cause")
    assert done["redriveCount"] == 1
    (run,) = sfn.list_map_runs(executionArn=started["executionArn"])["mapRuns"]
    assert sfn.describe_map_run(mapRunArn=run["mapRunArn"])["itemCounts"]["succeeded"] == 8


def test_boto3_errors_sync_execution_and_unnamed_start(endpoint: tuple[str, Any]) -> None:
    url, _ = endpoint
    sfn = _sfn(url)
    with pytest.raises(ClientError) as info:
        sfn.describe_execution(
            executionArn="arn:aws:states:us-east-1:123456789012:execution:none:x"
        )
    assert info.value.response["Error"]["Code"] == "ExecutionDoesNotExist"
    express = sfn.create_state_machine(
        name="quick",
        roleArn=ROLE,
        type="EXPRESS",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]
    result = sfn.start_sync_execution(stateMachineArn=express, input='{"q": 1}')
    assert (result["status"], json.loads(result["output"])) == ("SUCCEEDED", {"q": 1})
    standard = sfn.create_state_machine(
        name="std",
        roleArn=ROLE,
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]
    started = sfn.start_execution(stateMachineArn=standard)
    assert not started["executionArn"].endswith(":None")
    listed = sfn.list_state_machines()["stateMachines"]
    assert {m["name"] for m in listed} == {"quick", "std"}


def test_server_module_serves_boto3_from_the_command_line() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sluice.local.workflow.server", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert f"127.0.0.1:{port}" in process.stdout.readline()
        sfn = _sfn(f"http://127.0.0.1:{port}")
        assert sfn.list_state_machines()["stateMachines"] == []
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0
