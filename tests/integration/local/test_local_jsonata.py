"""A JSONata state machine through the local runtime's endpoint, driven by a boto3 client:
`Assign`, `Output`, `Arguments` on a Lambda task, a Choice `Condition` and a Distributed Map
over a JSONata `Items` expression return the output the AWS pages document.

- https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html
- https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html
- https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import boto3

from sluice.local.runtime import LocalRuntime

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
GRANT = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": "*"}],
}

ORDERS = {
    "QueryLanguage": "JSONata",
    "Comment": "Price a run's orders: tick the run, then fan the orders out if there are any.",
    "StartAt": "Prepare",
    "States": {
        "Prepare": {
            "Type": "Pass",
            "Assign": {"run": "{% $states.input.run %}", "orders": "{% $states.input.orders %}"},
            "Output": {"count": "{% $count($states.input.orders) %}"},
            "Next": "Tick",
        },
        "Tick": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Arguments": {
                "FunctionName": TICK,
                "Payload": {"id": "{% $run %}", "count": "{% $states.input.count %}"},
            },
            "Assign": {"ticked": "{% $states.result.Payload.ok %}"},
            "Output": {"function": "{% $states.result.Payload.function %}"},
            "Next": "Any Orders?",
        },
        "Any Orders?": {
            "Type": "Choice",
            "Choices": [{"Condition": "{% $ticked and $count($orders) > 0 %}", "Next": "Price"}],
            "Default": "Nothing To Price",
        },
        "Nothing To Price": {"Type": "Fail", "Error": "NoOrders"},
        "Price": {
            "Type": "Map",
            "Items": "{% $orders[qty > 0] %}",
            "ItemSelector": {
                "sku": "{% $states.context.Map.Item.Value.sku %}",
                "qty": "{% $states.context.Map.Item.Value.qty %}",
            },
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "Line",
                "States": {
                    "Line": {
                        "Type": "Pass",
                        "Output": {
                            "sku": "{% $states.input.sku %}",
                            "total": "{% $states.input.qty * 10 %}",
                        },
                        "End": True,
                    }
                },
            },
            "Output": {
                "run": "{% $run %}",
                "lines": "{% $states.result %}",
                "total": "{% $sum($states.result.total) %}",
            },
            "End": True,
        },
    },
}


def _client(runtime: LocalRuntime, service: str) -> Any:
    make: Any = boto3.client  # the service name is a variable: no typed overload applies
    return make(
        service,
        endpoint_url=runtime.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _create_and_run(runtime: LocalRuntime) -> dict[str, Any]:
    """What a team does with boto3: a role, the state machine, one execution to its end."""
    iam = _client(runtime, "iam")
    role = iam.create_role(RoleName="orders-jsonata", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(
        RoleName="orders-jsonata", PolicyName="grant", PolicyDocument=json.dumps(GRANT)
    )
    sfn = _client(runtime, "stepfunctions")
    machine = sfn.create_state_machine(
        name="orders-jsonata", definition=json.dumps(ORDERS), roleArn=role["Role"]["Arn"]
    )
    orders = [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 0}, {"sku": "c", "qty": 3}]
    started = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"],
        input=json.dumps({"run": "run-9", "orders": orders}),
    )
    deadline = time.monotonic() + 90  # a deadline for a broken run, not a budget
    while True:
        described = sfn.describe_execution(executionArn=started["executionArn"])
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    history = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    return {"described": described, "history": history}


async def test_jsonata_machine_runs_through_the_endpoint_with_boto3(runtime: LocalRuntime) -> None:
    # GIVEN the runtime, WHEN a boto3 client creates and runs the JSONata machine (boto3 is
    # synchronous: it runs in a thread while the runtime serves on this loop)
    result = await asyncio.to_thread(_create_and_run, runtime)
    described = result["described"]
    # THEN it succeeds with the documented output: the Map's Items expression dropped the
    # zero-quantity order, each child priced its line, and Output read the run variable
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert json.loads(described["output"]) == {
        "run": "run-9",
        "lines": [{"sku": "a", "total": 20}, {"sku": "c", "total": 30}],
        "total": 50,
    }
    # AND the variables were assigned when their states exited, as the history shows
    assigned = {
        event["stateExitedEventDetails"]["name"]: event["stateExitedEventDetails"][
            "assignedVariables"
        ]
        for event in result["history"]
        if "assignedVariables" in event.get("stateExitedEventDetails", {})
    }
    assert assigned["Tick"] == {"ticked": "true"}
    assert json.loads(assigned["Prepare"]["run"]) == "run-9"
