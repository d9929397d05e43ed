"""Task resources, Retry, Catch, timeouts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.unit.workflow.workflow_fakes import (
    FunctionRaised,
    InMemoryS3,
    make_engine,
    run_definition,
)

FN = "arn:aws:lambda:us-east-1:123456789012:function:"


def _task(resource: str, **extra: Any) -> dict[str, Any]:
    return {
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": resource, **extra, "End": True}},
    }


def _flaky(failures: int, error_type: str = "TransientError") -> Any:
    calls = {"n": 0}

    async def handler(payload: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise FunctionRaised(error_type, f"attempt {calls['n']} failed")
        return {"ok": calls["n"]}

    return handler


async def test_lambda_invoke_integration_returns_aws_result_shape() -> None:
    async def echo(payload: Any) -> Any:
        return {"got": payload}

    engine, _, invoker, _ = make_engine({"echo": echo})
    definition = _task(
        "arn:aws:states:::lambda:invoke",
        Parameters={"FunctionName": "echo", "Payload": {"id.$": "$.id"}},
    )
    execution = await run_definition(engine, definition, {"id": 9})
    out = execution.output
    assert out["Payload"] == {"got": {"id": 9}}
    assert (out["StatusCode"], out["ExecutedVersion"]) == (200, "$LATEST")
    assert out["SdkHttpMetadata"]["HttpStatusCode"] == 200
    assert "RequestId" in out["SdkResponseMetadata"]
    assert invoker.calls == [("echo", {"id": 9})]


async def test_plain_function_arn_result_is_the_return_value() -> None:
    async def double(payload: Any) -> Any:
        return payload["n"] * 2

    engine, *_ = make_engine({"double": double})
    execution = await run_definition(engine, _task(FN + "double"), {"n": 21})
    assert execution.output == 42


async def test_function_error_surfaces_error_type_and_lambda_cause() -> None:
    engine, *_ = make_engine({"bad": _flaky(99, "PoisonInputError")})
    execution = await run_definition(engine, _task(FN + "bad"), {})
    assert (execution.status, execution.error) == ("FAILED", "PoisonInputError")
    cause = json.loads(execution.cause or "")
    assert cause["errorType"] == "PoisonInputError"
    assert cause["errorMessage"] == "attempt 1 failed"
    assert isinstance(cause["stackTrace"], list)
    assert [e["type"] for e in execution.history][-3:] == [
        "LambdaFunctionStarted",
        "LambdaFunctionFailed",
        "ExecutionFailed",
    ]


async def test_unknown_function_fails_with_lambda_service_error() -> None:
    engine, *_ = make_engine()
    execution = await run_definition(engine, _task(FN + "missing"), {})
    assert execution.error == "Lambda.ResourceNotFoundException"


async def test_retry_backoff_delays_follow_interval_rate_and_cap() -> None:
    engine, clock, invoker, _ = make_engine({"flaky": _flaky(4)})
    retry = [
        {
            "ErrorEquals": ["TransientError"],
            "IntervalSeconds": 2,
            "BackoffRate": 3,
            "MaxAttempts": 5,
            "MaxDelaySeconds": 10,
        }
    ]
    execution = await run_definition(engine, _task(FN + "flaky", Retry=retry), {})
    assert execution.output == {"ok": 5}
    assert clock.sleeps == [2, 6, 10, 10]
    assert len(invoker.calls) == 5


async def test_retry_max_attempts_exhausted_fails_with_last_error() -> None:
    engine, clock, invoker, _ = make_engine({"flaky": _flaky(99)})
    retry = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2}]
    execution = await run_definition(engine, _task(FN + "flaky", Retry=retry), {})
    assert (execution.status, execution.error) == ("FAILED", "TransientError")
    assert clock.sleeps == [1, 2]
    assert len(invoker.calls) == 3


async def test_retry_max_attempts_zero_never_retries() -> None:
    engine, clock, invoker, _ = make_engine({"flaky": _flaky(1)})
    retry = [{"ErrorEquals": ["TransientError"], "MaxAttempts": 0}]
    execution = await run_definition(engine, _task(FN + "flaky", Retry=retry), {})
    assert execution.status == "FAILED"
    assert (clock.sleeps, len(invoker.calls)) == ([], 1)


async def test_retry_full_jitter_draws_within_backoff_delay() -> None:
    engine, clock, _, _ = make_engine({"flaky": _flaky(3)})
    retry = [
        {
            "ErrorEquals": ["TransientError"],
            "IntervalSeconds": 4,
            "BackoffRate": 2,
            "MaxAttempts": 3,
            "JitterStrategy": "FULL",
        }
    ]
    execution = await run_definition(engine, _task(FN + "flaky", Retry=retry), {})
    assert execution.status == "SUCCEEDED"
    assert [0 <= s <= cap for s, cap in zip(clock.sleeps, [4, 8, 16], strict=True)] == [True] * 3


async def test_retry_first_matching_retrier_decides() -> None:
    engine, _clock, invoker, _ = make_engine({"flaky": _flaky(99)})
    retry = [
        {"ErrorEquals": ["TransientError"], "MaxAttempts": 1, "IntervalSeconds": 1},
        {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5, "IntervalSeconds": 1},
    ]
    await run_definition(engine, _task(FN + "flaky", Retry=retry), {})
    assert len(invoker.calls) == 2


async def test_retry_count_is_visible_in_context_object() -> None:
    seen: list[Any] = []

    async def record(payload: Any) -> Any:
        seen.append(payload)
        if len(seen) < 3:
            raise FunctionRaised("TransientError", "again")
        return "done"

    engine, *_ = make_engine({"record": record})
    definition = _task(
        FN + "record",
        Parameters={"n.$": "$$.State.RetryCount"},
        Retry=[{"ErrorEquals": ["TransientError"], "MaxAttempts": 3}],
    )
    await run_definition(engine, definition, {})
    assert seen == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_catch_routes_error_with_result_path_and_keeps_input() -> None:
    engine, *_ = make_engine({"bad": _flaky(99, "PoisonInputError")})
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": FN + "bad",
                "Catch": [
                    {"ErrorEquals": ["TransientError"], "Next": "Wrong"},
                    {
                        "ErrorEquals": ["PoisonInputError"],
                        "ResultPath": "$.error",
                        "Next": "Quarantine",
                    },
                ],
                "End": True,
            },
            "Wrong": {"Type": "Fail", "Error": "Wrong"},
            "Quarantine": {"Type": "Pass", "End": True},
        },
    }
    execution = await run_definition(engine, definition, {"file": "f1"})
    assert execution.status == "SUCCEEDED"
    assert execution.output["file"] == "f1"
    assert execution.output["error"]["Error"] == "PoisonInputError"
    assert json.loads(execution.output["error"]["Cause"])["errorMessage"] == "attempt 1 failed"


async def test_task_failed_wildcard_catches_all_but_timeout() -> None:
    async def hang(payload: Any) -> Any:
        await asyncio.Event().wait()

    engine, *_ = make_engine({"bad": _flaky(99), "hang": hang})
    catch = [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}]
    caught = {"Caught": {"Type": "Pass", "Result": "caught", "End": True}}
    definition = {
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": FN + "bad", "Catch": catch, "End": True},
            **caught,
        },
    }
    assert (await run_definition(engine, definition, {})).output == "caught"
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": FN + "hang",
                "TimeoutSeconds": 5,
                "Catch": catch,
                "End": True,
            },
            **caught,
        },
    }
    execution = await run_definition(engine, definition, {}, name="hang")
    assert (execution.status, execution.error) == ("FAILED", "States.Timeout")


@pytest.mark.parametrize("field", ["TimeoutSeconds", "HeartbeatSeconds"])
async def test_task_exceeding_timeout_fails_states_timeout(field: str) -> None:
    async def hang(payload: Any) -> Any:
        await asyncio.Event().wait()

    engine, clock, *_ = make_engine({"hang": hang})
    execution = await run_definition(engine, _task(FN + "hang", **{field: 30}), {})
    assert (execution.error, clock.sleeps) == ("States.Timeout", [30])
    assert "LambdaFunctionTimedOut" in [e["type"] for e in execution.history]


async def test_states_runtime_error_is_neither_retried_nor_caught() -> None:
    engine, clock, invoker, _ = make_engine({"ok": _flaky(0)})
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": FN + "ok",
                "Parameters": {"x.$": "$.missing"},
                "Retry": [{"ErrorEquals": ["States.ALL"]}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "C"}],
                "End": True,
            },
            "C": {"Type": "Succeed"},
        },
    }
    execution = await run_definition(engine, definition, {})
    assert (execution.status, execution.error) == ("FAILED", "States.Runtime")
    assert (invoker.calls, clock.sleeps) == ([], [])


@pytest.mark.parametrize(
    ("resource", "service", "action"),
    [
        ("arn:aws:states:::aws-sdk:s3:listObjectsV2", "s3", "listObjectsV2"),
        ("arn:aws:states:::dynamodb:getItem", "dynamodb", "getItem"),
        ("arn:aws:states:::dynamodb:putItem", "dynamodb", "putItem"),
        ("arn:aws:states:::dynamodb:updateItem", "dynamodb", "updateItem"),
        ("arn:aws:states:::s3:putObject", "s3", "putObject"),
        ("arn:aws:states:::events:putEvents", "events", "putEvents"),
    ],
)
async def test_sdk_integrations_delegate_to_sdk_caller(
    resource: str, service: str, action: str
) -> None:
    s3 = InMemoryS3()
    engine, *_ = make_engine(s3=s3)
    params = {
        "listObjectsV2": {"Bucket": "b"},
        "getItem": {"TableName": "t", "Key": {"pk": {"S.$": "$.id"}}},
        "putItem": {"TableName": "t", "Item": {"pk": {"S.$": "$.id"}}},
        "updateItem": {"TableName": "t", "Key": {"pk": {"S": "x"}}},
        "putObject": {"Bucket": "b", "Key": "k", "Body.$": "$.id"},
        "putEvents": {
            "Entries": [
                {"Detail.$": "States.JsonToString($)", "DetailType": "t", "Source": "sluice.batch"}
            ]
        },
    }[action]
    execution = await run_definition(engine, _task(resource, Parameters=params), {"id": "x"})
    assert execution.status == "SUCCEEDED", execution.cause
    assert [(s, a) for s, a, _ in s3.calls] == [(service, action)]


async def test_put_events_with_failed_entries_fails_the_task() -> None:
    engine, *_ = make_engine(s3=InMemoryS3(fail_entries=True))
    definition = _task(
        "arn:aws:states:::events:putEvents",
        Parameters={"Entries": [{"Detail": "{}", "DetailType": "t", "Source": "s"}]},
    )
    execution = await run_definition(engine, definition, {})
    assert execution.error == "EventBridge.FailedEntry"


async def test_sdk_service_error_surfaces_service_error_name() -> None:
    engine, *_ = make_engine()
    definition = _task(
        "arn:aws:states:::aws-sdk:s3:getObject", Parameters={"Bucket": "b", "Key": "nope"}
    )
    execution = await run_definition(engine, definition, {})
    assert execution.error == "S3.NoSuchKeyException"


async def test_service_integration_history_uses_task_events() -> None:
    async def echo(payload: Any) -> Any:
        return payload

    engine, *_ = make_engine({"echo": echo})
    definition = _task(
        "arn:aws:states:::lambda:invoke", Parameters={"FunctionName": "echo", "Payload": 1}
    )
    execution = await run_definition(engine, definition, {})
    types = [e["type"] for e in execution.history]
    assert types[2:5] == ["TaskScheduled", "TaskStarted", "TaskSucceeded"]
    scheduled = execution.history[2]["taskScheduledEventDetails"]
    assert (scheduled["resourceType"], scheduled["resource"]) == ("lambda", "invoke")


async def test_state_machine_timeout_seconds_times_out_execution() -> None:
    async def hang(payload: Any) -> Any:
        await asyncio.Event().wait()

    engine, clock, *_ = make_engine({"hang": hang})
    definition = {**_task(FN + "hang"), "TimeoutSeconds": 60}
    execution = await run_definition(engine, definition, {})
    assert (execution.status, execution.error) == ("TIMED_OUT", "States.Timeout")
    assert clock.sleeps == [60]
    assert execution.history[-1]["type"] == "ExecutionTimedOut"


async def test_map_iteration_failure_is_caught_on_the_map_state() -> None:
    engine, *_ = make_engine({"bad": _flaky(99, "PoisonInputError")})
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": FN + "bad", "End": True}},
                },
                "Catch": [
                    {"ErrorEquals": ["PoisonInputError"], "ResultPath": "$.err", "Next": "Done"}
                ],
                "InputPath": "$.items",
                "End": True,
            },
            "Done": {"Type": "Pass", "End": True},
        },
    }
    execution = await run_definition(engine, definition, {"items": [1, 2]})
    assert execution.status == "SUCCEEDED"
    assert execution.output["err"]["Error"] == "PoisonInputError"
    assert execution.output["items"] == [1, 2]
