"""The size quotas Step Functions enforces, seen through boto3 against the standalone endpoint.

AWS pages followed:
- https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html (262,144 bytes for
  a task, state or execution input or output; 1 MB per request, a definition's maximum length)
- https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
  (`States.DataLimitExceeded` is terminal: `States.ALL` neither retries nor catches it)
- https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html (256 KiB per
  variable and per `Assign`, 10 MiB of variables per execution)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sluice.local.workflow import InvokeResult, ThreadedWorkflowService
from tests.integration.workflow.support import client, run_to_end, served

ROLE = "arn:aws:iam::123456789012:role/sfn"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:big"
KIB = 1024


class BigResult:
    """Returns a string of `payload["size"]` characters; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def invoke(self, function_name_or_arn: str, payload: Any) -> InvokeResult:
        self.calls += 1
        return InvokeResult(payload={"blob": "x" * int(payload["size"])})


@pytest.fixture
def endpoint() -> Iterator[tuple[Any, BigResult]]:
    function = BigResult()
    service = ThreadedWorkflowService(invoker=function).start()
    with served(service) as url:
        yield client(url), function


def _run(sfn: Any, name: str, definition: dict[str, Any], data: Any) -> dict[str, Any]:
    return run_to_end(sfn, name, definition, data)


def test_an_oversized_task_result_fails_the_execution_past_retry_and_catch(
    endpoint: tuple[Any, BigResult],
) -> None:
    sfn, function = endpoint
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": FUNCTION,
                # The result is checked as the task returns it, before it is made small.
                "ResultSelector": {"kept": True},
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Succeed"},
        },
    }
    small = _run(sfn, "small-result", definition, {"size": 100})
    assert small["status"] == "SUCCEEDED"
    assert json.loads(small["output"]) == {"kept": True}
    big = _run(sfn, "big-result", definition, {"size": 260 * KIB})
    assert big["status"] == "FAILED"
    assert big["error"] == "States.DataLimitExceeded"
    assert "'Call'" in big["cause"]
    assert function.calls == 2  # the oversized result was not retried


def test_a_state_output_over_the_quota_fails_even_when_each_part_fits(
    endpoint: tuple[Any, BigResult],
) -> None:
    sfn, _ = endpoint
    branch = {
        "StartAt": "Part",
        "States": {"Part": {"Type": "Pass", "Parameters": {"s.$": "$.s"}, "End": True}},
    }
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [branch, branch],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Succeed"},
        },
    }
    doc = _run(sfn, "parallel-output", definition, {"s": "y" * (150 * KIB)})
    assert doc["status"] == "FAILED"
    assert doc["error"] == "States.DataLimitExceeded"
    assert "'Both'" in doc["cause"]


def test_variables_over_256_kib_or_over_one_assign_fail(
    endpoint: tuple[Any, BigResult],
) -> None:
    sfn, _ = endpoint
    one = {
        "StartAt": "Keep",
        "States": {
            "Keep": {
                "Type": "Pass",
                "Assign": {"big.$": "States.Format('{}{}', $.s, $.s)"},
                "OutputPath": None,
                "End": True,
            }
        },
    }
    fits = _run(sfn, "variable-fits", one, {"s": "z" * (100 * KIB)})
    assert fits["status"] == "SUCCEEDED"
    over = _run(sfn, "variable-over", one, {"s": "z" * (130 * KIB)})
    assert over["status"] == "FAILED"
    assert over["error"] == "States.DataLimitExceeded"
    assert "'big'" in over["cause"]
    combined = {
        "StartAt": "Keep",
        "States": {"Keep": {"Type": "Pass", "Assign": {"a.$": "$.s", "b.$": "$.s"}, "End": True}},
    }
    doc = _run(sfn, "assign-over", combined, {"s": "z" * (130 * KIB)})
    assert doc["status"] == "FAILED"
    assert doc["error"] == "States.DataLimitExceeded"
    assert "per Assign" in doc["cause"]


def test_an_execution_stores_at_most_10_mib_of_variables(
    endpoint: tuple[Any, BigResult],
) -> None:
    sfn, _ = endpoint
    count = 44  # 44 x 240 KiB > 10 MiB; 42 of them fit
    states: dict[str, Any] = {
        f"S{i}": {"Type": "Pass", "Assign": {f"v{i}.$": "$.s"}, "Next": f"S{i + 1}"}
        for i in range(count)
    }
    states[f"S{count}"] = {"Type": "Succeed"}
    doc = _run(
        sfn, "variables-total", {"StartAt": "S0", "States": states}, {"s": "w" * (240 * KIB)}
    )
    assert doc["status"] == "FAILED"
    assert doc["error"] == "States.DataLimitExceeded"
    history = sfn.get_execution_history(executionArn=doc["executionArn"], maxResults=1000)
    exited = [e for e in history["events"] if e["type"] == "PassStateExited"]
    assert len(exited) == 10 * 1024 // 240  # the state that would pass 10 MiB never exits
    assert "per execution" in doc["cause"]


def test_oversized_execution_input_and_definition_are_refused_by_the_api(
    endpoint: tuple[Any, BigResult],
) -> None:
    sfn, _ = endpoint
    pass_machine = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    arn = sfn.create_state_machine(
        name="input-quota", definition=json.dumps(pass_machine), roleArn=ROLE
    )["stateMachineArn"]
    with pytest.raises(ClientError) as refused:
        sfn.start_execution(stateMachineArn=arn, input=json.dumps({"s": "é" * (130 * KIB)}))
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "262144" in refused.value.response["Error"]["Message"]
    big_pass = {"Type": "Pass", "Result": "r" * 1_100_000, "End": True}
    huge = {"StartAt": "P", "States": {"P": big_pass}}
    with pytest.raises(ClientError) as too_long:
        sfn.create_state_machine(name="definition-quota", definition=json.dumps(huge), roleArn=ROLE)
    assert too_long.value.response["Error"]["Code"] == "ValidationException"
    assert "1048576" in too_long.value.response["Error"]["Message"]


def test_a_standard_execution_fails_when_its_history_reaches_25000_events(
    endpoint: tuple[Any, BigResult],
) -> None:
    sfn, _ = endpoint
    spin = {
        "StartAt": "Spin",
        "States": {
            "Spin": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
                "Default": "Again",
            },
            "Again": {"Type": "Pass", "Next": "Spin"},
            "Done": {"Type": "Succeed"},
        },
    }
    doc = _run(sfn, "spin", spin, {})
    assert (doc["status"], doc["error"]) == ("FAILED", "States.Runtime")
    assert doc["cause"] == "The execution reached the maximum number of history events (25000)."
    assert doc["redriveStatus"] == "NOT_REDRIVABLE"
    last = sfn.get_execution_history(
        executionArn=doc["executionArn"], reverseOrder=True, maxResults=2
    )["events"]
    # The failure is event 25,000; event 24,999 is the last one the machine produced.
    assert [(e["id"], e["type"]) for e in last] == [
        (25000, "ExecutionFailed"),
        (24999, "ChoiceStateExited"),
    ]
