"""Roles, credentials and resource policies of the local runtime (fixture templates), exercised
over its HTTP endpoint and its CLI."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from click.testing import CliRunner, Result

from sluice.cli import cli
from sluice.local.runtime import LocalRuntime
from tests.integration.local.conftest import Waiter

QUEUE = "sluice-test-worker-queue"
TABLE = "sluice-test-ledger"
WORKER = "sluice-test-worker"


async def _sluice(runtime: LocalRuntime, *args: str) -> Result:
    # The CLI blocks on the control API, which this very event loop serves: run it in a thread.
    port = str(runtime.options.port)
    return await asyncio.to_thread(
        CliRunner().invoke, cli, ["--stage", "test", "local", args[0], *args[1:], "--port", port]
    )


def _exports(output: str) -> dict[str, str]:
    pairs = (line.removeprefix("export ").split("=", 1) for line in output.splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2 and p[0].startswith("AWS_")}


async def test_roles_are_provisioned_in_iam_and_not_skipped(
    runtime: LocalRuntime, aws: Any
) -> None:
    # GIVEN the fixture stacks WHEN up provisioned them
    role_arn = runtime.runner.functions[WORKER].role_arn
    # THEN the worker's SAM-generated role exists in IAM with its generated policies
    async with aws("iam") as iam:
        role = (await iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1]))["Role"]
        attached = (await iam.list_attached_role_policies(RoleName=role["RoleName"]))[
            "AttachedPolicies"
        ]
        inline = (await iam.list_role_policies(RoleName=role["RoleName"]))["PolicyNames"]
    assert role["Arn"] == role_arn
    assert "lambda.amazonaws.com" in json.dumps(role["AssumeRolePolicyDocument"])
    assert "AWSLambdaBasicExecutionRole" in {p["PolicyName"] for p in attached}
    assert inline  # the DynamoDBCrudPolicy template, expanded by SAM
    by_type = {(r.type, r.action) for r in runtime.reports}
    assert ("AWS::IAM::Role", "created") in by_type
    assert ("AWS::Lambda::Permission", "created") in by_type
    skipped = {r.type for r in runtime.reports if r.action == "skipped"}
    assert skipped == {"AWS::CloudWatch::Dashboard"}


async def test_a_function_worker_calls_with_its_role_credentials(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    # GIVEN a message asking the worker who it is
    async with aws("sqs") as sqs, aws("dynamodb") as ddb:
        url = (await sqs.get_queue_url(QueueName=QUEUE))["QueueUrl"]
        await sqs.send_message(
            QueueUrl=url, MessageBody=json.dumps({"action": "whoami", "id": "w"})
        )

        async def recorded() -> Any:
            item = (
                await ddb.get_item(TableName=TABLE, Key={"PK": {"S": "MSG#w"}, "SK": {"S": "META"}})
            ).get("Item")
            return item and json.loads(item["last_event"]["S"])

        event = await wait_for(recorded, timeout=30)
    # THEN STS saw a session of the function's role, named after the function (as on Lambda)
    role_name = runtime.runner.functions[WORKER].role_arn.rsplit("/", 1)[-1]
    assert event["caller"] == f"arn:aws:sts::123456789012:assumed-role/{role_name}/{WORKER}"


async def test_local_credentials_prints_the_function_role_session(
    runtime: LocalRuntime, aws: Any
) -> None:
    # WHEN `sluice local credentials` is asked for the worker
    result = await _sluice(runtime, "credentials", WORKER)
    assert result.exit_code == 0, result.output
    env = _exports(result.output)
    # THEN its keys are the ones the worker carries, and STS names the worker's role session
    assert set(env) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    config = runtime.runner.functions[WORKER]
    assert runtime.runner.worker_env(config)["AWS_ACCESS_KEY_ID"] == env["AWS_ACCESS_KEY_ID"]
    import aioboto3

    session = aioboto3.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
        region_name="us-east-1",
    )
    async with session.client("sts", endpoint_url=runtime.endpoint_url) as sts:
        identity = await sts.get_caller_identity()
    assert identity["Arn"].endswith(f":assumed-role/{config.role_arn.rsplit('/', 1)[-1]}/{WORKER}")


async def test_local_credentials_of_an_unknown_name_is_an_error(runtime: LocalRuntime) -> None:
    result = await _sluice(runtime, "credentials", "no-such-function")
    assert result.exit_code != 0
    assert "no function or role named no-such-function" in result.output


# ---------------------------------------------------------------- enforcement

BUS = "sluice-test"
RAW_BUCKET = "sluice-test-raw-123456789012"
BUS_RULE_ARN = f"arn:aws:events:us-east-1:123456789012:rule/{BUS}/sluice-test-worker-bus"
QUEUE_ARN = f"arn:aws:sqs:us-east-1:123456789012:{QUEUE}"


async def _worker_session(runtime: LocalRuntime) -> Any:
    import aioboto3

    env = _exports((await _sluice(runtime, "credentials", WORKER)).output)
    return aioboto3.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
        region_name="us-east-1",
    )


async def _outside_grants(runtime: LocalRuntime) -> list[str]:
    """Calls the worker's role does not grant, made with its credentials: the error codes."""
    from botocore.exceptions import ClientError

    session = await _worker_session(runtime)
    codes = []
    async with session.client("s3", endpoint_url=runtime.endpoint_url) as s3:
        try:
            await s3.put_object(Bucket=RAW_BUCKET, Key="forged.csv", Body=b"a\n")
            codes.append("allowed")
        except ClientError as exc:
            codes.append(str(exc.response["Error"]["Code"]))
    async with session.client("events", endpoint_url=runtime.endpoint_url) as events:
        try:
            await events.put_events(
                Entries=[
                    {"Source": "sluice.x", "DetailType": "t", "Detail": "{}", "EventBusName": BUS}
                ]
            )
            codes.append("allowed")
        except ClientError as exc:
            codes.append(str(exc.response["Error"]["Code"]))
    return codes


