"""Differential test: the same definitions on moto's Step Functions interpreter and on ours.

moto executes state machines only when switched on via `POST /moto-api/config` *before* the state
machines are created (DESIGN section 6); the switch is turned off again afterwards so other tests
see moto's default.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from sluice.local.workflow import WorkflowEngine

ROLE = "arn:aws:iam::123456789012:role/sfn"


def _set_execution(endpoint: str, enabled: bool) -> None:
    body = json.dumps({"stepfunctions": {"execute_state_machine": enabled}}).encode()
    request = urllib.request.Request(f"{endpoint}/moto-api/config", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture
def moto_sfn(moto_endpoint: str) -> Iterator[Any]:
    _set_execution(moto_endpoint, True)
    try:
        yield boto3.client("stepfunctions", endpoint_url=moto_endpoint, region_name="us-east-1")
    finally:
        _set_execution(moto_endpoint, False)


def _pass(**fields: Any) -> dict[str, Any]:
    return {"Type": "Pass", **fields}


CASES: list[tuple[str, dict[str, Any], list[Any]]] = [
    (
        "pass-io",
        {
            "StartAt": "P",
            "States": {
                "P": _pass(
                    InputPath="$.in",
                    Parameters={"a.$": "$.a", "const": 1, "all.$": "$"},
                    ResultPath="$.out",
                    OutputPath="$.out",
                    End=True,
                )
            },
        },
        [{"in": {"a": 1, "b": [1, 2]}}],
    ),
    (
        "pass-result-null-path",
        {
            "StartAt": "P",
            "States": {
                "P": _pass(Result={"fixed": True}, ResultPath="$.deep.er", Next="Q"),
                "Q": _pass(Result="ignored", ResultPath=None, End=True),
            },
        },
        [{"x": 1}, {"x": {"deep": 2}}],
    ),
    (
        "intrinsics",
        {
            "StartAt": "P",
            "States": {
                "P": _pass(
                    Parameters={
                        "fmt.$": "States.Format('{}: {}', $.name, States.ArrayLength($.l))",
                        "parts.$": "States.ArrayPartition($.l, 2)",
                        "has.$": "States.ArrayContains($.l, 3)",
                        "range.$": "States.ArrayRange(1, 9, 3)",
                        "item.$": "States.ArrayGetItem($.l, 1)",
                        "uniq.$": "States.ArrayUnique($.dup)",
                        "json.$": "States.JsonToString($.obj)",
                        "parsed.$": "States.StringToJson($.text)",
                        "merged.$": "States.JsonMerge($.obj, $.obj2, false)",
                        "sum.$": "States.MathAdd($.n, 5)",
                        "split.$": "States.StringSplit($.csv, ',')",
                        "b64.$": "States.Base64Encode($.name)",
                        "hash.$": "States.Hash($.name, 'SHA-256')",
                        "arr.$": "States.Array($.n, 'x', $.obj)",
                    },
                    End=True,
                )
            },
        },
        [
            {
                "name": "orders",
                "l": [1, 2, 3, 4, 5],
                "dup": [1, 1, 2],
                "obj": {"a": 1},
                "obj2": {"b": 2},
                "text": '{"k": [1]}',
                "n": 3,
                "csv": "a,b,c",
            }
        ],
    ),
    (
        "choice",
        {
            "StartAt": "C",
            "States": {
                "C": {
                    "Type": "Choice",
                    "Choices": [
                        {
                            "Not": {"Variable": "$.type", "StringEquals": "Private"},
                            "Next": "Public",
                        },
                        {"Variable": "$.value", "NumericEquals": 0, "Next": "Zero"},
                        {
                            "And": [
                                {"Variable": "$.value", "NumericGreaterThanEquals": 20},
                                {"Variable": "$.value", "NumericLessThan": 30},
                            ],
                            "Next": "Twenties",
                        },
                        {"Variable": "$.name", "StringMatches": "log-*", "Next": "Log"},
                        {"Variable": "$.flag", "IsPresent": True, "Next": "Flag"},
                    ],
                    "Default": "Other",
                },
                "Public": _pass(Result={"branch": "public"}, End=True),
                "Zero": _pass(Result={"branch": "zero"}, End=True),
                "Twenties": _pass(Result={"branch": "twenties"}, End=True),
                "Log": _pass(Result={"branch": "log"}, End=True),
                "Flag": _pass(Result={"branch": "flag"}, End=True),
                "Other": _pass(End=True),
            },
        },
        [
            {"type": "Public"},
            {"type": "Private", "value": 0},
            {"type": "Private", "value": 25},
            {"type": "Private", "value": 5, "name": "log-1"},
            {"type": "Private", "value": 5, "name": "x", "flag": None},
            {"type": "Private", "value": 5, "name": "x"},
        ],
    ),
    (
        "parallel",
        {
            "StartAt": "Par",
            "States": {
                "Par": {
                    "Type": "Parallel",
                    "ResultPath": "$.branches",
                    "Branches": [
                        {
                            "StartAt": "A",
                            "States": {"A": _pass(Parameters={"a.$": "$.v"}, End=True)},
                        },
                        {"StartAt": "B", "States": {"B": _pass(Result=[1, 2], End=True)}},
                    ],
                    "End": True,
                }
            },
        },
        [{"v": "value"}],
    ),
    (
        "inline-map",
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "MaxConcurrency": 2,
                    "ItemSelector": {
                        "value.$": "$$.Map.Item.Value",
                        "index.$": "$$.Map.Item.Index",
                        "tag.$": "$.tag",
                    },
                    "ItemProcessor": {
                        "StartAt": "I",
                        "States": {
                            "I": _pass(
                                Parameters={"v.$": "$.value", "i.$": "$.index", "t.$": "$.tag"},
                                End=True,
                            )
                        },
                    },
                    "ResultPath": "$.results",
                    "End": True,
                }
            },
        },
        [{"items": [{"k": 1}, {"k": 2}, {"k": 3}], "tag": "t"}, {"items": [], "tag": "e"}],
    ),
    (
        "fail",
        {
            "StartAt": "F",
            "States": {"F": {"Type": "Fail", "Error": "Custom.Error", "Cause": "it broke"}},
        },
        [{}],
    ),
    (
        "catch-fail-in-parallel",
        {
            "StartAt": "Par",
            "States": {
                "Par": {
                    "Type": "Parallel",
                    "Branches": [
                        {
                            "StartAt": "F",
                            "States": {
                                "F": {"Type": "Fail", "Error": "BranchError", "Cause": "boom"}
                            },
                        }
                    ],
                    "Catch": [
                        {"ErrorEquals": ["BranchError"], "ResultPath": "$.err", "Next": "Handled"}
                    ],
                    "End": True,
                },
                "Handled": _pass(End=True),
            },
        },
        [{"keep": 1}],
    ),
]


# Results are objects: moto renders a top-level string output without JSON quotes (AWS quotes it).
def _run_on_moto(client: Any, name: str, definition: dict[str, Any], data: Any) -> dict[str, Any]:
    arn = client.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    execution = client.start_execution(stateMachineArn=arn, input=json.dumps(data))
    deadline = time.monotonic() + 60  # a deadline, not a budget: generous for a loaded machine
    while True:
        doc = client.describe_execution(executionArn=execution["executionArn"])
        if doc["status"] != "RUNNING" or time.monotonic() > deadline:
            return dict(doc)
        time.sleep(0.02)


async def _run_locally(definition: dict[str, Any], data: Any) -> dict[str, Any]:
    engine = WorkflowEngine()
    machine = engine.create_state_machine("diff", json.dumps(definition), ROLE)
    execution = await engine.wait(engine.start_execution(machine.arn, json.dumps(data)).arn)
    doc: dict[str, Any] = {"status": execution.status}
    if execution.status == "SUCCEEDED":
        doc["output"] = json.dumps(execution.output)
    else:
        doc["error"], doc["cause"] = execution.error, execution.cause
    return doc


@pytest.mark.parametrize(("case", "definition", "inputs"), CASES, ids=[c[0] for c in CASES])
async def test_engine_matches_moto_interpreter(
    moto_sfn: Any, case: str, definition: dict[str, Any], inputs: list[Any]
) -> None:
    for index, data in enumerate(inputs):
        # GIVEN the same definition and input on both interpreters
        theirs = _run_on_moto(moto_sfn, f"{case}-{index}", definition, data)
        ours = await _run_locally(definition, data)
        # THEN status and output (or error and cause) agree
        assert ours["status"] == theirs["status"], (data, theirs)
        if theirs["status"] == "SUCCEEDED":
            assert json.loads(ours["output"]) == json.loads(theirs["output"]), data
        else:
            assert (ours["error"], ours["cause"]) == (theirs.get("error"), theirs.get("cause"))
