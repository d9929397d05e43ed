"""The optimised Task integrations through the local runtime, as a team's state machine uses them:
SNS and SQS through the embedded moto as the execution role, a child execution with
`startExecution.sync:2`, a `.waitForTaskToken` Lambda task completed by SendTaskSuccess over the
endpoint, and an unsupported resource refused at CreateStateMachine.

AWS pages followed:
- https://docs.aws.amazon.com/step-functions/latest/dg/connect-sns.html
- https://docs.aws.amazon.com/step-functions/latest/dg/connect-sqs.html
- https://docs.aws.amazon.com/step-functions/latest/dg/connect-stepfunctions.html
- https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sluice.local.runtime import LocalRuntime
from tests.integration.local.conftest import Waiter

TABLE = "sluice-test-ledger"
TICK = "arn:aws:lambda:us-east-1:123456789012:function:sluice-test-tick"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "states.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def _grant(*actions: str) -> str:
    statement = [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]
    return json.dumps({"Version": "2012-10-17", "Statement": statement})


async def _role(iam: Any, name: str, *actions: str) -> str:
    role = await iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))
    if actions:
        await iam.put_role_policy(
            RoleName=name, PolicyName="grant", PolicyDocument=_grant(*actions)
        )
    return str(role["Role"]["Arn"])


async def _finished(sfn: Any, arn: str, wait_for: Waiter) -> dict[str, Any]:
    async def done() -> Any:
        described = await sfn.describe_execution(executionArn=arn)
        return described if described["status"] != "RUNNING" else None

    result: dict[str, Any] = await wait_for(done, timeout=60)
    return result


def _machine(queue_url: str, topic_arn: str, child_arn: str) -> dict[str, Any]:
    return {
        "Comment": "Notify, enqueue, run a child to completion, then wait for an approval.",
        "StartAt": "Notify",
        "States": {
            "Notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": topic_arn, "Message.$": "$"},
                "ResultPath": "$.published",
                "Next": "Enqueue",
            },
            "Enqueue": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": queue_url, "MessageBody": {"order.$": "$.order"}},
                "ResultPath": "$.sent",
                "Next": "Price",
            },
            "Price": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn": child_arn, "Input": {"order.$": "$.order"}},
                "ResultSelector": {"price.$": "$.Output.price", "status.$": "$.Status"},
                "ResultPath": "$.child",
                "Next": "Approve",
            },
            "Approve": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": TICK,
                    "Payload": {"id.$": "$$.Execution.Name", "token.$": "$$.Task.Token"},
                },
                "HeartbeatSeconds": 600,
                "ResultPath": "$.approval",
                "End": True,
            },
        },
    }


_CHILD = {
    "StartAt": "Quote",
    "States": {"Quote": {"Type": "Pass", "Parameters": {"price": 42}, "End": True}},
}


async def test_sns_sqs_child_sync2_and_a_callback_lambda_task_complete_through_the_runtime(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    async with (
        aws("stepfunctions") as sfn,
        aws("iam") as iam,
        aws("sns") as sns,
        aws("sqs") as sqs,
        aws("dynamodb") as ddb,
    ):
        # GIVEN a topic with a queue subscribed, a work queue, a child state machine, and a
        # parent whose role may do exactly what its tasks need
        topic = (await sns.create_topic(Name="orders"))["TopicArn"]
        inbox = (await sqs.create_queue(QueueName="order-notices"))["QueueUrl"]
        inbox_arn = (await sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"]))[
            "Attributes"
        ]["QueueArn"]
        await sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=inbox_arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        work = (await sqs.create_queue(QueueName="order-work"))["QueueUrl"]
        role = await _role(
            iam,
            "orders-flow",
            "sns:Publish",
            "sqs:SendMessage",
            "states:StartExecution",
            "states:DescribeExecution",
            "states:StopExecution",
            "events:PutTargets",
            "events:PutRule",
            "events:DescribeRule",
            "lambda:InvokeFunction",
        )
        child = await sfn.create_state_machine(
            name="pricing", definition=json.dumps(_CHILD), roleArn=role
        )
        parent = await sfn.create_state_machine(
            name="orders",
            definition=json.dumps(_machine(work, topic, child["stateMachineArn"])),
            roleArn=role,
        )
        # WHEN an execution starts
        started = await sfn.start_execution(
            stateMachineArn=parent["stateMachineArn"], name="order-7", input='{"order": 7}'
        )

        # THEN the callback task hands its token to the function (the tick fixture records
        # its event) and waits; an approver answers through the endpoint
        async def token() -> Any:
            item = await ddb.get_item(
                TableName=TABLE, Key={"PK": {"S": "TICK#order-7"}, "SK": {"S": "META"}}
            )
            return item.get("Item")

        recorded = await wait_for(token, timeout=60)
        handed = json.loads(recorded["event"]["S"])["token"]
        running = await sfn.describe_execution(executionArn=started["executionArn"])
        assert running["status"] == "RUNNING"
        await sfn.send_task_heartbeat(taskToken=handed)
        await sfn.send_task_success(taskToken=handed, output='{"approved": true}')
        done = await _finished(sfn, started["executionArn"], wait_for)

        # THEN every task completed with the documented result shapes
        assert done["status"] == "SUCCEEDED", done.get("cause")
        output = json.loads(done["output"])
        assert output["approval"] == {"approved": True}
        assert output["child"] == {"price": 42, "status": "SUCCEEDED"}
        assert output["published"]["MessageId"]
        assert output["published"]["SdkHttpMetadata"]["HttpStatusCode"] == 200
        assert output["sent"]["MessageId"]
        assert output["sent"]["MD5OfMessageBody"]
        # AND the messages really went through SNS and SQS
        notice = await sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=5)
        assert json.loads(notice["Messages"][0]["Body"]) == {"order": 7}
        queued = await sqs.receive_message(QueueUrl=work, WaitTimeSeconds=5)
        assert json.loads(queued["Messages"][0]["Body"]) == {"order": 7}
        # AND the child ran as its own execution
        children = await sfn.list_executions(stateMachineArn=child["stateMachineArn"])
        assert [e["status"] for e in children["executions"]] == ["SUCCEEDED"]


async def test_sns_publish_and_start_execution_act_as_the_execution_role(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    async with aws("stepfunctions") as sfn, aws("iam") as iam, aws("sns") as sns:
        # GIVEN a role with no grant at all
        topic = (await sns.create_topic(Name="alerts"))["TopicArn"]
        role = await _role(iam, "bare")
        child = await sfn.create_state_machine(
            name="child", definition=json.dumps(_CHILD), roleArn=role
        )
        publish = {
            "StartAt": "P",
            "States": {
                "P": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sns:publish",
                    "Parameters": {"TopicArn": topic, "Message": "hi"},
                    "End": True,
                }
            },
        }
        start = {
            "StartAt": "S",
            "States": {
                "S": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::states:startExecution",
                    "Parameters": {"StateMachineArn": child["stateMachineArn"]},
                    "End": True,
                }
            },
        }
        results = []
        for name, definition in (("publish", publish), ("start", start)):
            machine = await sfn.create_state_machine(
                name=name, definition=json.dumps(definition), roleArn=role
            )
            run = await sfn.start_execution(stateMachineArn=machine["stateMachineArn"])
            results.append(await _finished(sfn, run["executionArn"], wait_for))
    # THEN both tasks are refused as that role, with the denial as the cause
    assert [r["status"] for r in results] == ["FAILED", "FAILED"]
    assert results[0]["error"].startswith("Sns.")
    assert "sns:Publish" in results[0]["cause"]
    assert results[1]["error"] == "StepFunctions.AccessDeniedException"
    assert "states:StartExecution" in results[1]["cause"]
    assert "assumed-role/bare/" in results[1]["cause"]


async def test_an_unsupported_resource_is_refused_at_create_naming_state_and_resource(
    runtime: LocalRuntime, aws: Any
) -> None:
    definition = {
        "StartAt": "Crawl",
        "States": {
            "Crawl": {
                "Type": "Task",
                "Resource": "arn:aws:states:::glue:startCrawler.sync",
                "Parameters": {"Name": "c"},
                "End": True,
            }
        },
    }
    async with aws("stepfunctions") as sfn:
        with pytest.raises(ClientError) as refused:
            await sfn.create_state_machine(
                name="crawl",
                definition=json.dumps(definition),
                roleArn="arn:aws:iam::123456789012:role/any",
            )
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidDefinition"
    assert "/States/Crawl/Resource" in error["Message"]
    assert "arn:aws:states:::glue:startCrawler.sync" in error["Message"]