async def test_a_call_outside_the_role_grants_is_denied_and_reported(
    runtime: LocalRuntime, aws: Any
) -> None:
    # GIVEN the worker's credentials (its role may use the ledger table and its queue, no more)
    # WHEN they write to the raw bucket and put an event
    codes = await _outside_grants(runtime)
    # THEN both are refused with AWS's codes
    assert codes == ["AccessDenied", "AccessDeniedException"]
    # AND the denials are in the runtime's state, naming principal, action and resource
    state = runtime.describe()["iam"]
    assert state["enabled"] is True
    assert state["denials"] >= 2
    role_name = runtime.runner.functions[WORKER].role_arn.rsplit("/", 1)[-1]
    session_arn = f"arn:aws:sts::123456789012:assumed-role/{role_name}/{WORKER}"
    denied = {(d["principal"], d["action"], d["resource"]) for d in state["recent_denials"]}
    assert (session_arn, "s3:PutObject", f"arn:aws:s3:::{RAW_BUCKET}/forged.csv") in denied
    # AND `sluice status` against the runtime shows them
    async with aws("ssm") as ssm:
        await ssm.put_parameter(
            Name="/sluice/test/ledger-table-name", Value=TABLE, Type="String", Overwrite=True
        )
    status = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["--endpoint-url", runtime.endpoint_url, "--stage", "test", "status"],
    )
    assert status.exit_code == 0, status.output
    assert f"IAM enforced: {state['denials']} denial(s)" in status.output
    assert "s3:PutObject" in status.output
    assert session_arn in status.output


async def test_the_runtime_itself_and_unknown_keys_act_as_the_account_root(
    runtime: LocalRuntime, aws: Any
) -> None:
    # GIVEN the dummy keys every existing client uses WHEN they write to the raw bucket
    async with aws("s3") as s3:
        await s3.put_object(Bucket=RAW_BUCKET, Key="root.csv", Body=b"a\n")
    # THEN nothing is denied
    assert runtime.describe()["iam"]["denials"] == 0


async def test_no_iam_allows_what_the_role_does_not_grant(
    moto_endpoint: str, tmp_path: Any
) -> None:
    from sluice.local.runtime import LocalRuntime as Runtime
    from tests.integration.local.conftest import fixture_options
    from tests.processes import free_port

    # GIVEN a runtime started with --no-iam
    options = fixture_options(tmp_path / "state", free_port())
    options.iam = False
    options.prewarm = False
    runtime = Runtime(options)
    await runtime.start()
    try:
        # WHEN the worker's credentials make the calls its role does not grant
        codes = await _outside_grants(runtime)
        # THEN they are allowed, and the state says enforcement is off
        assert codes == ["allowed", "allowed"]
        assert runtime.describe()["iam"]["enabled"] is False
        assert runtime.describe()["iam"]["denials"] == 0
    finally:
        await runtime.stop()


