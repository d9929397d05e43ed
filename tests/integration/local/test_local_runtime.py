"""The local runtime provisioned from the fixture templates, exercised over its HTTP endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import boto3
import pytest

from sluice.local.errors import PortInUseError
from sluice.local.runtime import LocalRuntime
from tests.integration.local.conftest import Waiter, fixture_options

QUEUE = "sluice-test-worker-queue"
DLQ = "sluice-test-worker-dlq"
TABLE = "sluice-test-ledger"


async def _url(sqs: Any, name: str) -> str:
    return str((await sqs.get_queue_url(QueueName=name))["QueueUrl"])


async def _processed(ddb: Any, ident: str) -> int:
    item = (
        await ddb.get_item(TableName=TABLE, Key={"PK": {"S": f"MSG#{ident}"}, "SK": {"S": "META"}})
    ).get("Item") or {}
    # moto's UpdateItem creates the item before it applies the update: a read in between sees
    # the keys alone.
    return int(item.get("processed", {}).get("N", 0))


async def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    response = await sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )
    return list(response.get("Messages", []))


async def _gone(sqs: Any, name: str) -> bool:
    attributes = (
        await sqs.get_queue_attributes(QueueUrl=await _url(sqs, name), AttributeNames=["All"])
    )["Attributes"]
    counters = (
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    )
    return all(attributes[counter] == "0" for counter in counters)


async def test_up_provisions_template_names_and_settings(runtime: LocalRuntime, aws: Any) -> None:
    async with aws("sqs") as sqs, aws("dynamodb") as ddb, aws("ssm") as ssm, aws("s3") as s3:
        attrs = (
            await sqs.get_queue_attributes(QueueUrl=await _url(sqs, QUEUE), AttributeNames=["All"])
        )["Attributes"]
        assert attrs["VisibilityTimeout"] == "6"
        redrive = json.loads(attrs["RedrivePolicy"])
        assert redrive["maxReceiveCount"] == 2
        assert redrive["deadLetterTargetArn"].endswith(f":{DLQ}")
        table = (await ddb.describe_table(TableName=TABLE))["Table"]
        assert [g["IndexName"] for g in table["GlobalSecondaryIndexes"]] == ["gsi1"]
        param = await ssm.get_parameter(Name="/sluice/test/raw-bucket")
        bucket = param["Parameter"]["Value"]
        assert bucket == "sluice-test-raw-123456789012"
        versioning = await s3.get_bucket_versioning(Bucket=bucket)
        assert versioning["Status"] == "Enabled"
    env = runtime.runner.functions["sluice-test-worker"].env
    assert dict(env)["SLUICE_LEDGER_TABLE"] == TABLE
    assert dict(env)["SLUICE_STAGE_KIND"] == "development"
    skipped = {(r.logical_id, r.note) for r in runtime.reports if r.action == "skipped"}
    assert ("Dashboard", "no CloudWatch metrics locally") in skipped


async def test_boto3_aioboto3_and_aws_cli_share_the_endpoint(
    runtime: LocalRuntime, aws: Any, tmp_path: Path
) -> None:
    # GIVEN a file copied in with the AWS CLI
    source = tmp_path / "hello.csv"
    source.write_text("a,b\n1,2\n")
    cli = shutil.which("aws")
    assert cli is not None, "the AWS CLI is part of the machine's base Python"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    env.pop("AWS_ENDPOINT_URL", None)
    proc = await asyncio.create_subprocess_exec(
        cli,
        "--endpoint-url",
        runtime.endpoint_url,
        "s3",
        "cp",
        str(source),
        "s3://sluice-test-raw-123456789012/cli/hello.csv",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()

    # WHEN boto3 (sync) and aioboto3 read it back
    def read_sync() -> bytes:
        s3 = boto3.client("s3", endpoint_url=runtime.endpoint_url, region_name="us-east-1")
        body: bytes = s3.get_object(Bucket="sluice-test-raw-123456789012", Key="cli/hello.csv")[
            "Body"
        ].read()
        return body

    sync_body = await asyncio.to_thread(read_sync)
    async with aws("s3") as s3:
        head = await s3.head_object(Bucket="sluice-test-raw-123456789012", Key="cli/hello.csv")
        response = await s3.get_object(Bucket="sluice-test-raw-123456789012", Key="cli/hello.csv")
        async_body = await response["Body"].read()
    # THEN all three agree
    assert sync_body == async_body == b"a,b\n1,2\n"
    assert head["ContentLength"] == 8


async def test_s3_put_flows_through_default_bus_rule_queue_and_function(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    async with aws("s3") as s3, aws("dynamodb") as ddb, aws("sqs") as sqs:
        put = await s3.put_object(
            Bucket="sluice-test-raw-123456789012", Key="orders/x.csv", Body=b"id\n1\n"
        )

        async def delivered() -> list[dict[str, Any]]:
            items = (await ddb.scan(TableName=TABLE))["Items"]
            return [json.loads(i["last_event"]["S"]) for i in items if "last_event" in i]

        events = await wait_for(delivered)
        # the custom-bus rule that also matches aws.s3 never fires (AWS: default bus only)
        assert await _drain(sqs, await _url(sqs, DLQ)) == []
    (event,) = events
    assert event["detail-type"] == "Object Created"
    assert event["detail"]["object"]["version-id"] == put["VersionId"]
    assert event["detail"]["object"]["etag"] == put["ETag"].strip('"')
    assert "sequencer" in event["detail"]["object"]


async def test_bus_rule_input_path_applies_and_disabled_rule_stays_silent(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    async with aws("events") as events, aws("dynamodb") as ddb, aws("sqs") as sqs:
        await events.put_events(
            Entries=[
                {
                    "Source": "test.producer",
                    "DetailType": "t",
                    "Detail": json.dumps({"id": "via-bus"}),
                    "EventBusName": "sluice-test",
                }
            ]
        )
        assert await wait_for(lambda: _processed(ddb, "via-bus")) == 1
        item = await ddb.get_item(
            TableName=TABLE, Key={"PK": {"S": "MSG#via-bus"}, "SK": {"S": "META"}}
        )
        assert json.loads(item["Item"]["last_event"]["S"]) == {"id": "via-bus"}
        assert await _drain(sqs, await _url(sqs, DLQ)) == []


async def test_handler_raises_message_retried_then_dead_lettered(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    # GIVEN a message the handler always raises on (maxReceiveCount 2, visibility 6 s)
    async with aws("sqs") as sqs:
        await sqs.send_message(
            QueueUrl=await _url(sqs, QUEUE), MessageBody=json.dumps({"action": "raise"})
        )
        dlq = await _url(sqs, DLQ)
        # THEN it reaches the DLQ after two failed receives
        moved = await wait_for(lambda: _drain(sqs, dlq), timeout=90)
    assert json.loads(moved[0]["Body"]) == {"action": "raise"}
    assert int(moved[0]["Attributes"]["ApproximateReceiveCount"]) >= 2
    stats = runtime.runner.stats()["sluice-test-worker"]
    assert stats["errors"] >= 2


async def test_partial_batch_failure_deletes_only_successes(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    async with aws("sqs") as sqs, aws("dynamodb") as ddb:
        url = await _url(sqs, QUEUE)
        await sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": "a", "MessageBody": json.dumps({"id": "ok-a"})},
                {"Id": "b", "MessageBody": json.dumps({"action": "fail-item", "id": "bad"})},
                {"Id": "c", "MessageBody": json.dumps({"id": "ok-c"})},
            ],
        )
        dlq = await _url(sqs, DLQ)
        moved = await wait_for(lambda: _drain(sqs, dlq), timeout=90)
        assert [json.loads(m["Body"])["id"] for m in moved] == ["bad"]
        # the successes were deleted after their first batch: processed exactly once
        assert await _processed(ddb, "ok-a") == 1
        assert await _processed(ddb, "ok-c") == 1


async def test_worker_killed_mid_batch_message_redelivered_and_processed_once(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    # GIVEN a message whose first delivery kills the worker process
    async with aws("sqs") as sqs, aws("dynamodb") as ddb:
        await sqs.send_message(
            QueueUrl=await _url(sqs, QUEUE),
            MessageBody=json.dumps({"action": "crash-once", "id": "phoenix"}),
        )
        # THEN after the visibility timeout it is delivered again and processed, and once the
        # message has left the queue (deleted: nothing visible, in flight or delayed) no later
        # delivery can process it again, however slowly this machine runs
        assert await wait_for(lambda: _processed(ddb, "phoenix"), timeout=90) == 1
        await wait_for(lambda: _gone(sqs, QUEUE), timeout=90)
        assert await _processed(ddb, "phoenix") == 1
        assert await _drain(sqs, await _url(sqs, DLQ)) == []
    log = (runtime.state_dir / "logs" / "sluice-test-worker.log").read_text()
    assert "Runtime.ExitError" in log


async def test_invoke_timeout_reports_function_error_and_log_tail(
    runtime: LocalRuntime,
) -> None:
    def invoke() -> dict[str, Any]:
        client = boto3.client("lambda", endpoint_url=runtime.endpoint_url, region_name="us-east-1")
        event = {
            "Records": [{"messageId": "m", "body": json.dumps({"action": "sleep", "seconds": 5})}]
        }
        response = client.invoke(
            FunctionName="sluice-test-worker", Payload=json.dumps(event).encode(), LogType="Tail"
        )
        result: dict[str, Any] = {**response}
        result["body"] = json.loads(result["Payload"].read())
        return result

    result = await asyncio.to_thread(invoke)
    assert result["StatusCode"] == 200
    assert result["FunctionError"] == "Unhandled"
    assert result["body"]["errorType"] == "Sandbox.Timedout"
    tail = base64.b64decode(result["LogResult"]).decode()
    assert "Task timed out after 3.00 seconds" in tail
    assert "REPORT RequestId:" in tail


async def test_invoke_event_and_unknown_function(runtime: LocalRuntime, wait_for: Waiter) -> None:
    client = boto3.client("lambda", endpoint_url=runtime.endpoint_url, region_name="us-east-1")
    accepted = await asyncio.to_thread(
        client.invoke,
        FunctionName="sluice-test-tick",
        InvocationType="Event",
        Payload=b'{"id": "async"}',
    )
    assert accepted["StatusCode"] == 202
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        await asyncio.to_thread(client.invoke, FunctionName="nope", Payload=b"{}")

    async def invoked() -> int:
        return runtime.runner.stats()["sluice-test-tick"]["invocations"]

    assert await wait_for(invoked) == 1


async def test_schedule_fire_sends_scheduled_event_to_function_and_state_machine(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    # WHEN the rule schedule and the Scheduler schedule are triggered
    await runtime.fire("sluice-test-tick")
    await runtime.fire("sluice-test-flow-daily")
    async with aws("dynamodb") as ddb, aws("stepfunctions") as sfn:

        async def ticks() -> list[dict[str, Any]]:
            items = (await ddb.scan(TableName=TABLE))["Items"]
            return [
                json.loads(i["event"]["S"])
                for i in items
                if i["PK"]["S"].startswith("TICK#") and "event" in i
            ]

        events = await wait_for(lambda: _at_least(ticks, 2), timeout=90)
        machine = "arn:aws:states:us-east-1:123456789012:stateMachine:sluice-test-flow"
        executions = (await sfn.list_executions(stateMachineArn=machine))["executions"]
        assert len(executions) == 1
        done = await wait_for(lambda: _succeeded(sfn, executions[0]["executionArn"]), timeout=90)
    scheduled = next(e for e in events if e.get("detail-type") == "Scheduled Event")
    assert scheduled["source"] == "aws.events"
    assert scheduled["resources"][0].endswith(":rule/sluice-test-tick")
    assert json.loads(done["input"])["id"] == "scheduled"
    assert json.loads(done["output"]) == {"ok": True, "function": "sluice-test-tick"}


async def _at_least(probe: Any, count: int) -> list[Any] | None:
    found: list[Any] = await probe()
    return found if len(found) >= count else None


async def _succeeded(sfn: Any, arn: str) -> dict[str, Any] | None:
    described: dict[str, Any] = await sfn.describe_execution(executionArn=arn)
    return described if described["status"] == "SUCCEEDED" else None


async def test_reprovision_is_idempotent_and_keeps_state(runtime: LocalRuntime, aws: Any) -> None:
    async with aws("sqs") as sqs:
        dlq = await _url(sqs, DLQ)
        await sqs.send_message(QueueUrl=dlq, MessageBody="kept")
        before = {(r.logical_id, r.physical_id) for r in runtime.reports}
        await runtime.provision()
        after = {(r.logical_id, r.physical_id) for r in runtime.reports}
        assert before == after
        assert [m["Body"] for m in await _drain(sqs, dlq)] == ["kept"]
    assert len(runtime.pollers) == 1


async def test_second_runtime_on_same_port_reports_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        rt = LocalRuntime(fixture_options(tmp_path, port))
        with pytest.raises(PortInUseError, match=f"port {port} .* in use by pid {os.getpid()}"):
            await rt.start()


async def test_unknown_schedule_trigger_is_an_error(runtime: LocalRuntime) -> None:
    from sluice.local.errors import LocalRuntimeError

    with pytest.raises(LocalRuntimeError, match="no schedule or rule named ghost"):
        await runtime.fire("ghost")


async def test_lambda_get_and_list_functions_describe_template_functions(
    runtime: LocalRuntime,
) -> None:
    client = boto3.client("lambda", endpoint_url=runtime.endpoint_url, region_name="us-east-1")
    listed = await asyncio.to_thread(client.list_functions)
    names = sorted(f["FunctionName"] for f in listed["Functions"])
    assert names == ["sluice-test-tick", "sluice-test-worker"]
    got = await asyncio.to_thread(client.get_function, FunctionName="sluice-test-worker")
    config = got["Configuration"]
    assert config["Timeout"] == 3
    assert config["MemorySize"] == 256
    assert config["Environment"]["Variables"]["SLUICE_LEDGER_TABLE"] == TABLE
