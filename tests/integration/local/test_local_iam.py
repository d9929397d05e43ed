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
