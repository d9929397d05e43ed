"""The one error model: one tree, drawn once, and one outbound table that the SQS batch processor,
the batch handlers and the state machines' `ErrorEquals` lists all agree with."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Logger

import contracts
import sluice_batch
import sluice_ingest
import sluice_output
import sluice_shared
import sluice_transform
import sluice_validate
from contracts.envelope import Envelope
from contracts.errors import ContractError, InvalidContract
from contracts.events import FileIngestedV1
from contracts.types import DatasetRef
from sluice_shared import errors
from sluice_shared.aws.errors import AwsConfigurationError, ConditionalCheckFailed
from sluice_shared.errors import (
    OUTBOUND,
    PoisonInputError,
    SluiceError,
    SqsOutcome,
    ThrottledError,
    TransientError,
    boundary,
    route,
    sfn_error_name,
)
from sluice_shared.ports import ObjectNotFoundError, StaleStateError
from sluice_shared.runtime import parse_with_registry
from sluice_shared.sqs import BatchProcessor
from tests.fakes import RecordingParker

ROOT = Path(__file__).resolve().parents[3]
STATE_MACHINES = sorted((ROOT / "orchestration/statemachines").glob("*.asl.json"))
DLQ = "http://127.0.0.1:1/000000000000/test-dlq"


def _import_everything() -> None:
    for package in (
        contracts,
        sluice_shared,
        sluice_ingest,
        sluice_validate,
        sluice_transform,
        sluice_output,
        sluice_batch,
    ):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            # Lambda entry points read their settings at import (cold start); they only map
            # errors onto the tree and define none.
            if not module.name.endswith(".handler"):
                importlib.import_module(module.name)


def _tree() -> dict[str, type[SluiceError]]:
    """Every SluiceError class the packages define (test modules excluded), by name."""
    _import_everything()
    found: dict[str, type[SluiceError]] = {SluiceError.__name__: SluiceError}
    pending = [SluiceError]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub.__module__.startswith("tests"):
                continue
            assert sub.__name__ not in found, f"two error classes named {sub.__name__}"
            found[sub.__name__] = sub
            pending.append(sub)
    return found


def _drawing() -> dict[str, tuple[str, str | None]]:
    """The tree drawn in `sluice_shared.errors`: name -> (module, parent name)."""
    doc = errors.__doc__ or ""
    block = doc.split("```")[1]
    drawn: dict[str, tuple[str, str | None]] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = re.search(r"([A-Z]\w+)\s{2,}([a-z_][\w.]*)", line)
        if match is None:
            continue
        column, name = match.start(1), match.group(1)
        while stack and stack[-1][0] >= column:
            stack.pop()
        drawn[name] = (match.group(2), stack[-1][1] if stack else None)
        stack.append((column, name))
    return drawn


def _instance(cls: type[SluiceError]) -> SluiceError:
    if issubclass(cls, StaleStateError):
        return cls("stale", file_id="f", current=None)
    return cls("boom")


def test_error_tree_has_one_root_drawn_once_with_every_class() -> None:
    # GIVEN every error class the contracts and the services define
    tree = _tree()

    # WHEN the drawing in sluice_shared.errors is read
    drawn = _drawing()

    # THEN it names each class once, with its module and its parent, and nothing else
    actual = {
        name: (cls.__module__, None if cls is SluiceError else cls.__bases__[0].__name__)
        for name, cls in tree.items()
    }
    assert drawn == actual
    assert all(len(cls.__bases__) == 1 for cls in tree.values())
    assert issubclass(ContractError, PoisonInputError)


def test_contracts_import_without_the_services() -> None:
    # GIVEN a fresh interpreter WHEN the contracts are imported THEN no service module is loaded
    script = (
        "import sys, contracts.errors, contracts.registry, contracts.envelope\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('sluice'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("exc", "outcome", "sfn_name"),
    [
        (ThrottledError("slow down"), SqsOutcome.RETRY, "ThrottledError"),
        (TransientError("5xx"), SqsOutcome.RETRY, "TransientError"),
        (PoisonInputError("bad"), SqsOutcome.PARK, "PoisonInputError"),
        (InvalidContract("bad event"), SqsOutcome.PARK, "PoisonInputError"),
        (ObjectNotFoundError("gone"), SqsOutcome.PARK, "PoisonInputError"),
        (AwsConfigurationError("no table"), SqsOutcome.RETRY, "AwsConfigurationError"),
        (ConditionalCheckFailed("lost"), SqsOutcome.RETRY, "ConditionalCheckFailed"),
        (RuntimeError("bug"), SqsOutcome.RETRY, "RuntimeError"),
        (KeyboardInterrupt(), SqsOutcome.FAIL_BATCH, "KeyboardInterrupt"),
    ],
)
def test_outbound_table_routes_each_family(
    exc: BaseException, outcome: SqsOutcome, sfn_name: str
) -> None:
    assert route(exc).sqs is outcome
    assert sfn_error_name(exc) == sfn_name
    assert type(boundary(exc)).__name__ == sfn_name


def test_boundary_keeps_message_and_code_of_a_poison_subclass() -> None:
    original = ObjectNotFoundError("s3://b/k does not exist")

    public = boundary(original)

    assert type(public) is PoisonInputError
    assert isinstance(public, PoisonInputError)
    assert (public.message, public.code) == (original.message, "object_not_found")


def test_outbound_table_is_ordered_most_specific_first() -> None:
    # A family listed after one of its ancestors could never be chosen.
    families = [row.family for row in OUTBOUND]
    for index, family in enumerate(families):
        assert not any(issubclass(family, earlier) for earlier in families[:index]), family


# ------------------------------------------------------------------------------ SQS column


class _Escapes(BaseException):
    """Something no record handler may swallow (like a cancellation)."""


def _body() -> str:
    envelope = Envelope.wrap(
        FileIngestedV1(
            file_id="936b51a89792fd773da08d5a96cafb0d",
            dataset=DatasetRef(name="orders", version=1),
            bucket="sluice-raw",
            key="orders/2024/01/15/a.csv",
            etag="abc",
            size_bytes=10,
            object_created_at="2024-01-15T00:00:00Z",
        ),
        correlationid="936b51a89792fd773da08d5a96cafb0d",
    )
    return json.dumps(
        {
            "version": "0",
            "id": "8f5c1b2e-0000-0000-0000-000000000001",
            "detail-type": envelope.type,
            "source": envelope.source,
            "account": "000000000000",
            "time": "2024-01-15T10:30:05Z",
            "region": "us-east-1",
            "resources": [],
            "detail": envelope.model_dump(mode="json"),
        }
    )


@pytest.mark.parametrize(
    "exc",
    [
        ThrottledError("slow down"),
        TransientError("5xx"),
        InvalidContract("bad event"),
        ObjectNotFoundError("gone"),
        AwsConfigurationError("no table"),
        StaleStateError("stale", file_id="f", current=None),
        RuntimeError("bug"),
        _Escapes(),
    ],
    ids=lambda exc: type(exc).__name__,
)
async def test_sqs_batch_processor_does_what_the_table_says(exc: BaseException) -> None:
    # GIVEN a handler that raises exc on the one record of a batch
    parker = RecordingParker()
    processor = BatchProcessor(
        parse=parse_with_registry, parker=parker, dlq_url=DLQ, logger=Logger(service="test")
    )

    async def handle(envelope: Envelope[Any], deps: None) -> None:
        raise exc

    event = {"Records": [{"messageId": "m1", "body": _body()}]}
    expected = route(exc).sqs

    # WHEN the batch is processed THEN the record's fate is the table's
    if expected is SqsOutcome.FAIL_BATCH:
        with pytest.raises(type(exc)):
            await processor.process(event, handle, None, accepted={FileIngestedV1.TYPE})
        assert parker.parked == []
        return
    response = await processor.process(event, handle, None, accepted={FileIngestedV1.TYPE})
    if expected is SqsOutcome.PARK:
        assert response == {"batchItemFailures": []}
        assert [p.reason_code for p in parker.parked] == [getattr(exc, "code", None)]
    else:
        assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
        assert parker.parked == []


# --------------------------------------------------------------------- Step Functions column


def _lambda_tasks() -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(states: dict[str, Any], path: str) -> None:
        for name, state in states.items():
            if state.get("Type") == "Task" and "lambda:invoke" in str(state.get("Resource")):
                found.append((f"{path}{name}", state))
            if "ItemProcessor" in state:
                walk(state["ItemProcessor"]["States"], f"{path}{name}/")
            for branch in state.get("Branches", []):
                walk(branch["States"], f"{path}{name}/")

    for machine in STATE_MACHINES:
        walk(json.loads(machine.read_text())["States"], f"{machine.name}:")
    return found


def _matches(clause: dict[str, Any], name: str) -> bool:
    equals = clause["ErrorEquals"]
    return name in equals or "States.ALL" in equals


def test_state_machines_have_lambda_tasks() -> None:
    assert STATE_MACHINES
    assert len(_lambda_tasks()) >= 3


@pytest.mark.parametrize("task", _lambda_tasks(), ids=lambda task: task[0])
def test_asl_error_equals_agree_with_the_outbound_table(task: tuple[str, dict[str, Any]]) -> None:
    # GIVEN one Lambda task of a state machine and every class of the tree
    _, state = task
    retries = state.get("Retry", [])
    catches = state.get("Catch", [])
    named_catches = [c for c in catches if "States.ALL" not in c["ErrorEquals"]]

    for cls in _tree().values():
        name = sfn_error_name(_instance(cls))
        retried = any(name in clause["ErrorEquals"] for clause in retries)
        first_catch = next((c for c in catches if _matches(c, name)), None)
        # THEN transient errors are retried, and nothing else is
        assert retried is issubclass(cls, TransientError), (cls, name)
        if issubclass(cls, PoisonInputError):
            # THEN poison is caught by the task's poison clause when it has one
            if named_catches:
                assert first_catch in named_catches, (cls, name)
        else:
            # THEN anything else reaches only a States.ALL clause
            assert first_catch is None or first_catch not in named_catches, (cls, name)

    # THEN every Sluice name listed is one the table can raise (no dead or misspelt names)
    emitted = {row.sfn_error for row in OUTBOUND if row.sfn_error is not None}
    listed = {
        error
        for clause in [*retries, *catches]
        for error in clause["ErrorEquals"]
        if not error.startswith(("States.", "Lambda."))
    }
    assert listed <= emitted
