"""Every problem of a definition, reported at once, through boto3 against the standalone
endpoint: ValidateStateMachineDefinition lists one diagnostic per problem (severity, code,
message, location; `maxResults`, `truncated`) and CreateStateMachine's `InvalidDefinition`
message lists them all.

AWS pages followed:
- https://docs.aws.amazon.com/step-functions/latest/apireference/API_ValidateStateMachineDefinition.html
- https://docs.aws.amazon.com/step-functions/latest/apireference/API_ValidateStateMachineDefinitionDiagnostic.html
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sluice.local.workflow import ThreadedWorkflowService
from tests.integration.workflow.support import client, served

ROLE = "arn:aws:iam::123456789012:role/sfn"


@pytest.fixture
def sfn() -> Iterator[Any]:
    service = ThreadedWorkflowService().start()
    with served(service) as url:
        yield client(url)


# Four problems in four places: an unknown field, Parameters on a Fail state, an unknown state
# type inside a Parallel branch, and a state nothing reaches.
BROKEN = {
    "StartAt": "A",
    "States": {
        "A": {"Type": "Pass", "Colour": "blue", "Next": "Both"},
        "Both": {
            "Type": "Parallel",
            "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Teleport", "End": True}}}],
            "Next": "Stop",
        },
        "Stop": {"Type": "Fail", "Parameters": {}},
        "Orphan": {"Type": "Succeed"},
    },
}
EXPECTED = [
    ("SCHEMA_VALIDATION_FAILED", "/States/A"),
    ("SCHEMA_VALIDATION_FAILED", "/States/Both/Branches/0/States/X/Type"),
    ("SCHEMA_VALIDATION_FAILED", "/States/Stop"),
    ("MISSING_TRANSITION_TARGET", "/States/Orphan"),
]


def test_validate_lists_every_problem_as_a_diagnostic(sfn: Any) -> None:
    doc = sfn.validate_state_machine_definition(definition=json.dumps(BROKEN))
    assert doc["result"] == "FAIL"
    assert doc["truncated"] is False
    found = [(d["code"], d["location"]) for d in doc["diagnostics"]]
    assert found == EXPECTED
    assert {d["severity"] for d in doc["diagnostics"]} == {"ERROR"}
    assert "Colour" in doc["diagnostics"][0]["message"]
    assert "Parameters" in doc["diagnostics"][2]["message"]
    assert doc["diagnostics"][3]["message"] == 'State "Orphan" is not reachable.'
    first = sfn.validate_state_machine_definition(definition=json.dumps(BROKEN), maxResults=2)
    assert [(d["code"], d["location"]) for d in first["diagnostics"]] == EXPECTED[:2]
    assert first["truncated"] is True
    fixed = json.loads(json.dumps(BROKEN))
    del fixed["States"]["Orphan"]
    del fixed["States"]["A"]["Colour"]
    fixed["States"]["Both"]["Branches"][0]["States"]["X"]["Type"] = "Pass"
    del fixed["States"]["Stop"]["Parameters"]
    ok = sfn.validate_state_machine_definition(definition=json.dumps(fixed))
    assert (ok["result"], ok["diagnostics"]) == ("OK", [])


def test_create_refuses_with_every_problem_in_the_message(sfn: Any) -> None:
    with pytest.raises(ClientError) as refused:
        sfn.create_state_machine(name="broken", definition=json.dumps(BROKEN), roleArn=ROLE)
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidDefinition"
    message = error["Message"]
    assert message.startswith("Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: ")
    problems = message.removeprefix("Invalid State Machine Definition: '").removesuffix("'")
    # AWS's shape: `<CODE>: <what> at <pointer>`, one per problem, `, `-separated.
    assert [p.rsplit(" at ", 1)[1] for p in problems.split(", ")] == [
        location for _, location in EXPECTED
    ]


def _diagnostics(sfn: Any, definition: dict[str, Any]) -> list[dict[str, Any]]:
    doc = sfn.validate_state_machine_definition(definition=json.dumps(definition))
    return list(doc["diagnostics"])


def test_a_workflow_without_a_terminal_state_is_that_one_problem(sfn: Any) -> None:
    cycle: dict[str, Any] = {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}
    loop = {"StartAt": "A", "States": cycle}
    # No location: the problem is the whole workflow's.
    expected = [
        {
            "severity": "ERROR",
            "code": "MISSING_END_STATE",
            "message": "Workflow has no terminal state",
        }
    ]
    assert _diagnostics(sfn, loop) == expected
    # A state nothing reaches is not reported on top of it...
    with_orphan = {"StartAt": "A", "States": {**cycle, "C": {"Type": "Pass", "Next": "A"}}}
    assert _diagnostics(sfn, with_orphan) == expected
    # ...but once a terminal state exists, the orphan is the problem.
    with_end = {"StartAt": "A", "States": {**cycle, "C": {"Type": "Succeed"}}}
    assert [(d["code"], d["location"]) for d in _diagnostics(sfn, with_end)] == [
        ("MISSING_TRANSITION_TARGET", "/States/C")
    ]


def test_jsonata_expressions_are_checked_at_create(sfn: Any) -> None:
    def machine(expression: str) -> dict[str, Any]:
        return {
            "QueryLanguage": "JSONata",
            "StartAt": "E",
            "States": {"E": {"Type": "Pass", "Output": {"v": expression}, "End": True}},
        }

    # The expression has no context item: a bare name is refused, once per name.
    bare = _diagnostics(sfn, machine("{% phone & $states.input.name & phone & address.city %}"))
    assert [(d["code"], d["message"], d["location"]) for d in bare] == [
        (
            "UNSUPPORTED_JSONATA_EXPRESSION",
            "Reference to 'phone' at the top level is not supported.",
            "/States/E/Output/v",
        ),
        (
            "UNSUPPORTED_JSONATA_EXPRESSION",
            "Reference to 'address' at the top level is not supported.",
            "/States/E/Output/v",
        ),
    ]
    # Names inside a path, a filter or an object built from a path are the items' fields.
    relative = "{% $states.input.items[price > 1].{'name': name, 'n': $count(tags)} %}"
    assert _diagnostics(sfn, machine(relative)) == []
    broken = _diagnostics(sfn, machine("{% 1 + %}"))
    assert [(d["code"], d["location"]) for d in broken] == [
        ("INVALID_JSONATA_EXPRESSION", "/States/E/Output/v")
    ]


def test_a_missing_target_is_located_as_aws_locates_it(sfn: Any) -> None:
    # `Missing 'Next' target` whichever field names it; `[i]` per array index in the location;
    # every problem of one state, not only its first.
    definition = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.a", "IsPresent": True, "Next": "Nowhere"},
                    {"Variable": "$.b", "IsPresent": True, "Next": "T"},
                ],
                "Default": "Gone",
                "Colour": "blue",
            },
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Lost"}],
                "End": True,
            },
        },
    }
    found = [(d["message"], d.get("location")) for d in _diagnostics(sfn, definition)]
    assert found == [
        ("Missing 'Next' target: Nowhere", "/States/C/Choices[0]/Next"),
        ("Missing 'Next' target: Gone", "/States/C/Default"),
        ("Field 'Colour' is not supported", "/States/C"),
        ("Missing 'Next' target: Lost", "/States/T/Catch[0]/Next"),
    ]
