"""Definition validation: errors name the state and the field."""

from __future__ import annotations

import json

import pytest

from sluice.local.workflow import DefinitionError
from sluice.local.workflow.definition import parse as load
from sluice.local.workflow.tree import PassState, SucceedState

PASS_END = {"Type": "Pass", "End": True}


def _machine(**states: object) -> dict[str, object]:
    return {"StartAt": next(iter(states)), "States": states}


@pytest.mark.parametrize(
    ("definition", "state", "field"),
    [
        (_machine(A={"Type": "Pass", "Next": "Nowhere"}), "A", "Next"),
        (_machine(A={"Type": "Pass"}), "A", "Next"),
        (_machine(A={"Type": "Pass", "Next": "A", "End": True}), "A", "Next"),
        (_machine(A={"Type": "Bogus", "End": True}), "A", "Type"),
        (_machine(A={"Type": "Task", "End": True}), "A", "Resource"),
        (_machine(A={"Type": "Choice", "Choices": []}), "A", "Choices"),
        (
            _machine(A={"Type": "Choice", "Choices": [{"Variable": "$.x", "Next": "A"}]}),
            "A",
            "Choices[0]",
        ),
        (_machine(A={"Type": "Wait", "End": True}), "A", "Seconds"),
        (_machine(A={**PASS_END, "ResultPath": "$.a[*]"}), "A", "ResultPath"),
        (_machine(A={**PASS_END, "InputPath": "a.b"}), "A", "InputPath"),
        (_machine(A={**PASS_END, "Assign": {"1x": 1}}), "A", "Assign.1x"),
        (_machine(A={**PASS_END, "Parameters": {"x.$": "nope"}}), "A", "Parameters.x.$"),
        (
            _machine(
                A={"Type": "Task", "Resource": "arn:x", "End": True, "Retry": [{"ErrorEquals": []}]}
            ),
            "A",
            "Retry[0]",
        ),
        (
            _machine(
                A={
                    "Type": "Task",
                    "Resource": "arn:x",
                    "End": True,
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Missing"}],
                }
            ),
            "A",
            "Catch[0].Next",
        ),
        (
            _machine(
                M={
                    "Type": "Map",
                    "End": True,
                    "ItemBatcher": {"MaxItemsPerBatch": 2},
                    "ItemProcessor": _machine(I=PASS_END),
                }
            ),
            "M",
            "ItemBatcher",
        ),
        (
            _machine(
                M={
                    "Type": "Map",
                    "End": True,
                    "ToleratedFailurePercentage": 150,
                    "ItemProcessor": {
                        **_machine(I=PASS_END),
                        "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                    },
                }
            ),
            "M",
            "ToleratedFailurePercentage",
        ),
        (
            _machine(
                M={
                    "Type": "Map",
                    "End": True,
                    "ItemReader": {
                        "Resource": "arn:aws:states:::s3:getObject",
                        "ReaderConfig": {"InputType": "XML"},
                    },
                    "ItemProcessor": {
                        **_machine(I=PASS_END),
                        "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                    },
                }
            ),
            "M",
            "ItemReader.ReaderConfig.InputType",
        ),
    ],
)
def test_definition_invalid_construct_names_state_and_field(
    definition: dict[str, object], state: str, field: str
) -> None:
    with pytest.raises(DefinitionError) as info:
        load(json.dumps(definition))
    assert info.value.state == state
    assert info.value.field == field
    assert f"/States/{state}" in str(info.value)


def test_definition_nested_branch_error_names_inner_state() -> None:
    bad_branch = _machine(Inner={"Type": "Pass", "Next": "Gone"})
    with pytest.raises(DefinitionError) as info:
        load(_machine(P={"Type": "Parallel", "Branches": [bad_branch], "End": True}))
    assert info.value.state == "Inner"


def test_definition_start_at_unknown_state_is_rejected() -> None:
    with pytest.raises(DefinitionError, match="StartAt"):
        load({"StartAt": "X", "States": {"A": PASS_END}})


def test_definition_malformed_json_is_rejected() -> None:
    with pytest.raises(DefinitionError, match="not valid JSON"):
        load("{not json")


def test_definition_valid_machine_parses_into_typed_states() -> None:
    machine = _machine(A={"Type": "Pass", "Next": "B"}, B={"Type": "Succeed"})
    parsed = load(json.dumps(machine))
    assert parsed.start_at == "A"
    assert isinstance(parsed.states["A"], PassState)
    assert parsed.states["A"].next == "B"
    assert isinstance(parsed.states["B"], SucceedState)
    assert parsed.states["B"].next is None
