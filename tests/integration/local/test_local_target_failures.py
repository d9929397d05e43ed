"""Undeliverable rule targets and scheduled invocations reach their dead-letter queues, through
the local runtime (real runner, engine and IAM enforcer) and boto3 clients on its endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sluice.local.errors import ProvisioningError
from sluice.local.providers.base import ScheduleSpec
from sluice.local.runtime import LocalRuntime
from tests.integration.local.conftest import Waiter, fixture_options
from tests.processes import free_port

PREFIX = "arn:aws:{}:us-east-1:123456789012:"


async def _queue(sqs: Any, name: str) -> tuple[str, str]:
    url = (await sqs.create_queue(QueueName=name))["QueueUrl"]
    attributes = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, attributes["Attributes"]["QueueArn"]


def _events_may_send(queue_arn: str, rule_arn: str) -> str:
    """The DLQ policy eb-rule-dlq.html shows: events.amazonaws.com, this rule only."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
    )


async def _events_role(iam: Any, machine: str) -> str:
    """A role EventBridge may assume (this account's rules) that may start `machine`."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = await iam.create_role(
        RoleName="rule-starts-flow", AssumeRolePolicyDocument=json.dumps(trust)
    )
    start = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "states:StartExecution", "Resource": machine}],
    }
    await iam.put_role_policy(
        RoleName="rule-starts-flow", PolicyName="start", PolicyDocument=json.dumps(start)
    )
    return str(role["Role"]["Arn"])


async def _received(sqs: Any, url: str) -> list[dict[str, Any]]:
    answer = await sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    return list(answer.get("Messages", []))


def _attributes(message: dict[str, Any]) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}


async def test_rule_targets_that_do_not_exist_go_to_the_dlq_the_queue_policy_allows(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    # Follows https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html: a
    # target that no longer exists is not retried but dead-lettered, with RULE_ARN, TARGET_ARN,
    # ERROR_CODE, ERROR_MESSAGE and RETRY_ATTEMPTS; EventBridge needs the DLQ's policy.
    function = PREFIX.format("lambda") + "function:deleted-function"
    machine = PREFIX.format("states") + "stateMachine:deleted-machine"
    flow = PREFIX.format("states") + "stateMachine:sluice-test-flow"
    async with aws("sqs") as sqs, aws("events") as events, aws("iam") as iam:
        role_arn = await _events_role(iam, flow)
        dlq_url, dlq_arn = await _queue(sqs, "rule-target-dlq")
        closed_url, closed_arn = await _queue(sqs, "closed-dlq")
        rule_arn = (
            await events.put_rule(Name="gone", EventPattern=json.dumps({"source": ["gone"]}))
        )["RuleArn"]
        await sqs.set_queue_attributes(
            QueueUrl=dlq_url, Attributes={"Policy": _events_may_send(dlq_arn, rule_arn)}
        )
        retry = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
        await events.put_targets(
            Rule="gone",
            Targets=[
                {"Id": "fn", "Arn": function, "DeadLetterConfig": {"Arn": dlq_arn}},
                {
                    "Id": "sm",
                    "Arn": machine,
                    "RoleArn": PREFIX.format("iam").replace("us-east-1", "") + "role/any",
                    "RetryPolicy": retry,
                    "DeadLetterConfig": {"Arn": dlq_arn},
                },
                # StartExecution refuses an input that is not JSON: not retried either
                {
                    "Id": "flow",
                    "Arn": flow,
                    "RoleArn": role_arn,
                    "Input": "not json",
                    "RetryPolicy": retry,
                    "DeadLetterConfig": {"Arn": dlq_arn},
                },
                # a DLQ whose policy does not let EventBridge send: the event is dropped
                {"Id": "closed", "Arn": function, "DeadLetterConfig": {"Arn": closed_arn}},
            ],
        )
        await events.put_events(
            Entries=[{"Source": "gone", "DetailType": "t", "Detail": '{"n": 7}'}]
        )
        messages: list[dict[str, Any]] = []
        while len(messages) < 3:
            messages += await wait_for(lambda: _received(sqs, dlq_url))
        assert await _received(sqs, closed_url) == []
    by_target = {_attributes(m)["TARGET_ARN"]: m for m in messages}
    assert set(by_target) == {function, machine, flow}
    refused = _attributes(by_target.pop(flow))
    assert refused["ERROR_CODE"] == "SDK_CLIENT_ERROR"
    assert refused["ERROR_MESSAGE"].startswith("InvalidExecutionInput")
    assert refused["RETRY_ATTEMPTS"] == "0"
    for arn, message in by_target.items():
        attributes = _attributes(message)
        assert attributes["RULE_ARN"] == rule_arn
        assert attributes["ERROR_CODE"] == "RESOURCE_NOT_FOUND"
        assert arn.rsplit(":", 1)[1] in attributes["ERROR_MESSAGE"]
        assert attributes["RETRY_ATTEMPTS"] == "0"
        assert "EXHAUSTED_RETRY_CONDITION" not in attributes
        assert json.loads(message["Body"])["detail"] == {"n": 7}
    counts = runtime.describe()["iam"]["rule_targets"]
    assert (counts["failed"], counts["dead_lettered"], counts["dropped"]) == (4, 3, 1)


async def test_a_failed_scheduled_invocation_goes_to_the_target_dlq_as_its_role_may(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Follows https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html
    # (the schedule's execution role sends to the DLQ; ERROR_CODE, ERROR_MESSAGE, EXECUTION_ID,
    # RETRY_ATTEMPTS, SCHEDULED_TIME, SCHEDULE_ARN, TARGET_ARN) and
    # managing-schedule-retry-policy.html (a target that does not exist is not retried; a
    # throttled one is, up to MaximumRetryAttempts).
    machine = PREFIX.format("states") + "stateMachine:deleted-machine"
    (role_name,) = [r.physical_id for r in runtime.reports if r.logical_id == "FlowScheduleRole"]
    role_arn = f"arn:aws:iam::123456789012:role/{role_name}"
    async with aws("sqs") as sqs, aws("iam") as iam:
        dlq_url, dlq_arn = await _queue(sqs, "schedule-dlq")
        await iam.put_role_policy(
            RoleName=role_name,
            PolicyName="start-any",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": "states:StartExecution", "Resource": "*"}
                    ],
                }
            ),
        )
        target = {
            "Arn": machine,
            "RoleArn": role_arn,
            "Input": '{"at": "<aws.scheduler.scheduled-time>"}',
            "RetryPolicy": {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 3600},
            "DeadLetterConfig": {"Arn": dlq_arn},
        }
        await runtime.register_schedule(
            ScheduleSpec("backfill-probe", "rate(1 day)", True, "scheduler", target=target)
        )
        # WHEN it fires while its role may not send to the DLQ THEN the invocation is lost
        fired = await runtime.fire("backfill-probe")
        assert fired["error"].startswith("ResourceNotFoundException")
        assert fired["dead_lettered"] is False
        # WHEN the role may send there THEN the failed invocation is dead-lettered
        await iam.put_role_policy(
            RoleName=role_name,
            PolicyName="dlq",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": dlq_arn}
                    ],
                }
            ),
        )
        fired = await runtime.fire("backfill-probe")
        assert fired["dead_lettered"] is True
        (message,) = await _received(sqs, dlq_url)
    attributes = _attributes(message)
    assert attributes["ERROR_CODE"] == "ResourceNotFoundException"
    assert attributes["TARGET_ARN"] == machine
    assert attributes["SCHEDULE_ARN"].endswith(":schedule/default/backfill-probe")
    assert attributes["RETRY_ATTEMPTS"] == "0"
    assert "EXHAUSTED_RETRY_CONDITION" not in attributes
    assert json.loads(message["Body"]) == {"at": attributes["SCHEDULED_TIME"]}
    assert attributes["EXECUTION_ID"]
    assert attributes["IS_PAYLOAD_TRUNCATED"] == "false"

    # WHEN the target throttles (Step Functions answering ThrottlingException) THEN the
    # invocation is retried MaximumRetryAttempts times in the background, then dead-lettered
    attempts: list[str] = []

    async def throttled(spec: ScheduleSpec, payload: str) -> None:
        attempts.append(payload)
        error: Any = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
        raise ClientError(error, "StartExecution")

    throttling = dict(target, Input='{"attempt": <aws.scheduler.attempt-number>}')
    throttling["RetryPolicy"] = {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}
    await runtime.register_schedule(
        ScheduleSpec("throttled-probe", "rate(1 day)", True, "scheduler", target=throttling)
    )
    monkeypatch.setattr(runtime, "_deliver_scheduler_target", throttled)
    fired = await runtime.fire("throttled-probe")
    assert fired["retrying"] is True
    async with aws("sqs") as sqs:
        (message,) = await wait_for(lambda: _received(sqs, dlq_url))
    attributes = _attributes(message)
    assert [json.loads(a)["attempt"] for a in attempts] == [1, 2, 3]
    assert attributes["ERROR_CODE"] == "ThrottlingException"
    assert attributes["RETRY_ATTEMPTS"] == "2"
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"


ARCHIVED = """
Resources:
  Bus:
    Type: AWS::Events::EventBus
    Properties:
      Name: archived-bus
  Archive:
    Type: AWS::Events::Archive
    Properties:
      ArchiveName: archived-bus-archive
      SourceArn: !GetAtt Bus.Arn
      RetentionDays: 7
      EventPattern:
        source: [shop]
  Dlq:
    Type: AWS::SQS::Queue
  Target:
    Type: AWS::SQS::Queue
  Rule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern:
        source: [shop]
      Targets:
        - Id: q
          Arn: !GetAtt Target.Arn
          RetryPolicy:
            MaximumRetryAttempts: RETRIES
          DeadLetterConfig:
            Arn: !GetAtt Dlq.Arn
