"""The state machine cases, each through the local endpoint with a real boto3 client, and again
on moto's own Step Functions interpreter wherever moto can run the case (the differential).

Every execution of the corpus is started before any is awaited, so the corpus takes about as
long as its slowest case (Wait, Retry intervals), not their sum.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conformance.conftest import client
from tests.conformance.corpus import Run, StatesCase, object_bytes, states_cases

ROLE = "arn:aws:iam::123456789012:role/conformance"
BUCKET = "conformance-data"
DEADLINE = 120.0  # a deadline for a broken run, not a budget
POLL = 0.25  # between sweeps: the endpoint runs in this process, and polls compete with it
CASES = states_cases()


@dataclass
class Outcome:
    """What one endpoint did with a case: the create error, or one result per run."""

    create_error: str | None = None
    create_message: str = ""
    results: tuple[dict[str, Any], ...] = ()
    redriven: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Run index → the execution's end after RedriveExecution (runs with `redrive`)."""


def _start(sfn: Any, case: StatesCase) -> tuple[Outcome, list[str]]:
    """Create the case's machines (its own named after it, as on both endpoints: ARNs in a
    case's expectations are the same for both) and start one execution per run. An EXPRESS
    machine's runs go through StartSyncExecution, which answers with the result (AWS keeps no
    execution to describe for EXPRESS)."""
    for name, definition in case.machines.items():
        sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    try:
        arn = sfn.create_state_machine(
            name=case.name,
            definition=json.dumps(case.definition),
            roleArn=ROLE,
            type=case.machine_type,
        )["stateMachineArn"]
    except ClientError as exc:
        error = exc.response["Error"]
        return Outcome(create_error=error["Code"], create_message=error.get("Message", "")), []
    if case.machine_type == "EXPRESS":
        results = tuple(
            sfn.start_sync_execution(
                stateMachineArn=arn, name=f"run-{i}", input=json.dumps(run.input)
            )
            for i, run in enumerate(case.runs)
        )
        return Outcome(results=results), []
    executions = [
        sfn.start_execution(stateMachineArn=arn, name=f"run-{i}", input=json.dumps(run.input))[
            "executionArn"
        ]
        for i, run in enumerate(case.runs)
    ]
    return Outcome(), executions


def _finish(
    sfn: Any, started: dict[str, tuple[Outcome, list[str]]], cases: dict[str, StatesCase]
) -> dict[str, Outcome]:
    """Poll every started execution until none is RUNNING (or the deadline passes); redrive
    the ended executions whose run says so and poll them again."""
    done: dict[str, dict[str, Any]] = {}
    redriven: dict[str, dict[str, Any]] = {}
    runs = {
        arn: run
        for name, (_, arns) in started.items()
        if arns  # none for a refused definition or an EXPRESS machine (answered at start)
        for arn, run in zip(arns, cases[name].runs, strict=True)
    }
    pending = list(runs)
    deadline = time.monotonic() + DEADLINE
    while pending and time.monotonic() < deadline:
        for arn in list(pending):
            try:
                doc = sfn.describe_execution(executionArn=arn)
            except ClientError as exc:  # one broken execution fails its own case, not all
                doc = {"status": "DESCRIBE_FAILED", "error": str(exc)}
            if doc["status"] == "RUNNING":
                continue
            pending.remove(arn)
            if arn not in done:
                done[arn] = doc
                if runs[arn].redrive is not None and doc["status"] == runs[arn].status:
                    sfn.redrive_execution(executionArn=arn)
                    pending.append(arn)
            else:
                redriven[arn] = doc
        time.sleep(POLL)
    outcomes: dict[str, Outcome] = {}
    for name, (outcome, arns) in started.items():
        if arns:
            outcome.results = tuple(done.get(arn, {"status": "RUNNING"}) for arn in arns)
            outcome.redriven = {i: redriven[arn] for i, arn in enumerate(arns) if arn in redriven}
        outcomes[name] = outcome
    return outcomes


def _put_objects(s3: Any) -> None:
    for case in CASES:
        for key, value in case.s3.items():
            s3.put_object(Bucket=BUCKET, Key=f"{case.name}/{key}", Body=object_bytes(value))


