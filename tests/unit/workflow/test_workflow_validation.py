"""Validation parity: what CreateStateMachine refuses on AWS is refused here, in AWS's words.

AWS wraps each diagnostic as `Invalid State Machine Definition: '<CODE>: <what> at <pointer>'`
(codes SCHEMA_VALIDATION_FAILED, MISSING_TRANSITION_TARGET, MISSING_END_STATE). The rules:
- ASL spec, state fields per type: https://states-language.net/#state-types
- Retry/Catch, `States.ALL` alone and last:
  https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
- HeartbeatSeconds below TimeoutSeconds: https://docs.aws.amazon.com/step-functions/latest/dg/state-task.html
- ResultWriter combinations (WriterConfig alone is valid):
  https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html
- ReaderConfig fields: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html
"""

from __future__ import annotations

from typing import Any

import pytest

from sluice.local.workflow import DefinitionError
from sluice.local.workflow.definition import parse
from tests.unit.workflow.workflow_fakes import make_engine, run_definition

FN = "arn:aws:lambda:us-east-1:123456789012:function:work"
END = {"Type": "Pass", "End": True}


def _one(state: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"StartAt": "A", "States": {"A": state}, **top}


def _task(**fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": FN, "End": True, **fields}


def _dmap(**fields: Any) -> dict[str, Any]:
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": FN, "End": True}},
    }
    return {"Type": "Map", "ItemProcessor": processor, "End": True, **fields}


def _refused(definition: dict[str, Any]) -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        parse(definition)
    return info.value


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({**END, "Bogus": 1}, "Bogus"),
        ({"Type": "Fail", "Error": "E", "Parameters": {"a": 1}}, "Parameters"),
        ({**END, "Result": 1, "ResultSelector": {"a.$": "$"}}, "ResultSelector"),
        ({**END, "TimeoutSeconds": 5}, "TimeoutSeconds"),
        ({**END, "Retry": [{"ErrorEquals": ["States.ALL"]}]}, "Retry"),
        ({"Type": "Succeed", "ResultPath": "$.x"}, "ResultPath"),
        ({"Type": "Parallel", "End": True, "TimeoutSeconds": 5, "Branches": [_one(END)]}, None),
        (_dmap(TimeoutSeconds=5), "TimeoutSeconds"),
        (_task(Retry=[{"ErrorEquals": ["E"], "Interval": 1}]), "Retry[0].Interval"),
        (_task(Catch=[{"ErrorEquals": ["E"], "Next": "A", "Then": 1}]), "Catch[0].Then"),
        (
            _dmap(
                ItemReader={
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON", "MaxItem": 5},
                    "Parameters": {"Bucket": "b", "Key": "k"},
                }
            ),
            "ItemReader.ReaderConfig.MaxItem",
        ),
        (_dmap(ItemBatcher={"MaxItemsPerBatch": 2, "MaxItems": 3}), "ItemBatcher.MaxItems"),
        (
            _dmap(ResultWriter={"WriterConfig": {"OutputType": "JSON", "Format": "x"}}),
            "ResultWriter.WriterConfig.Format",
        ),
    ],
)
def test_validation_unknown_field_is_refused_naming_state_and_field(
    state: dict[str, Any], field: str | None
) -> None:
    err = _refused(_one(state))
    assert err.code == "SCHEMA_VALIDATION_FAILED"
    assert err.state == "A"
    if field is not None:
        assert err.field == field
        assert f"Field '{field.rsplit('.', 1)[-1]}' is not supported" in str(err)
        if "." not in field:
            # AWS locates an unknown field at the object that holds it.
            assert err.pointer == "/States/A"
    assert "/States/A" in str(err)


def test_validation_unknown_top_level_field_is_refused() -> None:
    err = _refused({"Coment": "typo", **_one(END)})
    assert str(err) == "SCHEMA_VALIDATION_FAILED: Field 'Coment' is not supported at /"


@pytest.mark.parametrize("block", ["Retry", "Catch"])
def test_validation_states_all_with_other_names_is_refused(block: str) -> None:
    entry: dict[str, Any] = {"ErrorEquals": ["States.ALL", "States.Timeout"]}
    if block == "Catch":
        entry["Next"] = "B"
    state = {"Type": "Task", "Resource": FN, "Next": "B", block: [entry]}
    err = _refused({"StartAt": "A", "States": {"A": state, "B": END}})
    assert err.field == f"{block}[0].ErrorEquals"
    assert "States.ALL must appear alone" in str(err)


