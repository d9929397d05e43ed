"""RedriveExecution of a Distributed Map with STANDARD children, seen through boto3 against the
standalone endpoint: the failed child is redriven under its own ARN (redriveCount 1) and the
parent's history carries `MapRunRedriven`.

AWS page followed: https://docs.aws.amazon.com/step-functions/latest/dg/redrive-map-run.html
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sluice.local.workflow import InvokeResult, ThreadedWorkflowService
from sluice.local.workflow.adapters import Boto3SdkCaller
from tests.integration.workflow.support import client, served, wait_done

ROLE = "arn:aws:iam::123456789012:role/sfn"


class Recovering:
    """Fails item 1 until `fixed`."""

    def __init__(self) -> None:
        self.fixed = False

    async def invoke(self, function_name_or_arn: str, payload: Any) -> InvokeResult:
        if payload["n"] == 1 and not self.fixed:
            return InvokeResult(error_type="TransientError", error_message="downstream down")
        return InvokeResult(payload={"n": payload["n"], "ok": True})


@pytest.fixture
def endpoint(moto_endpoint: str) -> Iterator[tuple[Any, Recovering]]:
    function = Recovering()
    service = ThreadedWorkflowService(invoker=function, sdk=Boto3SdkCaller(moto_endpoint)).start()
    with served(service) as url:
        yield client(url), function


DEFINITION = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Work",
                "States": {
                    "Work": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:work",
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    },
}


def test_redrive_reruns_the_failed_standard_child_under_its_own_arn(
    endpoint: tuple[Any, Recovering],
) -> None:
    sfn, function = endpoint
    arn = sfn.create_state_machine(name="fan", definition=json.dumps(DEFINITION), roleArn=ROLE)[
        "stateMachineArn"
    ]
    # GIVEN a run whose child for item 1 failed
    started = sfn.start_execution(
        stateMachineArn=arn, input=json.dumps({"items": [{"n": 0}, {"n": 1}]})
    )
    assert wait_done(sfn, started["executionArn"])["status"] == "FAILED"
    (map_run,) = sfn.list_map_runs(executionArn=started["executionArn"])["mapRuns"]
    failed = sfn.list_executions(mapRunArn=map_run["mapRunArn"], statusFilter="FAILED")
    (failed_child,) = failed["executions"]
    # WHEN the downstream recovers and the execution is redriven
    function.fixed = True
    sfn.redrive_execution(executionArn=started["executionArn"])
    done = wait_done(sfn, started["executionArn"])
    # THEN it succeeds, the same child ARN succeeded on its first redrive
    assert done["status"] == "SUCCEEDED", done.get("cause")
    assert json.loads(done["output"]) == [{"n": 0, "ok": True}, {"n": 1, "ok": True}]
    child = sfn.describe_execution(executionArn=failed_child["executionArn"])
    assert (child["status"], child["redriveCount"]) == ("SUCCEEDED", 1)
    children = sfn.list_executions(mapRunArn=map_run["mapRunArn"])["executions"]
    assert len(children) == 2
    # AND the parent's history names the redriven Map Run
    events = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    (redriven,) = [e for e in events if e["type"] == "MapRunRedriven"]
    assert redriven["mapRunRedrivenEventDetails"] == {
        "mapRunArn": map_run["mapRunArn"],
        "redriveCount": 1,
    }
    assert sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])["redriveCount"] == 1


PARALLEL = {
    "StartAt": "Both",
    "States": {
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Zero",
                    "States": {
                        "Zero": {"Type": "Pass", "Result": {"n": 0}, "Next": "Work0"},
                        "Work0": {
                            "Type": "Task",
                            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:work",
                            "End": True,
                        },
                    },
                },
                {
                    "StartAt": "One",
                    "States": {
                        "One": {"Type": "Pass", "Result": {"n": 1}, "Next": "Work1"},
                        "Work1": {
                            "Type": "Task",
                            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:work",
                            "End": True,
                        },
                    },
                },
            ],
            "End": True,
        }
    },
}


def test_redrive_of_a_parallel_state_reruns_only_its_failed_branch(
    endpoint: tuple[Any, Recovering],
) -> None:
    # AWS page followed: https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html
    sfn, function = endpoint
    arn = sfn.create_state_machine(name="both", definition=json.dumps(PARALLEL), roleArn=ROLE)[
        "stateMachineArn"
    ]
    # GIVEN the second branch failed in its Task
    started = sfn.start_execution(stateMachineArn=arn, input="{}")
    assert wait_done(sfn, started["executionArn"])["status"] == "FAILED"
    before = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    # WHEN it is redriven after the fix
    function.fixed = True
    sfn.redrive_execution(executionArn=started["executionArn"])
    done = wait_done(sfn, started["executionArn"])
    # THEN it succeeds, and the redrive entered only the failed branch's Task again
    assert done["status"] == "SUCCEEDED", done.get("cause")
    assert done["redriveCount"] == 1
    assert json.loads(done["output"]) == [{"n": 0, "ok": True}, {"n": 1, "ok": True}]
    events = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    after = events[len(before) :]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in after if "stateEnteredEventDetails" in e
    ]
    assert after[0]["type"] == "ExecutionRedriven"
    assert entered == ["Both", "Work1"]
