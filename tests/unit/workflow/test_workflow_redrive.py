"""Map results and redrive as AWS documents them: an unsuccessful Distributed Map child in the
Map's output, a STANDARD child redriven in place with
`MapRunRedriven`, and only the failed Parallel branches / inline Map iterations run again.

AWS pages followed:
- https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html
  (COMPACT by default without a ResultWriter; "If a child workflow execution fails, Step
  Functions returns its execution result unchanged", as with Transformation NONE)
- https://docs.aws.amazon.com/step-functions/latest/dg/redrive-map-run.html
- https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html
"""

from __future__ import annotations

from typing import Any

from sluice.local.workflow import api
from tests.unit.workflow.workflow_fakes import FunctionRaised, make_engine, run_definition

FN = "arn:aws:lambda:us-east-1:123456789012:function:"


def _task(name: str, nxt: str | None = None) -> dict[str, Any]:
    return {"Type": "Task", "Resource": FN + name, **({"Next": nxt} if nxt else {"End": True})}


def _dmap(execution_type: str, processor: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
                    **processor,
                },
                **fields,
                "End": True,
            }
        },
    }


class Flaky:
    """Functions that fail for the items in `bad` while `broken`, and count every call."""

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad
        self.broken = True
        self.calls: list[tuple[str, Any]] = []

    def functions(self, *names: str) -> dict[str, Any]:
        def make(name: str) -> Any:
            async def handler(payload: Any) -> Any:
                self.calls.append((name, payload["n"]))
                if name == "fragile" and self.broken and payload["n"] in self.bad:
                    raise FunctionRaised("TransientError", f"item {payload['n']} failed")
                return {**payload, name: True}

            return handler

        return {name: make(name) for name in names}


async def test_a_failed_child_comes_back_as_its_execution_result_without_a_result_writer() -> None:
    # GIVEN a tolerated failure and no ResultWriter
    flaky = Flaky({1})
    engine, *_ = make_engine(flaky.functions("fragile"))
    definition = _dmap(
        "EXPRESS", {"StartAt": "F", "States": {"F": _task("fragile")}}, ToleratedFailureCount=1
    )
    execution = await run_definition(engine, definition, {"items": [{"n": 0}, {"n": 1}]})
    # THEN the succeeded child gives its output and the failed one its execution result
    assert execution.status == "SUCCEEDED", execution.cause
    ok, failed = execution.output
    assert ok == {"n": 0, "fragile": True}
    assert failed["Status"] == "FAILED"
    assert failed["Error"] == "TransientError"
    assert failed["Input"] == '{"n":1}'
    assert failed["ExecutionArn"].startswith(
        "arn:aws:states:us-east-1:123456789012:express:sm/Fan:"
    )
    assert "Output" not in failed


def _two_step_child() -> dict[str, Any]:
    return {
        "StartAt": "Sturdy",
        "States": {"Sturdy": _task("sturdy", "Fragile"), "Fragile": _task("fragile")},
    }


async def test_redrive_reruns_a_standard_child_in_place_from_its_failed_state() -> None:
    # GIVEN a STANDARD child workflow that failed in its second state
    flaky = Flaky({1})
    engine, *_ = make_engine(flaky.functions("sturdy", "fragile"))
    definition = _dmap("STANDARD", _two_step_child())
    execution = await run_definition(engine, definition, {"items": [{"n": 0}, {"n": 1}]})
    assert execution.error == "States.ExceedToleratedFailureThreshold"
    (map_run,) = engine.list_map_runs(execution.arn)
    failed_child = map_run.children[1].execution
    failed_arn = failed_child.arn
    # WHEN the cause is fixed and the execution is redriven
    flaky.broken = False
    flaky.calls.clear()
    status, _ = await api.handle(
        engine, "AWSStepFunctions.RedriveExecution", {"executionArn": execution.arn}
    )
    assert status == 200
    redriven = await engine.wait(execution.arn)
    # THEN the same child execution ran again, only from the state it failed in
    assert redriven.status == "SUCCEEDED", redriven.cause
    assert flaky.calls == [("fragile", 1)]
    child = map_run.children[1].execution
    assert child.arn == failed_arn
    assert (child.status, child.redrive_count) == ("SUCCEEDED", 1)
    assert "ExecutionRedriven" in [e["type"] for e in child.history]
    status, listed = await api.handle(
        engine, "AWSStepFunctions.ListExecutions", {"mapRunArn": map_run.arn}
    )
    assert sorted(e["executionArn"] for e in listed["executions"]) == sorted(
        c.execution.arn for c in map_run.children.values()
    )
    # AND the parent's history says the Map Run was redriven
    (event,) = [e for e in redriven.history if e["type"] == "MapRunRedriven"]
    assert event["mapRunRedrivenEventDetails"] == {"mapRunArn": map_run.arn, "redriveCount": 1}
    assert redriven.output[1] == {"n": 1, "sturdy": True, "fragile": True}


