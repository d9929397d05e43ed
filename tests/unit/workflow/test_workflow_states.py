"""State types, input/output processing and the context object."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.unit.workflow.workflow_fakes import (
    held_until_concurrent,
    make_engine,
    run_definition,
)


def _one(state: dict[str, Any], **more: dict[str, Any]) -> dict[str, Any]:
    return {"StartAt": "S", "States": {"S": state, **more}}


async def test_pass_result_with_result_path_merges_into_input() -> None:
    engine, *_ = make_engine()
    # GIVEN the AWS docs' Pass example: a fixed Result placed at $.coords
    definition = _one(
        {
            "Type": "Pass",
            "Result": {"x-datum": 0.381018, "y-datum": 622.2269926397355},
            "ResultPath": "$.coords",
            "End": True,
        }
    )
    execution = await run_definition(engine, definition, {"georefOf": "Home"})
    assert execution.output == {
        "georefOf": "Home",
        "coords": {"x-datum": 0.381018, "y-datum": 622.2269926397355},
    }


async def test_io_processing_applies_input_parameters_selector_result_output_in_order() -> None:
    async def echo(payload: Any) -> Any:
        return {"sum": payload["a"] + payload["b"], "noise": "x"}

    engine, *_ = make_engine({"adder": echo})
    definition = _one(
        {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:adder",
            "InputPath": "$.numbers",
            "Parameters": {"a.$": "$.first", "b.$": "$.second"},
            "ResultSelector": {"total.$": "$.sum"},
            "ResultPath": "$.numbers.result",
            "OutputPath": "$.numbers",
            "End": True,
        }
    )
    execution = await run_definition(
        engine, definition, {"numbers": {"first": 2, "second": 3}, "other": 1}
    )
    assert execution.status == "SUCCEEDED"
    assert execution.output == {"first": 2, "second": 3, "result": {"total": 5}}


async def test_result_path_null_discards_result_and_keeps_input() -> None:
    engine, *_ = make_engine()
    definition = _one({"Type": "Pass", "Result": "dropped", "ResultPath": None, "End": True})
    assert (await run_definition(engine, definition, {"keep": 1})).output == {"keep": 1}


async def test_input_and_output_path_null_give_empty_object() -> None:
    engine, *_ = make_engine()
    definition = _one({"Type": "Pass", "InputPath": None, "End": True})
    assert (await run_definition(engine, definition, {"x": 1})).output == {}
    definition = _one({"Type": "Pass", "OutputPath": None, "End": True})
    assert (await run_definition(engine, definition, {"x": 1}, name="b")).output == {}


async def test_context_object_exposes_execution_state_and_machine() -> None:
    engine, *_ = make_engine()
    definition = _one(
        {
            "Type": "Pass",
            "Parameters": {
                "id.$": "$$.Execution.Id",
                "name.$": "$$.Execution.Name",
                "input.$": "$$.Execution.Input",
                "start.$": "$$.Execution.StartTime",
                "role.$": "$$.Execution.RoleArn",
                "state.$": "$$.State.Name",
                "entered.$": "$$.State.EnteredTime",
                "retries.$": "$$.State.RetryCount",
                "machine.$": "$$.StateMachine.Id",
                "machineName.$": "$$.StateMachine.Name",
            },
            "End": True,
        }
    )
    execution = await run_definition(engine, definition, {"in": 1}, name="ctx")
    out = execution.output
    assert out["id"] == execution.arn
    assert out["name"] == execution.name
    assert out["input"] == {"in": 1}
    assert out["start"] == "2024-01-01T00:00:00.000Z"
    assert out["role"].startswith("arn:aws:iam::")
    assert (out["state"], out["retries"]) == ("S", 0)
    assert out["entered"] == "2024-01-01T00:00:00.000Z"
    assert out["machine"] == "arn:aws:states:us-east-1:123456789012:stateMachine:ctx"
    assert out["machineName"] == "ctx"


# The Choice example of https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html
DOC_CHOICE = {
    "StartAt": "ChoiceStateX",
    "States": {
        "ChoiceStateX": {
            "Type": "Choice",
            "Choices": [
                {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
                {"Variable": "$.value", "NumericEquals": 0, "Next": "ValueIsZero"},
                {
                    "And": [
                        {"Variable": "$.value", "NumericGreaterThanEquals": 20},
                        {"Variable": "$.value", "NumericLessThan": 30},
                    ],
                    "Next": "ValueInTwenties",
                },
            ],
            "Default": "DefaultState",
        },
        "Public": {"Type": "Pass", "Result": "Public", "End": True},
        "ValueIsZero": {"Type": "Pass", "Result": "Zero", "End": True},
        "ValueInTwenties": {"Type": "Pass", "Result": "Twenties", "End": True},
        "DefaultState": {"Type": "Fail", "Error": "DefaultStateError", "Cause": "No Matches!"},
    },
}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"type": "Public", "value": 5}, "Public"),
        ({"type": "Private", "value": 0}, "Zero"),
        ({"type": "Private", "value": 22}, "Twenties"),
    ],
)
async def test_choice_documented_example_takes_documented_branch(
    data: dict[str, Any], expected: str
) -> None:
    engine, *_ = make_engine()
    assert (await run_definition(engine, DOC_CHOICE, data)).output == expected


async def test_choice_documented_example_default_reaches_fail_state() -> None:
    engine, *_ = make_engine()
    execution = await run_definition(engine, DOC_CHOICE, {"type": "Private", "value": 99})
    assert (execution.status, execution.error, execution.cause) == (
        "FAILED",
        "DefaultStateError",
        "No Matches!",
    )


@pytest.mark.parametrize(
    ("rule", "data", "matches"),
    [
        ({"Variable": "$.s", "StringEquals": "a"}, {"s": "a"}, True),
        ({"Variable": "$.s", "StringLessThan": "b"}, {"s": "a"}, True),
        ({"Variable": "$.s", "StringGreaterThanEquals": "b"}, {"s": "a"}, False),
        ({"Variable": "$.s", "StringEqualsPath": "$.t"}, {"s": "a", "t": "a"}, True),
        ({"Variable": "$.s", "StringMatches": "log-*.txt"}, {"s": "log-2024.txt"}, True),
        ({"Variable": "$.s", "StringMatches": "log-\\*"}, {"s": "log-x"}, False),
        ({"Variable": "$.n", "NumericLessThanEquals": 3}, {"n": 3}, True),
        ({"Variable": "$.n", "NumericGreaterThanPath": "$.m"}, {"n": 3, "m": 2}, True),
        ({"Variable": "$.n", "NumericEquals": 3}, {"n": "3"}, False),
        ({"Variable": "$.b", "BooleanEquals": True}, {"b": True}, True),
        ({"Variable": "$.b", "BooleanEqualsPath": "$.c"}, {"b": True, "c": False}, False),
        (
            {"Variable": "$.t", "TimestampLessThan": "2024-01-02T00:00:00Z"},
            {"t": "2024-01-01T23:59:59+00:00"},
            True,
        ),
        (
            {"Variable": "$.t", "TimestampEqualsPath": "$.u"},
            {"t": "2024-01-01T01:00:00+01:00", "u": "2024-01-01T00:00:00Z"},
            True,
        ),
        ({"Variable": "$.x", "IsPresent": False}, {}, True),
        ({"Variable": "$.x", "IsNull": True}, {"x": None}, True),
        ({"Variable": "$.x", "IsNumeric": True}, {"x": True}, False),
        ({"Variable": "$.x", "IsString": True}, {"x": "s"}, True),
        ({"Variable": "$.x", "IsBoolean": True}, {"x": False}, True),
        ({"Variable": "$.x", "IsTimestamp": True}, {"x": "2024-01-01T00:00:00Z"}, True),
        ({"Variable": "$.x", "IsTimestamp": True}, {"x": "yesterday"}, False),
        (
            {"Or": [{"Variable": "$.x", "IsNull": True}, {"Variable": "$.x", "NumericEquals": 1}]},
            {"x": 1},
            True,
        ),
    ],
)
async def test_choice_operator_evaluates_like_asl(
    rule: dict[str, Any], data: dict[str, Any], matches: bool
) -> None:
    engine, *_ = make_engine()
    definition = {
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": [{**rule, "Next": "Yes"}], "Default": "No"},
            "Yes": {"Type": "Pass", "Result": True, "End": True},
            "No": {"Type": "Pass", "Result": False, "End": True},
        },
    }
    assert (await run_definition(engine, definition, data)).output is matches


async def test_choice_without_match_or_default_fails_no_choice_matched() -> None:
    engine, *_ = make_engine()
    definition = {
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": True, "Next": "D"}]},
            "D": {"Type": "Succeed"},
        },
    }
    execution = await run_definition(engine, definition, {"x": 1})
    assert execution.error == "States.NoChoiceMatched"


async def test_choice_missing_variable_fails_states_runtime() -> None:
    engine, *_ = make_engine()
    definition = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.nope", "NumericEquals": 1, "Next": "D"}],
                "Default": "D",
            },
            "D": {"Type": "Succeed"},
        },
    }
    execution = await run_definition(engine, definition, {})
    assert (execution.status, execution.error) == ("FAILED", "States.Runtime")


@pytest.mark.parametrize(
    ("state", "data", "seconds"),
    [
        ({"Seconds": 10}, {}, 10),
        ({"SecondsPath": "$.wait"}, {"wait": 7}, 7),
        ({"Timestamp": "2024-01-01T00:01:00Z"}, {}, 60),
        ({"TimestampPath": "$.until"}, {"until": "2024-01-01T00:00:30Z"}, 30),
        ({"Timestamp": "2023-12-31T00:00:00Z"}, {}, 0),
    ],
)
async def test_wait_sleeps_through_injected_clock(
    state: dict[str, Any], data: dict[str, Any], seconds: float
) -> None:
    engine, clock, *_ = make_engine()
    execution = await run_definition(engine, _one({"Type": "Wait", **state, "End": True}), data)
    assert execution.status == "SUCCEEDED"
    assert execution.output == data
    assert clock.sleeps == [seconds]


async def test_fail_error_and_cause_paths_resolve_from_input() -> None:
    engine, *_ = make_engine()
    definition = _one(
        {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('bad {}', $.id)"}
    )
    execution = await run_definition(engine, definition, {"e": "CustomError", "id": 7})
    assert (execution.error, execution.cause) == ("CustomError", "bad 7")


async def test_succeed_applies_output_path() -> None:
    engine, *_ = make_engine()
    execution = await run_definition(
        engine, _one({"Type": "Succeed", "OutputPath": "$.keep"}), {"keep": [1], "drop": 2}
    )
    assert execution.output == [1]


async def test_parallel_runs_branches_and_collects_outputs_in_order() -> None:
    engine, *_ = make_engine()

    def branch(value: int) -> dict[str, Any]:
        return {
            "StartAt": "B",
            "States": {
                "B": {"Type": "Pass", "Parameters": {"v": value, "in.$": "$.x"}, "End": True}
            },
        }

    definition = _one(
        {"Type": "Parallel", "Branches": [branch(1), branch(2)], "ResultPath": "$.r", "End": True}
    )
    execution = await run_definition(engine, definition, {"x": "i"})
    assert execution.output == {"x": "i", "r": [{"v": 1, "in": "i"}, {"v": 2, "in": "i"}]}


async def test_parallel_branch_failure_fails_state_and_cancels_others() -> None:
    started: list[str] = []

    async def slow(payload: Any) -> Any:
        started.append("slow")
        await asyncio.sleep(3600)
        return "never"

    engine, *_ = make_engine({"slow": slow})
    definition = _one(
        {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "BranchBroke"}}},
                {
                    "StartAt": "T",
                    "States": {
                        "T": {
                            "Type": "Task",
                            "Resource": "arn:aws:lambda:us-east-1:1:function:slow",
                            "End": True,
                        }
                    },
                },
            ],
            "End": True,
        }
    )
    # A deadline only: the slow branch would sleep an hour unless the failure cancels it.
    execution = await asyncio.wait_for(run_definition(engine, definition, {}), timeout=60)
    assert (execution.status, execution.error) == ("FAILED", "BranchBroke")


# The inline Map example of https://docs.aws.amazon.com/step-functions/latest/dg/state-map-inline.html
DOC_MAP_INPUT: dict[str, Any] = {
    "ship-date": "2016-03-14T01:59:00Z",
    "detail": {
        "delivery-partner": "UQS",
        "shipped": [
            {"prod": "R31", "dest-code": 9511, "quantity": 1344},
            {"prod": "S39", "dest-code": 9511, "quantity": 40},
        ],
    },
}


async def test_inline_map_documented_example_builds_item_inputs() -> None:
    engine, *_ = make_engine()
    definition = _one(
        {
            "Type": "Map",
            "InputPath": "$.detail",
            "ItemsPath": "$.shipped",
            "MaxConcurrency": 0,
            "ItemSelector": {
                "parcel.$": "$$.Map.Item.Value",
                "courier.$": "$.delivery-partner",
                "index.$": "$$.Map.Item.Index",
            },
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Validate",
                "States": {"Validate": {"Type": "Pass", "End": True}},
            },
            "ResultPath": "$.detail.shipped",
            "End": True,
        }
    )
    execution = await run_definition(engine, definition, DOC_MAP_INPUT)
    shipped = execution.output["detail"]["shipped"]
    assert shipped == [
        {"parcel": DOC_MAP_INPUT["detail"]["shipped"][0], "courier": "UQS", "index": 0},
        {"parcel": DOC_MAP_INPUT["detail"]["shipped"][1], "courier": "UQS", "index": 1},
    ]


async def test_inline_map_legacy_iterator_and_parameters_still_work() -> None:
    engine, *_ = make_engine()
    definition = _one(
        {
            "Type": "Map",
            "Parameters": {"v.$": "$$.Map.Item.Value"},
            "Iterator": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            "End": True,
        }
    )
    assert (await run_definition(engine, definition, [1, 2])).output == [{"v": 1}, {"v": 2}]


async def test_inline_map_over_object_exposes_item_key() -> None:
    engine, *_ = make_engine()
    definition = _one(
        {
            "Type": "Map",
            "ItemsPath": "$.byName",
            "ItemSelector": {"k.$": "$$.Map.Item.Key", "v.$": "$$.Map.Item.Value"},
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            "End": True,
        }
    )
    execution = await run_definition(engine, definition, {"byName": {"a": 1, "b": 2}})
    assert execution.output == [{"k": "a", "v": 1}, {"k": "b", "v": 2}]


async def test_inline_map_max_concurrency_bounds_running_iterations() -> None:
    work = held_until_concurrent(2, lambda payload: payload * 2)
    engine, _, invoker, _ = make_engine({"work": work})
    definition = _one(
        {
            "Type": "Map",
            "MaxConcurrency": 2,
            "ItemProcessor": {
                "StartAt": "T",
                "States": {
                    "T": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:1:function:work",
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    )
    execution = await run_definition(engine, definition, list(range(8)))
    assert execution.output == [i * 2 for i in range(8)]
    assert invoker.peak == 2


async def test_inline_map_items_path_not_array_fails_states_runtime() -> None:
    engine, *_ = make_engine()
    definition = _one(
        {
            "Type": "Map",
            "ItemsPath": "$.x",
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            "End": True,
        }
    )
    execution = await run_definition(engine, definition, {"x": 3})
    assert execution.error == "States.Runtime"


async def test_history_records_aws_event_types_in_order() -> None:
    engine, *_ = make_engine()
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Next": "W"},
            "W": {"Type": "Wait", "Seconds": 1, "End": True},
        },
    }
    execution = await run_definition(engine, definition, {})
    assert [e["type"] for e in execution.history] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "WaitStateEntered",
        "WaitStateExited",
        "ExecutionSucceeded",
    ]
    assert [e["id"] for e in execution.history] == [1, 2, 3, 4, 5, 6]
    assert execution.history[1]["stateEnteredEventDetails"]["name"] == "A"