async def test_rule_to_queue_delivery_honours_the_queue_policy(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    async def put(ident: str) -> None:
        await events.put_events(
            Entries=[
                {
                    "Source": "test.producer",
                    "DetailType": "t",
                    "Detail": json.dumps({"id": ident}),
                    "EventBusName": BUS,
                }
            ]
        )

    async def processed(ident: str) -> int:
        item = (
            await ddb.get_item(
                TableName=TABLE, Key={"PK": {"S": f"MSG#{ident}"}, "SK": {"S": "META"}}
            )
        ).get("Item")
        return int((item or {}).get("processed", {}).get("N", 0))

    def policy(source_arn: str) -> str:
        statement = {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": QUEUE_ARN,
            "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}},
        }
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    async with aws("events") as events, aws("dynamodb") as ddb, aws("sqs") as sqs:
        url = (await sqs.get_queue_url(QueueName=QUEUE))["QueueUrl"]
        # GIVEN a queue policy that lets only another rule send
        other = "arn:aws:events:us-east-1:123456789012:rule/sluice-test-worker-raw"
        await sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy(other)})
        # WHEN the bus rule matches an event THEN it is not delivered; the denial is counted
        await put("refused")
        targets = runtime.describe()["iam"]["rule_targets"]
        assert targets["denied"] == 1
        assert targets["dropped"] == 1  # the bus rule's target has no DLQ
        denial = runtime.describe()["iam"]["recent_denials"][-1]
        assert (denial["principal"], denial["action"], denial["resource"]) == (
            "events.amazonaws.com",
            "sqs:SendMessage",
            QUEUE_ARN,
        )
        # GIVEN the policy names the bus rule WHEN the next event matches THEN it is delivered
        await sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy(BUS_RULE_ARN)})
        await put("allowed")
        assert await wait_for(lambda: processed("allowed")) == 1
        assert await processed("refused") == 0


async def _run(sfn: Any, arn: str, wait_for: Waiter) -> dict[str, Any]:
    started = await sfn.start_execution(stateMachineArn=arn, input="{}")

    async def finished() -> Any:
        described = await sfn.describe_execution(executionArn=started["executionArn"])
        return described if described["status"] != "RUNNING" else None

    result: dict[str, Any] = await wait_for(finished, timeout=30)
    return result


async def test_a_state_machine_invokes_lambda_only_with_its_role_grant(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    flow = "arn:aws:states:us-east-1:123456789012:stateMachine:sluice-test-flow"
    async with aws("stepfunctions") as sfn, aws("iam") as iam:
        # GIVEN the flow's role allows invoking the tick function THEN the task runs
        assert (await _run(sfn, flow, wait_for))["status"] == "SUCCEEDED"
        # WHEN the grant is removed from the role
        role_arn = (await sfn.describe_state_machine(stateMachineArn=flow))["roleArn"]
        role = role_arn.rsplit("/", 1)[-1]
        for name in (await iam.list_role_policies(RoleName=role))["PolicyNames"]:
            await iam.delete_role_policy(RoleName=role, PolicyName=name)
        # THEN the Lambda task fails with AWS's error, and the denial names the role's session
        failed = await _run(sfn, flow, wait_for)
    assert failed["status"] == "FAILED"
    assert failed["error"] == "Lambda.AccessDeniedException"
    assert "lambda:InvokeFunction" in failed["cause"]
    denial = runtime.describe()["iam"]["recent_denials"][-1]
    assert denial["principal"].startswith(f"arn:aws:sts::123456789012:assumed-role/{role}/")


async def test_state_machine_sdk_calls_use_the_execution_role(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "states.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    definition = {
        "StartAt": "Read",
        "States": {
            "Read": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:dynamodb:getItem",
                "Parameters": {"TableName": TABLE, "Key": {"PK": {"S": "x"}, "SK": {"S": "y"}}},
                "End": True,
            }
        },
    }
    grant = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}],
    }
    async with aws("stepfunctions") as sfn, aws("iam") as iam:
        # GIVEN a state machine whose role has no grant at all
        role = (
            await iam.create_role(RoleName="reader", AssumeRolePolicyDocument=json.dumps(trust))
        )["Role"]
        machine = await sfn.create_state_machine(
            name="reader", definition=json.dumps(definition), roleArn=role["Arn"]
        )
        # WHEN it reads the table THEN the SDK call is refused as the role
        failed = await _run(sfn, machine["stateMachineArn"], wait_for)
        assert failed["status"] == "FAILED"
        assert failed["error"] == "DynamoDb.AccessDeniedException"
        assert "assumed-role/reader/" in failed["cause"]
        # WHEN the role is granted GetItem THEN the same call succeeds
        await iam.put_role_policy(
            RoleName="reader", PolicyName="read", PolicyDocument=json.dumps(grant)
        )
        assert (await _run(sfn, machine["stateMachineArn"], wait_for))["status"] == "SUCCEEDED"


