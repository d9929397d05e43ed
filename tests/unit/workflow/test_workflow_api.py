"""The Step Functions API facade over the engine, and the thread-safe service."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sluice.local.workflow import ThreadedWorkflowService, WorkflowEngine, api
from tests.unit.workflow.workflow_fakes import ROLE, make_engine

PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
WAIT = json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}})


async def _call(engine: WorkflowEngine, action: str, **body: Any) -> tuple[int, dict[str, Any]]:
    return await api.handle(engine, f"AWSStepFunctions.{action}", body)


async def _machine(engine: WorkflowEngine, definition: str = PASS, type_: str = "STANDARD") -> str:
    status, doc = await _call(
        engine, "CreateStateMachine", name="m", definition=definition, roleArn=ROLE, type=type_
    )
    assert status == 200, doc
    return str(doc["stateMachineArn"])


async def test_state_machine_crud_round_trip() -> None:
    engine, *_ = make_engine()
    arn = await _machine(engine)
    assert arn == "arn:aws:states:us-east-1:123456789012:stateMachine:m"
    status, doc = await _call(engine, "DescribeStateMachine", stateMachineArn=arn)
    assert (status, doc["name"], doc["definition"], doc["type"]) == (200, "m", PASS, "STANDARD")
    assert isinstance(doc["creationDate"], float)
    status, doc = await _call(engine, "UpdateStateMachine", stateMachineArn=arn, definition=WAIT)
    assert status == 200
    assert (await _call(engine, "DescribeStateMachine", stateMachineArn=arn))[1][
        "definition"
    ] == WAIT
    status, doc = await _call(engine, "ListStateMachines")
    assert [m["stateMachineArn"] for m in doc["stateMachines"]] == [arn]
    assert (await _call(engine, "DeleteStateMachine", stateMachineArn=arn))[0] == 200
    status, doc = await _call(engine, "DescribeStateMachine", stateMachineArn=arn)
    assert (status, doc["__type"]) == (400, "StateMachineDoesNotExist")


async def test_create_with_invalid_definition_names_state_and_field() -> None:
    engine, *_ = make_engine()
    bad = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}})
    status, doc = await _call(engine, "CreateStateMachine", name="m", definition=bad, roleArn=ROLE)
    assert (status, doc["__type"]) == (400, "InvalidDefinition")
    # AWS's wording: a code, the problem and the JSON pointer of the state's field; every
    # problem found, `, `-separated (here the missing target leaves no terminal state).
    assert doc["message"] == (
        "Invalid State Machine Definition: "
        "'MISSING_TRANSITION_TARGET: Missing 'Next' target: B at /States/A/Next, "
        "MISSING_END_STATE: Workflow has no terminal state at null'"
    )


async def test_create_same_name_different_definition_is_rejected() -> None:
    engine, *_ = make_engine()
    await _machine(engine)
    assert (await _call(engine, "CreateStateMachine", name="m", definition=PASS, roleArn=ROLE))[
        0
    ] == 200
    status, doc = await _call(engine, "CreateStateMachine", name="m", definition=WAIT, roleArn=ROLE)
    assert (status, doc["__type"]) == (400, "StateMachineAlreadyExists")


async def test_start_and_describe_execution_returns_output() -> None:
    engine, *_ = make_engine()
    arn = await _machine(engine)
    status, doc = await _call(
        engine, "StartExecution", stateMachineArn=arn, name="e1", input='{"a": 1}'
    )
    assert status == 200
    assert doc["executionArn"] == "arn:aws:states:us-east-1:123456789012:execution:m:e1"
    await engine.wait(doc["executionArn"])
    status, doc = await _call(engine, "DescribeExecution", executionArn=doc["executionArn"])
    assert (doc["status"], json.loads(doc["output"]), json.loads(doc["input"])) == (
        "SUCCEEDED",
        {"a": 1},
        {"a": 1},
    )
    assert doc["stopDate"] >= doc["startDate"]


async def test_unnamed_execution_gets_a_uuid_name_never_none() -> None:
    engine, *_ = make_engine()
    arn = await _machine(engine)
    _, doc = await _call(engine, "StartExecution", stateMachineArn=arn)
    name = doc["executionArn"].rsplit(":", 1)[1]
    assert name != "None"
    assert len(name) == 36


async def test_duplicate_execution_name_with_other_input_is_rejected() -> None:
    # A real clock: the hour-long Wait keeps the execution RUNNING until stopped.
    engine = WorkflowEngine()
    arn = await _machine(engine, WAIT)
    first = await _call(engine, "StartExecution", stateMachineArn=arn, name="x", input="{}")
    # Same name and input while running: AWS answers with the same execution.
    again = await _call(engine, "StartExecution", stateMachineArn=arn, name="x", input="{}")
    assert again == first
    status, doc = await _call(
        engine, "StartExecution", stateMachineArn=arn, name="x", input='{"other": 1}'
    )
    assert (status, doc["__type"]) == (400, "ExecutionAlreadyExists")
    await engine.close()


async def test_invalid_input_and_unknown_arn_give_aws_errors() -> None:
    engine, *_ = make_engine()
    arn = await _machine(engine)
    status, doc = await _call(engine, "StartExecution", stateMachineArn=arn, input="{nope")
    assert (status, doc["__type"]) == (400, "InvalidExecutionInput")
    status, doc = await _call(engine, "DescribeExecution", executionArn=arn + ":missing")
    assert (status, doc["__type"]) == (400, "ExecutionDoesNotExist")
    status, doc = await _call(engine, "DescribeExecution", executionArn="not-an-arn")
    assert (status, doc["__type"]) == (400, "InvalidArn")
    status, doc = await api.handle(engine, "AWSStepFunctions.Bogus", {})
    assert status == 400


async def test_stop_execution_aborts_and_list_filters_by_status() -> None:
    # A real clock: the hour-long Wait keeps the execution RUNNING until stopped.
    engine = WorkflowEngine()
    arn = await _machine(engine, WAIT)
    _, running = await _call(engine, "StartExecution", stateMachineArn=arn, name="r")
    _, stopped = await _call(engine, "StartExecution", stateMachineArn=arn, name="s")
    await asyncio.sleep(0)
    status, _ = await _call(
        engine,
        "StopExecution",
        executionArn=stopped["executionArn"],
        error="Manual",
        cause="operator",
    )
    assert status == 200
    await engine.wait(stopped["executionArn"])
    _, doc = await _call(engine, "DescribeExecution", executionArn=stopped["executionArn"])
    assert (doc["status"], doc["error"], doc["cause"]) == ("ABORTED", "Manual", "operator")
    _, doc = await _call(engine, "ListExecutions", stateMachineArn=arn, statusFilter="RUNNING")
    assert [e["executionArn"] for e in doc["executions"]] == [running["executionArn"]]
    _, doc = await _call(engine, "ListExecutions", stateMachineArn=arn, statusFilter="ABORTED")
    assert [e["executionArn"] for e in doc["executions"]] == [stopped["executionArn"]]
    await engine.close()


async def test_list_executions_paginates_with_next_token() -> None:
    engine, *_ = make_engine()
    arn = await _machine(engine)
    for i in range(5):
        await _call(engine, "StartExecution", stateMachineArn=arn, name=f"e{i}")
    _, page1 = await _call(engine, "ListExecutions", stateMachineArn=arn, maxResults=3)
    _, page2 = await _call(
        engine, "ListExecutions", stateMachineArn=arn, maxResults=3, nextToken=page1["nextToken"]
    )
    names = [e["name"] for e in page1["executions"] + page2["executions"]]
    assert sorted(names) == [f"e{i}" for i in range(5)]
    assert "nextToken" not in page2


async def test_get_execution_history_serialises_events() -> None:
    engine, *_ = make_engine()
    arn = await _machine(engine)
    _, doc = await _call(engine, "StartExecution", stateMachineArn=arn, input='{"k": 1}')
    await engine.wait(doc["executionArn"])
    _, history = await _call(engine, "GetExecutionHistory", executionArn=doc["executionArn"])
    events = history["events"]
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]
    assert json.loads(events[0]["executionStartedEventDetails"]["input"]) == {"k": 1}
    assert all(isinstance(e["timestamp"], float) for e in events)
    json.dumps(history)
    _, reverse = await _call(
        engine,
        "GetExecutionHistory",
        executionArn=doc["executionArn"],
        reverseOrder=True,
        includeExecutionData=False,
    )
    assert reverse["events"][0]["type"] == "ExecutionSucceeded"
    assert "input" not in reverse["events"][-1]["executionStartedEventDetails"]
    # the stored history keeps its data
    _, again = await _call(engine, "GetExecutionHistory", executionArn=doc["executionArn"])
    assert "input" in again["events"][0]["executionStartedEventDetails"]


async def test_start_sync_execution_runs_express_to_completion() -> None:
    engine, *_ = make_engine()
    arn = await _machine(engine, type_="EXPRESS")
    status, doc = await _call(engine, "StartSyncExecution", stateMachineArn=arn, input="[1]")
    assert (status, doc["status"], json.loads(doc["output"])) == (200, "SUCCEEDED", [1])
    assert ":express:m:" in doc["executionArn"]
    assert "billingDetails" in doc


async def test_start_sync_execution_on_standard_is_rejected() -> None:
    engine, *_ = make_engine()
    arn = await _machine(engine)
    status, doc = await _call(engine, "StartSyncExecution", stateMachineArn=arn)
    assert (status, doc["__type"]) == (400, "StateMachineTypeNotSupported")


def test_threaded_service_handles_calls_from_another_thread() -> None:
    # GIVEN the engine on its own loop thread, as the local runtime runs it
    with ThreadedWorkflowService() as service:
        status, doc = service.handle(
            "AWSStepFunctions.CreateStateMachine",
            {"name": "t", "definition": PASS, "roleArn": ROLE},
        )
        assert status == 200
        arn = doc["stateMachineArn"]
        # WHEN an execution starts from this (non-loop) thread
        _, started = service.handle(
            "AWSStepFunctions.StartExecution", {"stateMachineArn": arn, "input": '{"z": 0}'}
        )
        service.run(lambda: service.engine.wait(started["executionArn"]), timeout=60)
        # THEN it finished on the engine loop
        _, doc = service.handle(
            "AWSStepFunctions.DescribeExecution", {"executionArn": started["executionArn"]}
        )
        assert (doc["status"], json.loads(doc["output"])) == ("SUCCEEDED", {"z": 0})


@pytest.mark.parametrize("target", ["DescribeExecution", "AWSStepFunctions.DescribeExecution"])
async def test_target_with_or_without_prefix_is_accepted(target: str) -> None:
    engine, *_ = make_engine()
    _status, doc = await api.handle(engine, target, {"executionArn": "arn:aws:states:x"})
    assert doc["__type"] == "ExecutionDoesNotExist"


async def test_validate_state_machine_definition_reports_the_create_refusal() -> None:
    # The same parse as CreateStateMachine, answered as AWS's diagnostics
    # (https://docs.aws.amazon.com/step-functions/latest/apireference/API_ValidateStateMachineDefinition.html)
    engine, *_ = make_engine()
    bad = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True, "X": 1}}})
    status, doc = await _call(engine, "ValidateStateMachineDefinition", definition=bad)
    assert status == 200
    assert doc == {
        "result": "FAIL",
        "diagnostics": [
            {
                "severity": "ERROR",
                "code": "SCHEMA_VALIDATION_FAILED",
                "message": "Field 'X' is not supported",
                "location": "/States/A",
            }
        ],
        "truncated": False,
    }
    status, doc = await _call(engine, "ValidateStateMachineDefinition", definition=PASS)
    assert (status, doc["result"], doc["diagnostics"]) == (200, "OK", [])
