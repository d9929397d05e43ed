"""A Task's `Credentials` through the local runtime (IAM enforced): the execution role assumes
the named role, which then makes the task's call; a role the execution role may not assume fails
the task with `States.Permissions`.

AWS pages followed:
- https://docs.aws.amazon.com/step-functions/latest/dg/concepts-access-cross-acct-resources.html
  (`Credentials.RoleArn`: the execution role needs `sts:AssumeRole` on the role, whose trust
  policy must trust the execution role)
- https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
  (`States.Permissions`: insufficient privileges)
"""

from __future__ import annotations

import json
from typing import Any

from sluice.local.runtime import LocalRuntime
from tests.integration.local.conftest import Waiter


def _policy(*actions: str) -> str:
    statement = [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]
    return json.dumps({"Version": "2012-10-17", "Statement": statement})


def _trust(principal: dict[str, str]) -> str:
    statement = [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]
    return json.dumps({"Version": "2012-10-17", "Statement": statement})


async def _role(iam: Any, name: str, trusts: dict[str, str], *actions: str) -> str:
    role = await iam.create_role(RoleName=name, AssumeRolePolicyDocument=_trust(trusts))
    if actions:
        await iam.put_role_policy(
            RoleName=name, PolicyName="grant", PolicyDocument=_policy(*actions)
        )
    return str(role["Role"]["Arn"])


async def test_a_task_calls_as_the_role_of_its_credentials(
    runtime: LocalRuntime, aws: Any, wait_for: Waiter
) -> None:
    async with aws("stepfunctions") as sfn, aws("iam") as iam, aws("sns") as sns:
        # GIVEN an execution role that may only assume roles, a role trusting it that may
        # publish, and a role that may publish but trusts only the Step Functions service
        topic = (await sns.create_topic(Name="alerts"))["TopicArn"]
        runner = await _role(iam, "runner", {"Service": "states.amazonaws.com"}, "sts:AssumeRole")
        publisher = await _role(iam, "publisher", {"AWS": runner}, "sns:Publish")
        aloof = await _role(iam, "aloof", {"Service": "states.amazonaws.com"}, "sns:Publish")

        def machine(credentials: dict[str, Any] | None) -> str:
            task: dict[str, Any] = {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": topic, "Message": "hi"},
                "ResultSelector": {"sent.$": "States.ArrayLength(States.Array($.MessageId))"},
                "End": True,
            }
            if credentials is not None:
                task["Credentials"] = credentials
            return json.dumps({"StartAt": "Publish", "States": {"Publish": task}})

        cases = {
            "as-publisher": machine({"RoleArn": publisher}),
            "as-path": machine({"RoleArn.$": "$.role"}),
            "as-runner": machine(None),
            "as-aloof": machine({"RoleArn": aloof}),
        }
        outcomes: dict[str, dict[str, Any]] = {}
        for name, definition in cases.items():
            created = await sfn.create_state_machine(
                name=name, definition=definition, roleArn=runner
            )
            run = await sfn.start_execution(
                stateMachineArn=created["stateMachineArn"], input=json.dumps({"role": publisher})
            )

            async def finished(arn: str = run["executionArn"]) -> Any:
                described = await sfn.describe_execution(executionArn=arn)
                return described if described["status"] != "RUNNING" else None

            outcomes[name] = await wait_for(finished, timeout=60)
    # THEN the publisher's credentials publish, whether named literally or by a path
    assert outcomes["as-publisher"]["status"] == "SUCCEEDED", outcomes["as-publisher"]
    assert json.loads(outcomes["as-publisher"]["output"]) == {"sent": 1}
    assert outcomes["as-path"]["status"] == "SUCCEEDED", outcomes["as-path"]
    # AND without Credentials the execution role itself is refused sns:Publish
    assert outcomes["as-runner"]["status"] == "FAILED"
    assert "sns:Publish" in outcomes["as-runner"]["cause"]
    assert "assumed-role/runner/" in outcomes["as-runner"]["cause"]
    # AND a role whose trust policy does not trust the execution role cannot be assumed
    assert outcomes["as-aloof"]["status"] == "FAILED"
    assert outcomes["as-aloof"]["error"] == "States.Permissions"
    assert "sts:AssumeRole" in outcomes["as-aloof"]["cause"]