async def test_the_mapping_polls_only_while_the_role_may_receive(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    role = runtime.runner.functions[WORKER].role_arn.rsplit("/", 1)[-1]
    async with aws("iam") as iam, aws("sqs") as sqs, aws("dynamodb") as ddb:
        attached = (await iam.list_attached_role_policies(RoleName=role))["AttachedPolicies"]
        (sqs_policy,) = [p["PolicyArn"] for p in attached if "SQS" in p["PolicyName"]]
        # GIVEN the role loses its SQS grant after the mapping was created
        await iam.detach_role_policy(RoleName=role, PolicyArn=sqs_policy)

        async def receives_denied() -> bool:
            denials = [
                d
                for d in runtime.describe()["iam"]["recent_denials"]
                if d["action"] == "sqs:ReceiveMessage" and d["resource"] == QUEUE_ARN
            ]
            # every polling loop (2) has been refused at least once since: none is mid-receive
            return len(denials) >= 3

        # THEN the pollers are refused
        await wait_for(receives_denied, timeout=15)

        async def processed() -> int:
            item = (
                await ddb.get_item(
                    TableName=TABLE, Key={"PK": {"S": "MSG#gated"}, "SK": {"S": "META"}}
                )
            ).get("Item")
            return int((item or {}).get("processed", {}).get("N", 0))

        # AND a message sent now stays unprocessed
        url = (await sqs.get_queue_url(QueueName=QUEUE))["QueueUrl"]
        await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": "gated"}))
        await asyncio.sleep(3)
        assert await processed() == 0
        # WHEN the grant is back THEN the message is processed
        await iam.attach_role_policy(RoleName=role, PolicyArn=sqs_policy)
        assert await wait_for(processed, timeout=30) == 1


async def test_a_schedule_starts_its_target_only_as_a_role_that_trusts_the_scheduler(
    runtime: LocalRuntime, aws: Any
) -> None:
    schedule = "sluice-test-flow-daily"
    (role_name,) = [r.physical_id for r in runtime.reports if r.logical_id == "FlowScheduleRole"]
    async with aws("iam") as iam:
        # GIVEN the schedule's role trusts the scheduler and may start the flow THEN it fires
        assert "denied" not in await runtime.fire(schedule)
        # WHEN the role trusts only Lambda
        lambda_only = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        await iam.update_assume_role_policy(
            RoleName=role_name, PolicyDocument=json.dumps(lambda_only)
        )
        fired = await runtime.fire(schedule)
    # THEN the scheduler cannot assume it: refused, counted, named
    assert "scheduler.amazonaws.com is not authorized to perform: sts:AssumeRole" in fired["denied"]
    assert fired["dead_lettered"] is False  # the fixture's target has no DLQ
    assert runtime.describe()["iam"]["schedule_denials"] == 1


async def test_up_fails_when_a_mapping_role_may_not_receive_from_its_queue(
    moto_endpoint: str, tmp_path: Any
) -> None:
    import pytest

    from sluice.local.errors import ProvisioningError
    from sluice.local.runtime import LocalRuntime as Runtime
    from tests.integration.local.conftest import FIXTURES, fixture_options
    from tests.processes import free_port

    # GIVEN a function whose explicit role has no SQS grant, triggered by a queue
    template = tmp_path / "service.yaml"
    template.write_text(
        f"""
Transform: AWS::Serverless-2016-10-31
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {{Service: lambda.amazonaws.com}}
            Action: sts:AssumeRole
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {FIXTURES / "fn"}
      Handler: worker.tick_handler
      Runtime: python3.12
      Role: !GetAtt Role.Arn
      Events:
        Queue:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
"""
    )
    options = fixture_options(tmp_path / "state", free_port())
    options.templates = [FIXTURES / "platform.yaml", template]
    options.prewarm = False
    # WHEN up provisions it THEN it fails as CreateEventSourceMapping does, naming the action
    with pytest.raises(ProvisioningError, match="permissions to call ReceiveMessage on SQS"):
        await Runtime(options).start()


async def test_rule_to_lambda_delivery_needs_the_function_policy(
    runtime: LocalRuntime, aws: Any
) -> None:
    tick = "arn:aws:lambda:us-east-1:123456789012:function:sluice-test-tick"
    async with aws("events") as events:
        # GIVEN a rule added through the API with no Lambda permission for it
        await events.put_rule(Name="probe", EventPattern=json.dumps({"source": ["probe"]}))
        await events.put_targets(Rule="probe", Targets=[{"Id": "tick", "Arn": tick}])
        # WHEN it matches an event THEN EventBridge may not invoke the function
        await events.put_events(Entries=[{"Source": "probe", "DetailType": "t", "Detail": "{}"}])
    targets = runtime.describe()["iam"]["rule_targets"]
    assert (targets["denied"], targets["dropped"]) == (1, 1)
    denial = runtime.describe()["iam"]["recent_denials"][-1]
    assert (denial["principal"], denial["action"], denial["resource"]) == (
        "events.amazonaws.com",
        "lambda:InvokeFunction",
        tick,
    )
    # AND the template's own schedule rule, which the function's policy names, still delivers
    await runtime.fire("sluice-test-tick")
    targets = runtime.describe()["iam"]["rule_targets"]
    assert (targets["denied"], targets["delivered"]) == (1, 1)