@pytest.fixture(scope="module")
def local_outcomes(local_endpoint: str) -> dict[str, Outcome]:
    """Every case run through the local endpoint."""
    _put_objects(client(local_endpoint, "s3"))
    sfn = client(local_endpoint, "stepfunctions")
    started = {case.name: _start(sfn, case) for case in CASES}
    return _finish(sfn, started, {case.name: case for case in CASES})


def _moto_execution(moto_server: str, enabled: bool) -> None:
    body = json.dumps({"stepfunctions": {"execute_state_machine": enabled}}).encode()
    request = urllib.request.Request(f"{moto_server}/moto-api/config", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture(scope="module")
def moto_outcomes(
    local_outcomes: dict[str, Outcome], moto_server: str
) -> Iterator[dict[str, Outcome]]:
    """Every case moto's interpreter can run, run there (after the local runs: both share the
    in-process moto, whose S3 holds the cases' objects). moto's `aws-sdk` tasks call the moto
    server named by MOTO_PORT."""
    previous = os.environ.get("MOTO_PORT")
    os.environ["MOTO_PORT"] = moto_server.rsplit(":", 1)[1]
    _moto_execution(moto_server, True)
    try:
        sfn = client(moto_server, "stepfunctions")
        runnable = [c for c in CASES if not c.rejected and c.moto_lacks is None]
        started = {case.name: _start(sfn, case) for case in runnable}
        yield _finish(sfn, started, {case.name: case for case in runnable})
    finally:
        _moto_execution(moto_server, False)
        if previous is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = previous


def _output(doc: dict[str, Any]) -> Any:
    """The execution's output as JSON (moto's unquoted top-level strings stay raw text)."""
    if "output" not in doc:
        return None
    try:
        return json.loads(doc["output"])
    except json.JSONDecodeError:
        return doc["output"]


def _agrees(run: Run, doc: dict[str, Any]) -> bool:
    if doc["status"] != run.status:
        return False
    if run.status == "SUCCEEDED":
        return bool(_output(doc) == run.output)
    if run.error is not None and doc.get("error") != run.error:
        return False
    if run.cause is not None and doc.get("cause") != run.cause:
        return False
    return run.cause_contains is None or run.cause_contains in str(doc.get("cause", ""))


def _show(doc: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "output", "error", "cause")
    return {k: (_output(doc) if k == "output" else doc[k]) for k in keys if k in doc}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_local_endpoint_gives_the_documented_outcome(
    case: StatesCase, local_outcomes: dict[str, Outcome]
) -> None:
    # GIVEN a definition and inputs whose outcome AWS documents (case.doc)
    outcome = local_outcomes[case.name]
    if case.rejected:
        # THEN CreateStateMachine refuses it (as AWS does, or as the local engine does for a
        # construct it does not run: `unsupported`), naming the state
        assert outcome.create_error == case.rejected_error, (case.doc, outcome)
        for name in case.rejected_names:
            assert name in outcome.create_message, (case.doc, outcome.create_message)
        return
    # THEN each execution ends as documented
    assert outcome.create_error is None, (case.doc, outcome.create_message)
    for index, (run, doc) in enumerate(zip(case.runs, outcome.results, strict=True)):
        assert _agrees(run, doc), f"{case.doc}\nexpected {run}\ngot {json.dumps(_show(doc))}"
        if run.redrive is not None:
            # THEN, redriven, it ends as documented for the redrive
            again = outcome.redriven.get(index, {"status": "NOT REDRIVEN"})
            shown = f"{case.doc}\nexpected {run.redrive}\ngot {json.dumps(_show(again))}"
            assert _agrees(run.redrive, again), shown


MOTO_CASES = [c for c in CASES if not c.rejected and c.moto_lacks is None]


@pytest.mark.parametrize("case", MOTO_CASES, ids=[c.name for c in MOTO_CASES])
def test_moto_interpreter_agrees(case: StatesCase, moto_outcomes: dict[str, Outcome]) -> None:
    # GIVEN the same case on moto's interpreter
    outcome = moto_outcomes[case.name]
    assert outcome.create_error is None, outcome.create_message
    agree = [_agrees(run, doc) for run, doc in zip(case.runs, outcome.results, strict=True)]
    if case.moto_differs is None:
        # THEN moto gives the documented outcome too (so the two interpreters agree)
        assert all(agree), json.dumps([_show(doc) for doc in outcome.results])
    else:
        # THEN the recorded difference still holds (remove the note once moto is fixed)
        assert not all(agree), case.moto_differs