"""


async def test_archive_resource_archives_and_out_of_range_retry_policy_fails_up(
    moto_endpoint: str, tmp_path: Path
) -> None:
    # Follows https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-events-archive.html
    # and API_RetryPolicy.html (MaximumRetryAttempts 0-185).
    import aioboto3

    template = tmp_path / "archived.yaml"
    template.write_text(ARCHIVED.replace("RETRIES", "3"))
    options = fixture_options(tmp_path / "state", free_port())
    options.templates = [template]
    options.prewarm = False
    runtime = LocalRuntime(options)
    await runtime.start()
    try:
        session = aioboto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        async with session.client("events", endpoint_url=runtime.endpoint_url) as events:
            await events.put_events(
                Entries=[
                    {"Source": "shop", "DetailType": "t", "Detail": "{}", "EventBusName": b}
                    for b in ("archived-bus", "archived-bus")
                ]
            )
            archive = await events.describe_archive(ArchiveName="archived-bus-archive")
        assert archive["EventCount"] == 2
        assert archive["RetentionDays"] == 7
    finally:
        await runtime.stop()
    template.write_text(ARCHIVED.replace("RETRIES", "186"))
    options = fixture_options(tmp_path / "state2", free_port())
    options.templates = [template]
    options.prewarm = False
    with pytest.raises(ProvisioningError, match=r"Targets\.RetryPolicy\.MaximumRetryAttempts"):
        await LocalRuntime(options).start()
