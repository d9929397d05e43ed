"""JSONata and workflow variables, state by state, as AWS documents them.

- JSONata states (`QueryLanguage`, `Arguments`, `Output`, `$states`, `Condition`, `Items`,
  the Step Functions functions, `$eval` refused):
  https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html
- Variables (`Assign`, scopes, evaluation order, Choice rule vs state Assign):
  https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html
- Catch with `$states.errorOutput`: https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
- `States.QueryEvaluationError` and the EvaluationFailed event:
  https://docs.aws.amazon.com/step-functions/latest/apireference/API_EvaluationFailedEventDetails.html
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from sluice.local.workflow import DefinitionError
from sluice.local.workflow.definition import parse
from tests.unit.workflow.workflow_fakes import (
    FunctionRaised,
    InMemoryS3,
    make_engine,
    run_definition,
)

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
INVOKE = "arn:aws:states:::lambda:invoke"


def _jsonata(states: dict[str, Any], start: str | None = None) -> dict[str, Any]:
    return {"QueryLanguage": "JSONata", "StartAt": start or next(iter(states)), "States": states}


def _assigned(execution: Any, state: str) -> dict[str, Any]:
    for event in execution.history:
        details = event.get("stateExitedEventDetails", {})
        if details.get("name") == state:
            return {k: json.loads(v) for k, v in details.get("assignedVariables", {}).items()}
    raise AssertionError(f"{state} never exited")


async def test_jsonata_task_arguments_output_assign_choice_condition_and_items() -> None:
    # GIVEN a JSONata machine: Assign + Output on a Pass, Arguments on a Task, a Choice
    # Condition reading a variable, and a Distributed Map over an Items expression
    async def double(payload: Any) -> Any:
        return {"doubled": payload["n"] * 2}

    engine, _, invoker, _ = make_engine({"double": double})
    definition = _jsonata(
        {
            "Init": {
                "Type": "Pass",
                "Assign": {"factor": 3, "orders": "{% $states.input.orders %}"},
                "Output": {"count": "{% $count($states.input.orders) %}"},
                "Next": "Call",
            },
            "Call": {
                "Type": "Task",
                "Resource": INVOKE,
                "Arguments": {
                    "FunctionName": FN + "double",
                    "Payload": {"n": "{% $states.input.count * $factor %}"},
                },
                "Output": "{% $states.result.Payload %}",
                "Assign": {"last": "{% $states.result.Payload.doubled %}"},
                "Next": "Big?",
            },
            "Big?": {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $last > 10 %}", "Next": "Fan"}],
                "Default": "Small",
            },
            "Small": {"Type": "Fail", "Error": "TooSmall"},
            "Fan": {
                "Type": "Map",
                "Items": "{% $orders %}",
                "ItemSelector": {
                    "price": "{% $states.context.Map.Item.Value.price %}",
                    "index": "{% $states.context.Map.Item.Index %}",
                    "factor": "{% $factor %}",
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                    "StartAt": "Price",
                    "States": {
                        "Price": {
                            "Type": "Pass",
                            "Output": "{% $states.input.price * $states.input.factor %}",
                            "End": True,
                        }
                    },
                },
                "Output": {"totals": "{% $states.result %}", "sum": "{% $sum($states.result) %}"},
                "End": True,
            },
        }
    )
    # WHEN it runs
    execution = await run_definition(engine, definition, {"orders": [{"price": 5}, {"price": 7}]})
    # THEN each field did what the JSONata page says
    assert execution.status == "SUCCEEDED", execution.cause
    assert invoker.calls == [("double", {"n": 6})]
    assert execution.output == {"totals": [15, 21], "sum": 36}
    assert _assigned(execution, "Init") == {"factor": 3, "orders": [{"price": 5}, {"price": 7}]}
    assert _assigned(execution, "Call") == {"last": 12}


async def test_assign_takes_effect_after_the_state_jsonata_output_sees_the_old_value() -> None:
    engine, *_ = make_engine()
    definition = _jsonata(
        {
            "One": {"Type": "Pass", "Assign": {"x": 1}, "Next": "Two"},
            "Two": {
                "Type": "Pass",
                "Assign": {"x": "{% $x + 1 %}", "seen": "{% $x %}"},
                "Output": {"x": "{% $x %}"},
                "Next": "Three",
            },
            "Three": {"Type": "Pass", "Output": {"x": "{% $x %}"}, "End": True},
        }
    )
    execution = await run_definition(engine, definition, {})
    assert _assigned(execution, "Two") == {"x": 2, "seen": 1}
    assert [
        e["stateExitedEventDetails"]["output"]
        for e in execution.history
        if e["type"] == "PassStateExited"
    ][1:] == ['{"x":1}', '{"x":2}']
    assert execution.output == {"x": 2}


async def test_jsonpath_assign_reads_the_result_and_paths_read_values_from_before_the_state() -> (
    None
):
    # The evaluation order AWS records for a JSONPath Pass state: Assign's `$` is the state's
    # result; InputPath and OutputPath naming a variable read its value from state entry.
    engine, *_ = make_engine()
    definition = {
        "StartAt": "State0",
        "States": {
            "State0": {
                "Type": "Pass",
                "Result": {"theQuestion": "What is the answer?"},
                "Assign": {"question.$": "$.theQuestion", "answer": 42},
                "Next": "State1",
            },
            "State1": {
                "Type": "Pass",
                "InputPath": "$answer",
                "ResultPath": "$.theAnswer",
                "OutputPath": "$answer",
                "Assign": {"answer": "<omitted>"},
                "End": True,
            },
        },
    }
    execution = await run_definition(engine, definition, {})
    assert execution.status == "SUCCEEDED", execution.cause
    assert _assigned(execution, "State0") == {"question": "What is the answer?", "answer": 42}
    assert execution.output == 42
    assert _assigned(execution, "State1") == {"answer": "<omitted>"}


async def test_jsonpath_variables_in_parameters_intrinsics_and_choice() -> None:
    engine, *_ = make_engine()
    definition = {
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"user": {"name": "ada"}, "n": 3}, "Next": "Check"},
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$n", "NumericGreaterThan": 2, "Next": "Use"}],
                "Default": "Use",
            },
            "Use": {
                "Type": "Pass",
                "Parameters": {
                    "name.$": "$user.name",
                    "greeting.$": "States.Format('hi {} x{}', $user.name, $n)",
                },
                "End": True,
            },
        },
    }
    execution = await run_definition(engine, definition, {})
    assert execution.output == {"name": "ada", "greeting": "hi ada x3"}


@pytest.mark.parametrize(("condition", "expected"), [(True, "rule"), (False, "default")])
async def test_choice_rule_assign_replaces_the_state_assign(condition: bool, expected: str) -> None:
    engine, *_ = make_engine()
    definition = _jsonata(
        {
            "Pick": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Condition": "{% $states.input.condition %}",
                        "Assign": {"picked": "rule"},
                        "Next": "Done",
                    }
                ],
                "Assign": {"picked": "default"},
                "Default": "Done",
            },
            "Done": {"Type": "Pass", "Output": "{% $picked %}", "End": True},
        }
    )
    execution = await run_definition(engine, definition, {"condition": condition})
    assert execution.output == expected
    assert _assigned(execution, "Pick") == {"picked": expected}


async def test_jsonata_catch_output_defaults_to_error_output_and_assign_reads_it() -> None:
    async def broken(payload: Any) -> Any:
        raise FunctionRaised("BadThing", "it broke")

    engine, *_ = make_engine({"broken": broken})
    definition = _jsonata(
        {
            "Call": {
                "Type": "Task",
                "Resource": FN + "broken",
                "Assign": {"result": "SUCCESS"},
                "Catch": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "Assign": {"failure": "{% $states.errorOutput.Error %}"},
                        "Next": "Fallback",
                    }
                ],
                "End": True,
            },
            "Fallback": {
                "Type": "Pass",
                "Output": {"error": "{% $states.input.Error %}", "var": "{% $failure %}"},
                "End": True,
            },
        }
    )
    execution = await run_definition(engine, definition, {})
    assert execution.output == {"error": "BadThing", "var": "BadThing"}
    assert _assigned(execution, "Call") == {"failure": "BadThing"}


async def test_jsonpath_catch_assign_reads_the_error_output() -> None:
    async def broken(payload: Any) -> Any:
        raise FunctionRaised("BadThing", "it broke")

    engine, *_ = make_engine({"broken": broken})
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": FN + "broken",
                "Catch": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "ResultPath": "$.error",
                        "Assign": {"kind.$": "$.Error"},
                        "Next": "Done",
                    }
                ],
                "End": True,
            },
            "Done": {"Type": "Pass", "Parameters": {"kind.$": "$kind"}, "End": True},
        },
    }
    execution = await run_definition(engine, definition, {"a": 1})
    assert execution.output == {"kind": "BadThing"}


async def test_undefined_expression_fails_with_query_evaluation_error_as_aws_words_it() -> None:
    engine, *_ = make_engine()
    definition = _jsonata(
        {"State0": {"Type": "Pass", "Output": {"result": "{% $doesNotExist %}"}, "End": True}}
    )
    execution = await run_definition(engine, definition, {})
    assert (execution.status, execution.error) == ("FAILED", "States.QueryEvaluationError")
    assert execution.cause == (
        "An error occurred while executing the state 'State0' (entered at the event id #2). "
        "The JSONata expression '$doesNotExist' specified for the field 'Output/result' "
        "returned nothing (undefined)."
    )
    (failed,) = [e for e in execution.history if e["type"] == "EvaluationFailed"]
    assert failed["evaluationFailedEventDetails"]["location"] == "Output/result"
    assert failed["evaluationFailedEventDetails"]["state"] == "State0"


async def test_query_evaluation_error_can_be_caught() -> None:
    engine, *_ = make_engine()
    definition = _jsonata(
        {
            "Bad": {
                "Type": "Task",
                "Resource": FN + "never",
                "Arguments": {"n": "{% $number('x') %}"},
                "Catch": [{"ErrorEquals": ["States.QueryEvaluationError"], "Next": "Ok"}],
                "End": True,
            },
            "Ok": {"Type": "Pass", "Output": "{% $states.input.Error %}", "End": True},
        }
    )
    execution = await run_definition(engine, definition, {})
    assert execution.output == "States.QueryEvaluationError"


async def test_parallel_branch_reads_outer_variables_and_its_own_stay_inside() -> None:
    engine, *_ = make_engine()
    branch = {
        "StartAt": "Inner",
        "States": {
            "Inner": {"Type": "Pass", "Assign": {"inner": "{% $outer * 2 %}"}, "Next": "Use"},
            "Use": {"Type": "Pass", "Output": "{% $inner %}", "End": True},
        },
    }
    definition = _jsonata(
        {
            "Set": {"Type": "Pass", "Assign": {"outer": 21}, "Next": "Both"},
            "Both": {"Type": "Parallel", "Branches": [branch, branch], "Next": "After"},
            "After": {"Type": "Pass", "Output": "{% $inner %}", "End": True},
        }
    )
    execution = await run_definition(engine, definition, {})
    # The branches saw $outer; after the Parallel, $inner does not exist any more.
    assert (execution.status, execution.error) == ("FAILED", "States.QueryEvaluationError")
    outputs = [
        e["stateExitedEventDetails"]["output"]
        for e in execution.history
        if e["type"] == "ParallelStateExited"
    ]
    assert outputs == ["[42,42]"]


async def test_inline_map_iterations_have_their_own_scope() -> None:
    engine, *_ = make_engine()
    definition = _jsonata(
        {
            "Set": {"Type": "Pass", "Assign": {"bias": 100}, "Next": "Each"},
            "Each": {
                "Type": "Map",
                "Items": [1, 2, 3],
                "ItemProcessor": {
                    "StartAt": "Keep",
                    "States": {
                        "Keep": {
                            "Type": "Pass",
                            "Assign": {"mine": "{% $states.input + $bias %}"},
                            "Next": "Show",
                        },
                        "Show": {"Type": "Pass", "Output": "{% $mine %}", "End": True},
                    },
                },
                "End": True,
            },
        }
    )
    execution = await run_definition(engine, definition, {})
    assert execution.output == [101, 102, 103]


async def test_distributed_map_children_do_not_see_outer_variables() -> None:
    engine, *_ = make_engine()
    definition = _jsonata(
        {
            "Set": {"Type": "Pass", "Assign": {"secret": 1}, "Next": "Fan"},
            "Fan": {
                "Type": "Map",
                "Items": [1],
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                    "StartAt": "Peek",
                    "States": {"Peek": {"Type": "Pass", "Output": "{% $secret %}", "End": True}},
                },
                "End": True,
            },
        }
    )
    execution = await run_definition(engine, definition, {})
    assert (execution.status, execution.error) == (
        "FAILED",
        "States.ExceedToleratedFailureThreshold",
    )
    (map_run,) = engine.list_map_runs(execution.arn)
    (child,) = engine.list_executions(map_run_arn=map_run.arn)
    assert child.error == "States.QueryEvaluationError"


async def test_inner_state_assigning_an_outer_variable_fails_the_run() -> None:
    # Outer variables are read-only inside a branch: the assignment fails with States.Runtime.
    branch = {"StartAt": "In", "States": {"In": {"Type": "Pass", "Assign": {"x": 2}, "End": True}}}
    definition = _jsonata(
        {
            "Set": {"Type": "Pass", "Assign": {"x": 1}, "Next": "Both"},
            "Both": {"Type": "Parallel", "Branches": [branch], "End": True},
        }
    )
    engine, *_ = make_engine()
    execution = await run_definition(engine, definition, {})
    assert (execution.status, execution.error) == ("FAILED", "States.Runtime")
    assert execution.cause == (
        "Cannot bind value '2' to variable 'x' as it belongs to an outer scope."
    )


async def test_a_branch_may_assign_a_name_the_outer_scope_assigns_only_later() -> None:
    branch = {"StartAt": "In", "States": {"In": {"Type": "Pass", "Assign": {"x": 2}, "End": True}}}
    definition = _jsonata(
        {
            "Both": {"Type": "Parallel", "Branches": [branch], "Next": "Set"},
            "Set": {"Type": "Pass", "Assign": {"x": 1}, "Next": "Read"},
            "Read": {"Type": "Pass", "Output": "{% $x %}", "End": True},
        }
    )
    engine, *_ = make_engine()
    execution = await run_definition(engine, definition, {})
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output == 1


async def test_a_jsonata_state_in_a_jsonpath_machine() -> None:
    engine, *_ = make_engine()
    definition = {
        "StartAt": "Old",
        "States": {
            "Old": {"Type": "Pass", "Parameters": {"v.$": "$.a"}, "Next": "New"},
            "New": {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": "{% $states.input.v + 1 %}",
                "End": True,
            },
        },
    }
    execution = await run_definition(engine, definition, {"a": 1})
    assert execution.output == 2


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        (
            _jsonata({"A": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": True}}),
            "QueryLanguage",
        ),
        (_jsonata({"A": {"Type": "Pass", "Parameters": {"a": 1}, "End": True}}), "Parameters"),
        (_jsonata({"A": {"Type": "Pass", "Result": 1, "End": True}}), "Result"),
        (_jsonata({"A": {"Type": "Wait", "SecondsPath": "$.s", "End": True}}), "Seconds"),
        (
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Output": 1, "End": True}}},
            "Output",
        ),
        (
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Arguments": {}, "End": True}}},
            "Arguments",
        ),
        (
            _jsonata({"A": {"Type": "Pass", "Output": "{% $states.input. %}", "End": True}}),
            "Output",
        ),
        (_jsonata({"A": {"Type": "Pass", "Output": "{% $eval('1') %}", "End": True}}), "Output"),
        (_jsonata({"A": {"Type": "Pass", "Assign": {"states": 1}, "End": True}}), "Assign.states"),
        (
            _jsonata(
                {
                    "A": {
                        "Type": "Choice",
                        "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "B"}],
                        "Default": "B",
                    },
                    "B": {"Type": "Succeed"},
                }
            ),
            "Choices[0].Condition",
        ),
    ],
)
def test_jsonata_construct_refused_at_create_names_state_and_field(
    definition: dict[str, Any], field: str
) -> None:
    with pytest.raises(DefinitionError) as info:
        parse(definition)
    assert info.value.state == "A"
    assert info.value.field == field


@pytest.mark.parametrize(
    ("state", "field", "reference"),
    [
        (
            {"Type": "Pass", "Output": "{% $states.result %}", "End": True},
            "Output",
            "$states.result",
        ),
        (
            {
                "Type": "Task",
                "Resource": FN + "f",
                "Arguments": {"a": "{% $states.result.x %}"},
                "End": True,
            },
            "Arguments.a",
            "$states.result",
        ),
        (
            {
                "Type": "Task",
                "Resource": FN + "f",
                "Output": "{% $states.errorOutput %}",
                "End": True,
            },
            "Output",
            "$states.errorOutput",
        ),
        (
            {"Type": "Pass", "Assign": {"id": "{% $$.Execution.Id %}"}, "End": True},
            "Assign.id",
            "$$",
        ),
    ],
)
def test_states_member_read_where_aws_does_not_offer_it_is_refused(
    state: dict[str, Any], field: str, reference: str
) -> None:
    with pytest.raises(DefinitionError) as info:
        parse(_jsonata({"A": state}))
    assert (info.value.state, info.value.field) == ("A", field)
    assert f"reads {reference}" in str(info.value)


def test_states_result_and_error_output_where_aws_offers_them_are_accepted() -> None:
    state = {
        "Type": "Task",
        "Resource": FN + "f",
        "Arguments": {"in": "{% $states.input %}", "ctx": "{% $states.context.Execution.Id %}"},
        "Output": "{% $states.result %}",
        "Assign": {"r": "{% $states.result %}", "s": "{% '$states.errorOutput' %}"},
        "Catch": [
            {
                "ErrorEquals": ["States.ALL"],
                "Output": "{% $states.errorOutput %}",
                "Assign": {"e": "{% $states.errorOutput.Error %}"},
                "Next": "B",
            }
        ],
        "Next": "B",
    }
    parse(_jsonata({"A": state, "B": {"Type": "Succeed"}}))


async def test_step_functions_jsonata_functions() -> None:
    engine, *_ = make_engine()
    definition = _jsonata(
        {
            "Fns": {
                "Type": "Pass",
                "Output": {
                    "partition": "{% $partition([1, 2, 3, 4, 5], 2) %}",
                    "range": "{% $range(0, 10, 5) %}",
                    "hash": "{% $hash('abc', 'SHA-256') %}",
                    "seeded": "{% $random(7) = $random(7) %}",
                    "uuid": "{% $uuid() %}",
                    "parse": "{% $parse('{\"a\": [1]}') %}",
                },
                "End": True,
            }
        }
    )
    execution = await run_definition(engine, definition, {})
    output = execution.output
    assert output["partition"] == [[1, 2], [3, 4], [5]]
    assert output["range"] == [0, 5, 10]
    assert output["hash"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert output["seeded"] is True
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", output["uuid"]
    )
    assert output["parse"] == {"a": [1]}


async def test_jsonata_wait_seconds_fail_error_cause_and_timeout_expressions() -> None:
    async def slow(payload: Any) -> Any:
        return payload

    engine, *_ = make_engine({"slow": slow})
    definition = _jsonata(
        {
            "Pause": {"Type": "Wait", "Seconds": "{% $states.input.wait %}", "Next": "Call"},
            "Call": {
                "Type": "Task",
                "Resource": FN + "slow",
                "TimeoutSeconds": "{% $states.input.wait * 10 %}",
                "Next": "Stop",
            },
            "Stop": {
                "Type": "Fail",
                "Error": "{% 'Stopped.' & $string($states.input.wait) %}",
                "Cause": "{% 'after ' & $string($states.input.wait) & 's' %}",
            },
        }
    )
    execution = await run_definition(engine, definition, {"wait": 5})
    assert (execution.error, execution.cause) == ("Stopped.5", "after 5s")
    scheduled = [e for e in execution.history if e["type"] == "LambdaFunctionScheduled"]
    assert scheduled[0]["lambdaFunctionScheduledEventDetails"]["timeoutInSeconds"] == 50


async def test_jsonata_distributed_map_reader_batcher_writer_and_parallel_arguments() -> None:
    # GIVEN a JSONL manifest in S3 and a JSONata Distributed Map whose reader, batcher and
    # writer take Arguments and expressions, behind a Parallel that hands branches Arguments
    s3 = InMemoryS3()
    s3.objects[("work", "in/items.jsonl")] = "\n".join(json.dumps({"n": n}) for n in range(5))
    engine, _, _, s3 = make_engine({}, s3)
    fan = {
        "Type": "Map",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSONL", "MaxItems": "{% $states.input.limit %}"},
            "Arguments": {"Bucket": "{% $states.input.bucket %}", "Key": "in/items.jsonl"},
        },
        "ItemBatcher": {
            "MaxItemsPerBatch": "{% $states.input.per %}",
            "BatchInput": {"tag": "{% $states.input.tag %}"},
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
            "StartAt": "Sum",
            "States": {
                "Sum": {
                    "Type": "Pass",
                    "Output": {
                        "tag": "{% $states.input.BatchInput.tag %}",
                        "sum": "{% $sum($states.input.Items.n) %}",
                    },
                    "End": True,
                }
            },
        },
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Arguments": {"Bucket": "{% $states.input.bucket %}", "Prefix": "out"},
            "WriterConfig": {"Transformation": "COMPACT", "OutputType": "JSON"},
        },
        "End": True,
    }
    definition = _jsonata(
        {
            "Both": {
                "Type": "Parallel",
                "Arguments": {
                    "bucket": "work",
                    "limit": "{% $states.input.limit %}",
                    "per": 2,
                    "tag": "t",
                },
                "Branches": [{"StartAt": "Fan", "States": {"Fan": fan}}],
                "Output": "{% $states.result[0].ResultWriterDetails %}",
                "End": True,
            }
        }
    )
    # WHEN it runs over the first four items
    execution = await run_definition(engine, definition, {"limit": 4})
    # THEN two batches of two were summed and written where the Arguments said
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output["Bucket"] == "work"
    manifest = json.loads(s3.objects[("work", execution.output["Key"])])
    (succeeded,) = manifest["ResultFiles"]["SUCCEEDED"]
    results = json.loads(s3.objects[("work", succeeded["Key"])])
    assert sorted(results, key=lambda r: r["sum"]) == [
        {"tag": "t", "sum": 1},
        {"tag": "t", "sum": 5},
    ]
    assert execution.output["Key"].startswith("out/")