@pytest.mark.parametrize("block", ["Retry", "Catch"])
def test_validation_states_all_before_another_entry_is_refused(block: str) -> None:
    entries: list[dict[str, Any]] = [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["E"]}]
    if block == "Catch":
        for entry in entries:
            entry["Next"] = "B"
    state = {"Type": "Task", "Resource": FN, "Next": "B", block: entries}
    err = _refused({"StartAt": "A", "States": {"A": state, "B": END}})
    assert err.field == f"{block}[0].ErrorEquals"
    assert "must be the last one" in str(err)


def test_validation_states_all_alone_and_last_is_accepted() -> None:
    entries = [{"ErrorEquals": ["E"]}, {"ErrorEquals": ["States.ALL"]}]
    parse(_one(_task(Retry=entries)))


@pytest.mark.parametrize("heartbeat", [10, 11])
def test_validation_heartbeat_not_below_timeout_is_refused(heartbeat: int) -> None:
    err = _refused(_one(_task(TimeoutSeconds=10, HeartbeatSeconds=heartbeat)))
    assert (err.state, err.field) == ("A", "HeartbeatSeconds")
    assert str(err).endswith("at /States/A/HeartbeatSeconds")


def test_validation_heartbeat_below_timeout_is_accepted() -> None:
    task = parse(_one(_task(TimeoutSeconds=10, HeartbeatSeconds=9))).states["A"]
    assert task.type == "Task"


def test_validation_unreachable_state_is_refused_as_aws_words_it() -> None:
    err = _refused({"StartAt": "A", "States": {"A": END, "B": END}})
    assert str(err) == 'MISSING_TRANSITION_TARGET: State "B" is not reachable. at /States/B'


def test_validation_unreachable_state_in_a_branch_is_located_in_the_branch() -> None:
    branch = {"StartAt": "X", "States": {"X": END, "Lost": END}}
    err = _refused(_one({"Type": "Parallel", "End": True, "Branches": [branch]}))
    assert err.pointer == "/States/A/Branches/0/States/Lost"
    assert err.state == "Lost"


def test_validation_states_reached_only_through_catch_and_choice_are_reachable() -> None:
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": FN,
                "Next": "C",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
            },
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "Yes"}],
                "Default": "No",
            },
            "Caught": END,
            "Yes": END,
            "No": END,
        },
    }
    assert set(parse(definition).states) == {"T", "C", "Caught", "Yes", "No"}


def test_validation_workflow_without_terminal_state_is_refused() -> None:
    loop = {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}
    err = _refused({"StartAt": "A", "States": loop})
    assert str(err) == "MISSING_END_STATE: Workflow has no terminal state at null"


def test_validation_empty_result_writer_is_refused() -> None:
    err = _refused(_one(_dmap(ResultWriter={})))
    assert err.field == "ResultWriter"


async def test_validation_writer_config_only_result_writer_runs_and_shapes_output() -> None:
    # GIVEN a Distributed Map whose ResultWriter has only a WriterConfig (FLATTEN)
    async def pair(payload: Any) -> Any:
        return [payload, payload * 10]

    engine, _, _, s3 = make_engine({"work": pair})
    definition = _one(
        _dmap(
            ItemsPath="$.items",
            ResultWriter={"WriterConfig": {"Transformation": "FLATTEN", "OutputType": "JSON"}},
        )
    )
    # WHEN it runs
    execution = await run_definition(engine, definition, {"items": [1, 2]})
    # THEN the child outputs come back flattened in the state output, and nothing is exported
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output == [1, 10, 2, 20]
    assert s3.objects == {}


async def test_validation_writer_config_only_none_returns_execution_documents() -> None:
    async def echo(payload: Any) -> Any:
        return payload

    engine, *_ = make_engine({"work": echo})
    definition = _one(
        _dmap(ItemsPath="$.items", ResultWriter={"WriterConfig": {"Transformation": "NONE"}})
    )
    execution = await run_definition(engine, definition, {"items": [7]})
    assert execution.status == "SUCCEEDED", execution.cause
    (document,) = execution.output
    assert (document["Status"], document["Output"], document["Input"]) == ("SUCCEEDED", "7", "7")
