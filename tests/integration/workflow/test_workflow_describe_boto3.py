"""DescribeStateMachine's `variableReferences` and DescribeStateMachineForExecution, through
boto3 against the standalone endpoint.

AWS pages followed:
- https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeStateMachine.html
  (`variableReferences`: state name → the variables it references; states without any are not
  shown)
- https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeStateMachineForExecution.html
  (the definition an execution runs; `mapRunArn` and `label` for a Map Run's child execution)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sluice.local.workflow import ThreadedWorkflowService
from tests.integration.workflow.support import client, served, wait_done

ROLE = "arn:aws:iam::123456789012:role/sfn"


@pytest.fixture
def sfn() -> Iterator[Any]:
    service = ThreadedWorkflowService().start()
    with served(service) as url:
        yield client(url)


VARIABLES = {
    "StartAt": "Remember",
    "States": {
        "Remember": {"Type": "Pass", "Assign": {"limit": 3, "who": "me"}, "Next": "Check"},
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$limit", "NumericGreaterThan": 2, "Next": "Both"}],
            "Default": "Both",
        },
        "Both": {
            "Type": "Parallel",
            "Parameters": {"greeting.$": "States.Format('hi {}', $who)", "plain": "$notvar"},
            "Branches": [
                {
                    "QueryLanguage": "JSONata",
                    "StartAt": "Shout",
                    "States": {
                        "Shout": {
                            "Type": "Pass",
                            "Output": "{% ($n := $limit * 2; $uppercase($who) & $string($n)) %}",
                            "End": True,
                        }
                    },
                }
            ],
            "End": True,
        },
    },
}


def test_describe_state_machine_lists_each_states_variable_references(sfn: Any) -> None:
    arn = sfn.create_state_machine(name="refs", definition=json.dumps(VARIABLES), roleArn=ROLE)[
        "stateMachineArn"
    ]
    doc = sfn.describe_state_machine(stateMachineArn=arn)
    # Remember only assigns; a literal "$notvar", $uppercase/$string (functions) and $n (bound
    # by the expression itself) are no references.
    assert doc["variableReferences"] == {
        "Check": ["limit"],
        "Both": ["who"],
        "Shout": ["limit", "who"],
    }
    plain = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    arn = sfn.create_state_machine(name="norefs", definition=json.dumps(plain), roleArn=ROLE)[
        "stateMachineArn"
    ]
    assert "variableReferences" not in sfn.describe_state_machine(stateMachineArn=arn)


def test_describe_state_machine_for_execution_gives_the_definition_it_ran(sfn: Any) -> None:
    first: dict[str, Any] = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "Label": "Fanout",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Keep",
                    "States": {
                        "Keep": {"Type": "Pass", "Parameters": {"v.$": "$want"}, "End": True}
                    },
                },
                "End": True,
            }
        },
    }
    text = json.dumps(first)
    arn = sfn.create_state_machine(name="fan", definition=text, roleArn=ROLE)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": [1]}))
    done = wait_done(sfn, execution["executionArn"])
    assert done["status"] == "FAILED"  # $want is never assigned: the child fails
    second = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(second))
    ran = sfn.describe_state_machine_for_execution(executionArn=execution["executionArn"])
    assert (ran["stateMachineArn"], ran["name"], ran["roleArn"]) == (arn, "fan", ROLE)
    assert json.loads(ran["definition"]) == first
    assert ran["revisionId"] == "1"
    assert "mapRunArn" not in ran
    run_arn = sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"][0]["mapRunArn"]
    child = sfn.list_executions(mapRunArn=run_arn)["executions"][0]["executionArn"]
    child_machine = sfn.describe_state_machine_for_execution(executionArn=child)
    assert child_machine["mapRunArn"] == run_arn
    assert child_machine["label"] == "Fanout"
    assert json.loads(child_machine["definition"]) == first["States"]["Fan"]["ItemProcessor"]
    assert child_machine["variableReferences"] == {"Keep": ["want"]}


def test_history_events_carry_the_data_details_aws_adds(sfn: Any) -> None:
    # AWS marks every payload in the history as whole (`truncated: false`) beside it.
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Keep",
        "States": {"Keep": {"Type": "Pass", "Assign": {"k": 1}, "End": True}},
    }
    arn = sfn.create_state_machine(name="details", definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(stateMachineArn=arn, input='{"a": 1}')["executionArn"]
    assert wait_done(sfn, execution)["status"] == "SUCCEEDED"
    events = {e["type"]: e for e in sfn.get_execution_history(executionArn=execution)["events"]}
    whole = {"truncated": False}
    assert events["ExecutionStarted"]["executionStartedEventDetails"]["inputDetails"] == whole
    assert events["PassStateEntered"]["stateEnteredEventDetails"]["inputDetails"] == whole
    exited = events["PassStateExited"]["stateExitedEventDetails"]
    assert (exited["outputDetails"], exited["assignedVariablesDetails"]) == (whole, whole)
    assert exited["assignedVariables"] == {"k": "1"}
    assert events["ExecutionSucceeded"]["executionSucceededEventDetails"]["outputDetails"] == whole
