"""RedriveExecution restores the variables a Parallel branch or an inline Map iteration had
assigned before it failed, through boto3 against the standalone endpoint: the redriven branch
resumes in its failed state and still reads them.

AWS pages followed:
- https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html (a redrive
  restarts the unsuccessful branches and iterations from the state that failed)
- https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html (variables of a
  branch or iteration live in its own scope)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sluice.local.workflow import InvokeResult, ThreadedWorkflowService
from tests.integration.workflow.support import client, served, wait_done

ROLE = "arn:aws:iam::123456789012:role/sfn"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:work"


class Recovering:
    """Fails until `fixed`; echoes its payload once fixed."""

    def __init__(self) -> None:
        self.fixed = False

    async def invoke(self, function_name_or_arn: str, payload: Any) -> InvokeResult:
        if not self.fixed:
            return InvokeResult(error_type="TransientError", error_message="downstream down")
        return InvokeResult(payload=payload)


@pytest.fixture
def endpoint() -> Iterator[tuple[Any, Recovering]]:
    function = Recovering()
    service = ThreadedWorkflowService(invoker=function).start()
    with served(service) as url:
        yield client(url), function


def _processor(language: str) -> dict[str, Any]:
    """Assign `seen` (JSONPath or JSONata), then call the failing function with it."""
    if language == "JSONata":
        return {
            "QueryLanguage": "JSONata",
            "StartAt": "Remember",
            "States": {
                "Remember": {
                    "Type": "Pass",
                    "Assign": {"seen": "{% $states.input.n * 10 %}"},
                    "Next": "Call",
                },
                "Call": {
                    "Type": "Task",
                    "Resource": FUNCTION,
                    "Arguments": {"seen": "{% $seen %}"},
                    "End": True,
                },
            },
        }
    return {
        "StartAt": "Remember",
        "States": {
            "Remember": {"Type": "Pass", "Assign": {"seen.$": "$.n"}, "Next": "Call"},
            "Call": {
                "Type": "Task",
                "Resource": FUNCTION,
                "Parameters": {"seen.$": "$seen"},
                "End": True,
            },
        },
    }


def _redriven(
    sfn: Any, function: Recovering, name: str, definition: dict[str, Any], data: Any
) -> Any:
    if name.endswith("JSONata"):
        definition = {"QueryLanguage": "JSONata", **definition}
    function.fixed = False
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(data))["executionArn"]
    failed = wait_done(sfn, execution)
    assert (failed["status"], failed["error"]) == ("FAILED", "TransientError")
    function.fixed = True
    sfn.redrive_execution(executionArn=execution)
    done = wait_done(sfn, execution)
    assert done["status"] == "SUCCEEDED", done
    assert done["redriveCount"] == 1
    events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    # The branches resumed in Call: Remember ran only before the redrive.
    redriven_at = next(i for i, e in enumerate(events) if e["type"] == "ExecutionRedriven")
    assert not [
        e
        for e in events[redriven_at:]
        if e.get("stateEnteredEventDetails", {}).get("name") == "Remember"
    ]
    return json.loads(done["output"])


@pytest.mark.parametrize("language", ["JSONPath", "JSONata"])
def test_a_redriven_parallel_branch_reads_the_variables_it_assigned(
    endpoint: tuple[Any, Recovering], language: str
) -> None:
    sfn, function = endpoint
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [_processor(language), _processor(language)],
                "End": True,
            }
        },
    }
    output = _redriven(sfn, function, f"parallel-{language}", definition, {"n": 4})
    seen = 40 if language == "JSONata" else 4
    assert output == [{"seen": seen}, {"seen": seen}]


@pytest.mark.parametrize("language", ["JSONPath", "JSONata"])
def test_a_redriven_map_iteration_reads_the_variables_it_assigned(
    endpoint: tuple[Any, Recovering], language: str
) -> None:
    sfn, function = endpoint
    fan: dict[str, Any] = {"Type": "Map", "ItemProcessor": _processor(language), "End": True}
    if language == "JSONata":
        fan["Items"] = "{% $states.input.items %}"
    else:
        fan["ItemsPath"] = "$.items"
    definition = {"StartAt": "Fan", "States": {"Fan": fan}}
    data = {"items": [{"n": 1}, {"n": 2}, {"n": 3}]}
    output = _redriven(sfn, function, f"map-{language}", definition, data)
    scale = 10 if language == "JSONata" else 1
    assert output == [{"seen": n * scale} for n in (1, 2, 3)]
