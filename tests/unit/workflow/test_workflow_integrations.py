"""Task integrations: the registry's refusal at create, `states:startExecution` (request-response,
`.sync`, `.sync:2`) on the engine, `.waitForTaskToken` with SendTaskSuccess / SendTaskFailure /
SendTaskHeartbeat through the API facade, and HeartbeatSeconds.

AWS pages followed:
- https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html (patterns)
- https://docs.aws.amazon.com/step-functions/latest/dg/connect-stepfunctions.html
- https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html
- https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskHeartbeat.html
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from sluice.local.workflow import api
from sluice.local.workflow.errors import ApiError
from tests.unit.workflow.workflow_fakes import (
    ROLE,
    FakeClock,
    FakeInvoker,
    InMemoryS3,
    make_engine,
    run_definition,
)

from sluice.local.workflow import WorkflowEngine  # isort: skip

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:"


def _task(resource: str, **extra: Any) -> dict[str, Any]:
    return {
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": resource, **extra, "End": True}},
    }


@pytest.mark.parametrize(
    ("resource", "says"),
    [
        ("arn:aws:states:::glue:startJobRun.sync", "not supported by the local engine"),
        ("arn:aws:states:us-east-1:123456789012:activity:review", "activities are not"),
        ("arn:aws:states:::dynamodb:putItem.sync", "'.sync' is not supported"),
        ("arn:aws:lambda:us-east-1:123456789012:function:f.waitForTaskToken", "not recognized"),
        ("arn:aws:states:::aws-sdk:s3:listBuckets.sync", "'.sync' is not supported"),
    ],
)
def test_create_refuses_an_unsupported_resource_naming_state_and_resource(
    resource: str, says: str
) -> None:
    # GIVEN a Task nested in a Parallel branch with a resource the engine cannot run
    engine, *_ = make_engine()
    inner = _task(resource)
    definition = {
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "Branches": [inner], "End": True}},
    }
    # WHEN the state machine is created THEN it is refused before anything runs
    with pytest.raises(ApiError) as refused:
        engine.create_state_machine("bad", json.dumps(definition), ROLE)
    assert refused.value.type_name == "InvalidDefinition"
    assert "at /States/P/Branches/0/States/T/Resource" in refused.value.message
    assert resource in refused.value.message
    assert says in refused.value.message


def test_create_accepts_every_documented_pattern_of_the_supported_integrations() -> None:
    engine, *_ = make_engine()
    for index, resource in enumerate(
        [
            "arn:aws:states:::sns:publish",
            "arn:aws:states:::sns:publish.waitForTaskToken",
            "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "arn:aws:states:::states:startExecution",
            "arn:aws:states:::states:startExecution.sync",
            "arn:aws:states:::states:startExecution.sync:2",
            "arn:aws:states:::states:startExecution.waitForTaskToken",
            "arn:aws:states:::events:putEvents.waitForTaskToken",
            "arn:aws:states:::aws-sdk:s3:listBuckets.waitForTaskToken",
        ]
    ):
        engine.create_state_machine(f"ok{index}", json.dumps(_task(resource)), ROLE)


def _sns_sqs_engine() -> tuple[WorkflowEngine, InMemoryS3]:
    class Recording(InMemoryS3):
        async def call(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
            self.calls.append((service, action, params))
            if (service, action) == ("sns", "publish"):
                return {"MessageId": "m-1"}
            return {"MD5OfMessageBody": "x", "MessageId": "m-2"}

    sdk = Recording()
    return WorkflowEngine(invoker=FakeInvoker(), sdk=sdk, clock=FakeClock()), sdk


async def test_sns_publish_sends_a_json_message_as_text_and_returns_the_sdk_shape() -> None:
    # GIVEN an sns:publish task whose Message is a JSON object
    engine, sdk = _sns_sqs_engine()
    definition = _task(
        "arn:aws:states:::sns:publish",
        Parameters={"TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message.$": "$"},
    )
    # WHEN it runs
    execution = await run_definition(engine, definition, {"order": 7})
    # THEN Publish got the message as JSON text, and the result is Publish's response with
    # the SDK metadata AWS adds
    assert execution.status == "SUCCEEDED", execution.cause
    assert sdk.calls == [
        (
            "sns",
            "publish",
            {"TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": '{"order":7}'},
        )
    ]
    assert execution.output["MessageId"] == "m-1"
    assert execution.output["SdkHttpMetadata"]["HttpStatusCode"] == 200


async def test_sqs_send_message_without_a_body_is_a_runtime_error_before_any_call() -> None:
    engine, sdk = _sns_sqs_engine()
    definition = _task("arn:aws:states:::sqs:sendMessage", Parameters={"QueueUrl": "q"})
    execution = await run_definition(engine, definition, {})
    assert (execution.status, execution.error) == ("FAILED", "States.Runtime")
    assert "MessageBody" in (execution.cause or "")
    assert sdk.calls == []


def _child_engine(child: dict[str, Any]) -> WorkflowEngine:
    engine, *_ = make_engine()
    engine.create_state_machine("child", json.dumps(child), ROLE)
    return engine


_CHILD = {
    "StartAt": "Double",
    "States": {
        "Double": {
            "Type": "Pass",
            "Parameters": {"doubled.$": "States.MathAdd($.n, $.n)"},
            "End": True,
        }
    },
}


@pytest.mark.parametrize(
    ("suffix", "expected_output"),
    [(".sync", '{"doubled":42}'), (".sync:2", {"doubled": 42})],
)
async def test_start_execution_sync_returns_the_child_output_as_documented(
    suffix: str, expected_output: Any
) -> None:
    # GIVEN a parent that runs the child with .sync (Output a JSON string) or .sync:2 (JSON)
    engine = _child_engine(_CHILD)
    definition = _task(
        f"arn:aws:states:::states:startExecution{suffix}",
        Parameters={"StateMachineArn": MACHINE + "child", "Input": {"n.$": "$.n"}},
    )
    # WHEN the parent runs
    execution = await run_definition(engine, definition, {"n": 21}, name="parent")
    # THEN its result describes the finished child
    assert execution.status == "SUCCEEDED", execution.cause
    out = execution.output
    assert out["Status"] == "SUCCEEDED"
    assert out["Output"] == expected_output
    assert out["ExecutionArn"].startswith("arn:aws:states:us-east-1:123456789012:execution:child:")
    assert engine.execution(out["ExecutionArn"]).status == "SUCCEEDED"
    kinds = [e["type"] for e in execution.history]
    assert "TaskSubmitted" in kinds


async def test_start_execution_request_response_does_not_wait_for_the_child() -> None:
    gate = asyncio.Event()

    async def held(payload: Any) -> Any:
        await gate.wait()
        return payload

    engine, *_ = make_engine({"held": held})
    child = _task("arn:aws:lambda:us-east-1:123456789012:function:held")
    engine.create_state_machine("child", json.dumps(child), ROLE)
    definition = _task(
        "arn:aws:states:::states:startExecution",
        Parameters={"StateMachineArn": MACHINE + "child", "Name": "run-1"},
    )
    execution = await run_definition(engine, definition, {}, name="parent")
    assert execution.status == "SUCCEEDED", execution.cause
    child_arn = execution.output["ExecutionArn"]
    assert child_arn == "arn:aws:states:us-east-1:123456789012:execution:child:run-1"
    assert engine.execution(child_arn).status == "RUNNING"
    gate.set()
    assert (await engine.wait(child_arn)).status == "SUCCEEDED"


async def test_a_failed_sync_child_fails_the_task_with_states_task_failed() -> None:
    child = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "no"}}}
    engine = _child_engine(child)
    definition = _task(
        "arn:aws:states:::states:startExecution.sync:2",
        Parameters={"StateMachineArn": MACHINE + "child"},
    )
    execution = await run_definition(engine, definition, {}, name="parent")
    assert (execution.status, execution.error) == ("FAILED", "States.TaskFailed")
    cause = json.loads(execution.cause or "{}")
    assert (cause["Status"], cause["Error"], cause["Cause"]) == ("FAILED", "Boom", "no")


async def test_start_execution_of_a_missing_machine_names_the_step_functions_error() -> None:
    engine, *_ = make_engine()
    definition = _task(
        "arn:aws:states:::states:startExecution",
        Parameters={"StateMachineArn": MACHINE + "nope"},
    )
    execution = await run_definition(engine, definition, {}, name="parent")
    assert execution.error == "StepFunctions.StateMachineDoesNotExistException"


async def test_start_execution_is_refused_when_the_role_may_not_start_the_child() -> None:
    # GIVEN an engine whose authorizer denies states:StartExecution
    asked: list[tuple[str, str, str]] = []

    def deny(role: str, action: str, resource: str) -> str | None:
        asked.append((role, action, resource))
        return f"{role} is not authorized to perform: {action} on resource: {resource}"

    engine = WorkflowEngine(
        invoker=FakeInvoker(), sdk=InMemoryS3(), clock=FakeClock(), authorize=deny
    )
    engine.create_state_machine("child", json.dumps(_CHILD), ROLE)
    definition = _task(
        "arn:aws:states:::states:startExecution.sync",
        Parameters={"StateMachineArn": MACHINE + "child"},
    )
    # WHEN the parent runs THEN the task fails and no child was started
    execution = await run_definition(engine, definition, {}, name="parent")
    assert execution.error == "StepFunctions.AccessDeniedException"
    assert asked == [(ROLE, "states:StartExecution", MACHINE + "child")]
    assert engine.list_executions(MACHINE + "child") == []


def _callback_definition(**extra: Any) -> dict[str, Any]:
    return _task(
        "arn:aws:states:::lambda:invoke.waitForTaskToken",
        Parameters={"FunctionName": "worker", "Payload": {"token.$": "$$.Task.Token"}},
        **extra,
    )


async def _send(engine: WorkflowEngine, action: str, **body: Any) -> tuple[int, dict[str, Any]]:
    return await api.handle(engine, f"AWSStepFunctions.{action}", body)


async def test_wait_for_task_token_completes_with_the_send_task_success_output() -> None:
    # GIVEN a function that hands the token to someone who answers later
    tokens: list[str] = []
    handed_out = asyncio.Event()

    async def worker(payload: Any) -> Any:
        tokens.append(payload["token"])
        handed_out.set()
        return {"accepted": True}

    engine, *_ = make_engine({"worker": worker})
    engine.create_state_machine("cb", json.dumps(_callback_definition()), ROLE)
    execution = engine.start_execution(MACHINE + "cb", "{}")
    await handed_out.wait()
    await asyncio.sleep(0)
    # THEN the task waits after the function returned
    assert execution.status == "RUNNING"
    # WHEN SendTaskSuccess arrives through the API
    status, _ = await _send(engine, "SendTaskSuccess", taskToken=tokens[0], output='{"ok": 1}')
    done = await engine.wait(execution.arn)
    # THEN the task's result is that output
    assert status == 200
    assert (done.status, done.output) == ("SUCCEEDED", {"ok": 1})
    kinds = [e["type"] for e in done.history]
    assert kinds.index("TaskSubmitted") < kinds.index("TaskSucceeded")
    # AND a second answer on the same token is too late
    status, late = await _send(engine, "SendTaskSuccess", taskToken=tokens[0], output="{}")
    assert (status, late["__type"]) == (400, "TaskTimedOut")


async def test_send_task_failure_fails_the_task_and_catch_sees_it() -> None:
    async def worker(payload: Any) -> Any:
        engine.tokens.fail(payload["token"], "Rejected", "the reviewer said no")
        return None

    engine, *_ = make_engine({"worker": worker})
    task = {
        key: value for key, value in _callback_definition()["States"]["T"].items() if key != "End"
    }
    catch = [{"ErrorEquals": ["Rejected"], "Next": "Handled"}]
    definition: dict[str, Any] = {
        "StartAt": "T",
        "States": {
            "T": {**task, "Catch": catch, "Next": "Handled"},
            "Handled": {"Type": "Pass", "End": True},
        },
    }
    execution = await run_definition(engine, definition, {})
    assert execution.status == "SUCCEEDED"
    assert execution.output == {"Error": "Rejected", "Cause": "the reviewer said no"}


async def test_send_task_api_errors_are_aws_shaped() -> None:
    engine, *_ = make_engine()
    status, doc = await _send(engine, "SendTaskSuccess", taskToken="garbage", output="{}")
    assert (status, doc["__type"]) == (400, "InvalidToken")
    unknown = "A" * 64
    status, doc = await _send(engine, "SendTaskHeartbeat", taskToken=unknown)
    assert (status, doc["__type"]) == (400, "TaskDoesNotExist")
    token = engine.tokens.issue("arn:aws:states:us-east-1:123456789012:execution:x:y")
    status, doc = await _send(engine, "SendTaskSuccess", taskToken=token, output="not json")
    assert (status, doc["__type"]) == (400, "InvalidOutput")


class ManualClock(FakeClock):
    """Time moves only when the test calls `advance`."""

    def __init__(self) -> None:
        super().__init__()
        self.waiters: list[tuple[Any, asyncio.Event]] = []

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.Event()
        self.waiters.append((self.current + timedelta(seconds=seconds), wake))
        await wake.wait()

    async def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        for deadline, wake in self.waiters:
            if deadline <= self.current:
                wake.set()
        for _ in range(20):
            await asyncio.sleep(0)


async def _callback_engine(**extra: Any) -> tuple[WorkflowEngine, ManualClock, Any, list[str]]:
    tokens: list[str] = []

    async def worker(payload: Any) -> Any:
        tokens.append(payload["token"])
        return None

    clock = ManualClock()
    engine = WorkflowEngine(invoker=FakeInvoker({"worker": worker}), sdk=InMemoryS3(), clock=clock)
    engine.create_state_machine("cb", json.dumps(_callback_definition(**extra)), ROLE)
    execution = engine.start_execution(MACHINE + "cb", "{}")
    await clock.advance(0)
    return engine, clock, execution, tokens


async def test_heartbeat_seconds_without_a_heartbeat_is_states_heartbeat_timeout() -> None:
    engine, clock, execution, _ = await _callback_engine(HeartbeatSeconds=10)
    await clock.advance(9)
    assert execution.status == "RUNNING"
    await clock.advance(2)
    done = await engine.wait(execution.arn)
    assert (done.status, done.error) == ("FAILED", "States.HeartbeatTimeout")
    assert [e for e in done.history if e["type"] == "TaskTimedOut"]


async def test_send_task_heartbeat_keeps_the_task_alive_past_heartbeat_seconds() -> None:
    engine, clock, execution, tokens = await _callback_engine(HeartbeatSeconds=10)
    # WHEN a heartbeat arrives every 6 s for 24 s
    for _ in range(4):
        await clock.advance(6)
        status, _ = await _send(engine, "SendTaskHeartbeat", taskToken=tokens[0])
        assert status == 200
        await clock.advance(0)
    # THEN the task is still waiting, and completes on SendTaskSuccess
    assert execution.status == "RUNNING"
    await _send(engine, "SendTaskSuccess", taskToken=tokens[0], output='"done"')
    assert (await engine.wait(execution.arn)).output == "done"


async def test_timeout_seconds_bounds_a_callback_task_whatever_its_heartbeats() -> None:
    engine, clock, execution, tokens = await _callback_engine(
        HeartbeatSeconds=10, TimeoutSeconds=15
    )
    await clock.advance(8)
    await _send(engine, "SendTaskHeartbeat", taskToken=tokens[0])
    await clock.advance(8)
    done = await engine.wait(execution.arn)
    assert (done.status, done.error) == ("FAILED", "States.Timeout")
    _, doc = await _send(engine, "SendTaskSuccess", taskToken=tokens[0], output="{}")
    assert doc["__type"] == "TaskTimedOut"


async def test_each_retry_attempt_gets_a_fresh_token() -> None:
    tokens: list[str] = []

    async def worker(payload: Any) -> Any:
        tokens.append(payload["token"])
        if len(tokens) == 1:
            engine.tokens.fail(payload["token"], "Retryable", "")
        else:
            engine.tokens.succeed(payload["token"], '{"attempt": 2}')
        return None

    engine, *_ = make_engine({"worker": worker})
    definition = _callback_definition(
        Retry=[{"ErrorEquals": ["Retryable"], "IntervalSeconds": 1, "MaxAttempts": 1}]
    )
    execution = await run_definition(engine, definition, {})
    assert execution.output == {"attempt": 2}
    assert len(set(tokens)) == 2


async def test_a_token_whose_task_failed_before_waiting_is_closed_with_its_execution() -> None:
    # GIVEN a callback task whose Parameters fail after its token was issued
    engine, *_ = make_engine()
    definition = _task(
        "arn:aws:states:::lambda:invoke.waitForTaskToken",
        Parameters={"FunctionName": "worker", "Payload": {"t.$": "$$.Task.Token", "x.$": "$.nope"}},
    )
    execution = await run_definition(engine, definition, {})
    # THEN the execution fails and leaves no token open
    assert execution.error == "States.Runtime"
    assert engine.tokens.open_for(execution.arn) == 0


def _allow_all_but(*denied: str) -> Any:
    def authorize(role: str, action: str, resource: str) -> str | None:
        return f"{role} may not {action} on {resource}" if action in denied else None

    return authorize


_SLOW_CHILD = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}}


@pytest.mark.parametrize(
    ("denied", "child_runs"),
    [(("events:PutRule",), False), (("states:DescribeExecution",), True)],
)
async def test_start_execution_sync_needs_the_documented_watch_permissions(
    denied: tuple[str, ...], child_runs: bool
) -> None:
    # GIVEN a role allowed StartExecution but not one of the .sync permissions
    engine = WorkflowEngine(
        invoker=FakeInvoker(),
        sdk=InMemoryS3(),
        clock=FakeClock(),
        authorize=_allow_all_but(*denied),
    )
    engine.create_state_machine("child", json.dumps(_CHILD), ROLE)
    definition = _task(
        "arn:aws:states:::states:startExecution.sync",
        Parameters={"StateMachineArn": MACHINE + "child"},
    )
    # WHEN the parent runs THEN the task fails naming the permission
    execution = await run_definition(engine, definition, {}, name="parent")
    assert execution.error == "StepFunctions.AccessDeniedException"
    assert denied[0] in (execution.cause or "")
    children = engine.list_executions(MACHINE + "child")
    # AND a child started before the denial is stopped
    assert [c.status for c in children] == (["ABORTED"] if child_runs else [])


async def test_stopping_the_parent_stops_its_sync_child() -> None:
    clock = ManualClock()
    engine = WorkflowEngine(invoker=FakeInvoker(), sdk=InMemoryS3(), clock=clock)
    engine.create_state_machine("child", json.dumps(_SLOW_CHILD), ROLE)
    definition = _task(
        "arn:aws:states:::states:startExecution.sync:2",
        Parameters={"StateMachineArn": MACHINE + "child"},
    )
    engine.create_state_machine("parent", json.dumps(definition), ROLE)
    parent = engine.start_execution(MACHINE + "parent", "{}")
    await clock.advance(0)
    (child,) = engine.list_executions(MACHINE + "child")
    assert child.status == "RUNNING"
    engine.stop_execution(parent.arn)
    await engine.wait(parent.arn)
    assert (await engine.wait(child.arn)).status == "ABORTED"


@pytest.mark.parametrize(
    ("machine_type", "child_type", "pointer"),
    [
        ("EXPRESS", None, "/States/T/Resource"),
        ("STANDARD", "EXPRESS", "/States/Fan/ItemProcessor/States/T/Resource"),
    ],
)
def test_an_express_workflow_refuses_sync_and_callback_integrations(
    machine_type: str, child_type: str | None, pointer: str
) -> None:
    # GIVEN a callback task in an EXPRESS machine, or in a Distributed Map's EXPRESS children
    task = _task("arn:aws:states:::sqs:sendMessage.waitForTaskToken")
    definition: dict[str, Any] = task
    if child_type is not None:
        processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": child_type}}
        definition = {
            "StartAt": "Fan",
            "States": {"Fan": {"Type": "Map", "ItemProcessor": {**processor, **task}, "End": True}},
        }
    engine, *_ = make_engine()
    # WHEN it is created THEN it is refused, as AWS refuses it, pointing at the Task
    with pytest.raises(ApiError) as refused:
        engine.create_state_machine("x", json.dumps(definition), ROLE, machine_type)
    assert refused.value.type_name == "InvalidDefinition"
    assert "Express state machine does not support '.waitForTaskToken'" in refused.value.message
    assert pointer in refused.value.message
    # AND the same task in a STANDARD workflow is accepted
    engine.create_state_machine("std", json.dumps(task), ROLE, "STANDARD")


async def test_an_express_execution_is_not_redrivable() -> None:
    engine, *_ = make_engine()
    failing = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E"}}}
    engine.create_state_machine("ex", json.dumps(failing), ROLE, "EXPRESS")
    execution = await engine.start_sync_execution(MACHINE + "ex", "{}")
    assert execution.status == "FAILED"
    status, doc = await _send(engine, "RedriveExecution", executionArn=execution.arn)
    assert (status, doc["__type"]) == (400, "ExecutionNotRedrivable")


@pytest.mark.parametrize(
    ("resource", "params", "carrier"),
    [
        (
            "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
            "MessageBody",
        ),
        (
            "arn:aws:states:::sns:publish.waitForTaskToken",
            {"TopicArn": "t", "Message": {"token.$": "$$.Task.Token"}},
            "Message",
        ),
    ],
)
async def test_a_message_carrying_the_token_completes_the_task_when_answered(
    resource: str, params: dict[str, Any], carrier: str
) -> None:
    # GIVEN a consumer that answers the token found in the message it receives
    class Consumer(InMemoryS3):
        async def call(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
            token = json.loads(params[carrier])["token"]
            asyncio.get_running_loop().call_soon(engine.tokens.succeed, token, '{"done": 1}')
            return {"MessageId": "m"}

    engine = WorkflowEngine(invoker=FakeInvoker(), sdk=Consumer(), clock=FakeClock())
    # WHEN the callback task sends the message
    execution = await run_definition(engine, _task(resource, Parameters=params), {})
    # THEN its result is the answer, not the send's response
    assert (execution.status, execution.output) == ("SUCCEEDED", {"done": 1})


async def test_lambda_invoke_event_does_not_wait_for_the_function() -> None:
    # GIVEN a function that only finishes when the test lets it
    gate = asyncio.Event()
    finished: list[Any] = []

    async def slow(payload: Any) -> Any:
        await gate.wait()
        finished.append(payload)
        return payload

    engine, _, invoker, _ = make_engine({"slow": slow})
    definition = _task(
        "arn:aws:states:::lambda:invoke",
        Parameters={"FunctionName": "slow", "Payload": {"n": 1}, "InvocationType": "Event"},
    )
    # WHEN the task invokes it with InvocationType Event
    execution = await run_definition(engine, definition, {})
    # THEN the task succeeds at once with Lambda's 202 and an empty payload, the function
    # still running
    assert execution.status == "SUCCEEDED", execution.cause
    assert (execution.output["StatusCode"], execution.output["Payload"]) == (202, "")
    assert execution.output["SdkHttpMetadata"]["HttpStatusCode"] == 202
    assert invoker.calls == [("slow", {"n": 1})]
    assert finished == []
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert finished == [{"n": 1}]


async def test_a_jsonata_callback_task_hands_out_states_context_task_token() -> None:
    # GIVEN a JSONata Task whose Arguments pass `$states.context.Task.Token`
    async def worker(payload: Any) -> Any:
        engine.tokens.succeed(payload["token"], '{"approved": true}')
        return None

    engine, *_ = make_engine({"worker": worker})
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Arguments": {
                    "FunctionName": "worker",
                    "Payload": {"token": "{% $states.context.Task.Token %}"},
                },
                "Output": "{% $states.result.approved %}",
                "End": True,
            }
        },
    }
    execution = await run_definition(engine, definition, {})
    assert (execution.status, execution.output) == ("SUCCEEDED", True), execution.cause


async def test_a_distributed_map_child_closes_its_tokens_when_it_ends() -> None:
    # GIVEN Distributed Map children whose callback task fails after its token was issued
    engine, *_ = make_engine()
    callback = _task(
        "arn:aws:states:::lambda:invoke.waitForTaskToken",
        Parameters={"FunctionName": "worker", "Payload": {"t.$": "$$.Task.Token", "x.$": "$.nope"}},
    )
    processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}}
    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "ToleratedFailurePercentage": 100,
                "ItemProcessor": {**processor, **callback},
                "End": True,
            }
        },
    }
    execution = await run_definition(engine, definition, [1, 2])
    # THEN every child failed and none left a token open
    (map_run,) = engine.list_map_runs(execution.arn)
    children = [c.execution for c in map_run.children.values()]
    assert [c.error for c in children] == ["States.Runtime", "States.Runtime"]
    assert [engine.tokens.open_for(c.arn) for c in children] == [0, 0]