def _parallel() -> dict[str, Any]:
    return {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "A", "States": {"A": _task("sturdy")}},
                    {
                        "StartAt": "B1",
                        "States": {"B1": _task("sturdy", "B2"), "B2": _task("fragile")},
                    },
                ],
                "End": True,
            }
        },
    }


async def test_redrive_reruns_only_the_failed_parallel_branch_from_its_failed_state() -> None:
    # GIVEN a Parallel state whose second branch failed in its second state
    flaky = Flaky({7})
    engine, *_ = make_engine(flaky.functions("sturdy", "fragile"))
    execution = await run_definition(engine, _parallel(), {"n": 7})
    assert execution.error == "TransientError"
    # WHEN it is redriven after the fix
    flaky.broken = False
    flaky.calls.clear()
    await engine.redrive_execution(execution.arn)
    redriven = await engine.wait(execution.arn)
    # THEN the succeeded branch is not run again and the failed one resumes at B2
    assert redriven.status == "SUCCEEDED", redriven.cause
    assert flaky.calls == [("fragile", 7)]
    assert redriven.output == [
        {"n": 7, "sturdy": True},
        {"n": 7, "sturdy": True, "fragile": True},
    ]


async def test_redrive_reruns_only_the_failed_inline_map_iterations() -> None:
    flaky = Flaky({2})
    engine, *_ = make_engine(flaky.functions("sturdy", "fragile"))
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 1,
                "ItemProcessor": _two_step_child(),
                "End": True,
            }
        },
    }
    items = [{"n": i} for i in range(4)]
    execution = await run_definition(engine, definition, {"items": items})
    assert execution.error == "TransientError"
    flaky.broken = False
    flaky.calls.clear()
    await engine.redrive_execution(execution.arn)
    redriven = await engine.wait(execution.arn)
    assert redriven.status == "SUCCEEDED", redriven.cause
    # THEN iterations 0 and 1 (succeeded) are reused and 2 resumes at Fragile
    assert not {c for c in flaky.calls if c[1] in (0, 1)}
    assert [c for c in flaky.calls if c[1] == 2] == [("fragile", 2)]
    assert [o["n"] for o in redriven.output] == [0, 1, 2, 3]


async def test_a_parallel_state_entered_again_in_a_loop_does_not_reuse_older_branches() -> None:
    # GIVEN a loop through a Parallel state whose branch fails on the second pass
    calls: list[int] = []

    async def count(payload: Any) -> Any:
        calls.append(payload["i"])
        if payload["i"] == 1 and len(calls) == 2:
            raise FunctionRaised("TransientError", "second pass")
        return payload

    engine, *_ = make_engine({"count": count})
    definition = {
        "StartAt": "Once",
        "States": {
            "Once": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "C", "States": {"C": _task("count")}}],
                "ResultSelector": {"i.$": "States.MathAdd($[0].i, 1)"},
                "Next": "Again?",
            },
            "Again?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.i", "NumericLessThan": 2, "Next": "Once"}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    execution = await run_definition(engine, definition, {"i": 0})
    assert execution.error == "TransientError"
    await engine.redrive_execution(execution.arn)
    redriven = await engine.wait(execution.arn)
    # THEN the redrive ran the failed pass's branch, not the first pass's output again
    assert redriven.status == "SUCCEEDED", redriven.cause
    assert calls == [0, 1, 1]
    assert redriven.output == {"i": 2}
