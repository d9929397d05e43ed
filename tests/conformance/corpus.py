"""The conformance corpus: case files under `cases/`, loaded and checked for shape.

`cases/states/*.json` — a state machine:

    {"doc": "<AWS page>", "about": "...", "definition": {...},
     "s3": {"<key>": <JSON value, text or "base64:...">},   (in conformance-data under <case>/)
     "machines": {"<name>": {...}},             (state machines created first, e.g. children)
     "runs": [{"input": ..., "expect": {"status": "SUCCEEDED", "output": ...}},
              {"input": ..., "expect": {"status": "FAILED", "error": "...", "cause": "..."},
               "redrive": {"status": ..., ...}}],   (RedriveExecution, then that outcome)
     "moto": {"lacks": "<why moto's interpreter cannot run it>"}
           | {"differs": "<how moto's result differs from AWS's, and why>"}}   (optional)

or, for a definition AWS refuses at CreateStateMachine:

    {"doc": ..., "about": ..., "definition": {...},
     "rejected": {"error": "InvalidDefinition", "names": ["<what the message names>"]}}

A definition AWS accepts but the local engine refuses (a construct it does not run, refused at
create rather than failing mid-run) adds `"unsupported": "<why>"` to `rejected`.

`cases/events/*.json` — a rule on a bus with an SQS target and what reaches the queue:

    {"doc": ..., "about": ..., "pattern": {...},
     "target": {"InputPath": ...} | {"InputTransformer": ...} | {"Input": ...},   (optional)
     "events": [{"put": {<PutEvents entry>}, "delivers": <the body, or null for no delivery>}
                | {"put": {...}, "rejected": "<the entry's ErrorCode>"}]}
     | "s3": [{"put": "<key>", "body": "..."} | {"copy": "<key>", "to": "<key>"}
             | {"delete": "<key>"}],
       "delivers": [<events>]

With `"replay": "<replay name>"` the bus is archived: once the events are put, every archived
event is replayed to the rule (StartReplay, FilterArns), and each event the rule delivered
unchanged (`"delivers": true`) must arrive again with `replay-name`.

With `"dead_letter_from": "<target ARN>"` the rule targets that ARN instead, with the case's
queue as its DeadLetterConfig: deliveries are then what is dead-lettered, and an event may state
the message `"attributes"` EventBridge adds (RULE_ARN, ERROR_CODE, ...).

A `"*"` in an expected event stands for any value (ids, times, etags); every other key and value
is compared exactly, so a key AWS documents and the runtime leaves out (or adds) fails.
Every case names the AWS documentation page (`doc`) whose documented outcome it holds.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CASES = Path(__file__).parent / "cases"
DOCS = "https://docs.aws.amazon.com/"
ANY = "*"


class CaseError(ValueError):
    """A case file that does not follow the format above."""


@dataclass(frozen=True)
class Run:
    """One execution of a state machine case and the outcome AWS documents for it."""

    input: Any
    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None
    cause_contains: str | None = None
    redrive: Run | None = None
    """After this outcome, RedriveExecution, and the outcome the execution then ends with."""


@dataclass(frozen=True)
class StatesCase:
    """A state machine case (see the module docstring)."""

    name: str
    doc: str
    definition: dict[str, Any]
    runs: tuple[Run, ...] = ()
    rejected_error: str | None = None
    rejected_names: tuple[str, ...] = ()
    unsupported: str | None = None
    s3: dict[str, Any] = field(default_factory=dict)
    machines: dict[str, Any] = field(default_factory=dict)
    machine_type: str = "STANDARD"
    moto_lacks: str | None = None
    moto_differs: str | None = None

    @property
    def rejected(self) -> bool:
        """The local engine refuses the definition at CreateStateMachine."""
        return self.rejected_error is not None

    @property
    def aws_rejects(self) -> bool:
        """AWS refuses the definition at CreateStateMachine."""
        return self.rejected and self.unsupported is None


@dataclass(frozen=True)
class Delivery:
    """One event put on the bus and the body that reaches the queue (None: nothing does), or
    the ErrorCode PutEvents fails the entry with."""

    put: dict[str, Any]
    body: Any
    error_code: str | None = None
    attributes: dict[str, Any] | None = None


@dataclass(frozen=True)
class EventsCase:
    """A rule case (see the module docstring)."""

    name: str
    doc: str
    pattern: dict[str, Any]
    target: dict[str, Any]
    deliveries: tuple[Delivery, ...] = ()
    s3_actions: tuple[dict[str, Any], ...] = ()
    s3_events: tuple[Any, ...] = ()
    dead_letter_from: str | None = None
    replay: str | None = None


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise CaseError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CaseError(f"{path}: a case is a JSON object")
    if not str(doc.get("doc", "")).startswith(DOCS):
        raise CaseError(f"{path}: 'doc' must cite the AWS documentation page ({DOCS}...)")
    if not doc.get("about"):
        raise CaseError(f"{path}: 'about' says what the case shows")
    return doc


def _run(path: Path, raw: dict[str, Any]) -> Run:
    redrive = raw.get("redrive")
    if redrive is not None and raw["expect"].get("status") == "SUCCEEDED":
        raise CaseError(f"{path}: only an execution that did not succeed is redriven")
    then = _run(path, {"input": raw.get("input"), "expect": redrive}) if redrive else None
    expect = raw.get("expect")
    if not isinstance(expect, dict) or "status" not in expect:
        raise CaseError(f"{path}: every run has 'input' and 'expect' with a 'status'")
    unknown = set(expect) - {"status", "output", "error", "cause", "cause_contains"}
    if unknown:
        raise CaseError(f"{path}: unknown expectation keys {sorted(unknown)}")
    if expect["status"] == "SUCCEEDED" and "output" not in expect:
        raise CaseError(f"{path}: a SUCCEEDED run states its output")
    if expect["status"] == "FAILED" and "error" not in expect:
        raise CaseError(f"{path}: a FAILED run states its error")
    return Run(
        input=raw.get("input", {}),
        status=str(expect["status"]),
        output=expect.get("output"),
        error=expect.get("error"),
        cause=expect.get("cause"),
        cause_contains=expect.get("cause_contains"),
        redrive=then,
    )


def states_cases() -> list[StatesCase]:
    """Every state machine case, sorted by name."""
    cases: list[StatesCase] = []
    for path in sorted((CASES / "states").glob("*.json")):
        doc = _load(path)
        definition = doc.get("definition")
        if not isinstance(definition, dict):
            raise CaseError(f"{path}: 'definition' is the state machine (an object)")
        rejected = doc.get("rejected")
        runs = tuple(_run(path, r) for r in doc.get("runs", []))
        if bool(rejected) == bool(runs):
            raise CaseError(f"{path}: a case has either 'runs' or 'rejected'")
        moto = doc.get("moto", {})
        cases.append(
            StatesCase(
                name=path.stem,
                doc=doc["doc"],
                definition=definition,
                runs=runs,
                rejected_error=rejected.get("error", "InvalidDefinition") if rejected else None,
                rejected_names=tuple(rejected.get("names", [])) if rejected else (),
                unsupported=rejected.get("unsupported") if rejected else None,
                s3=dict(doc.get("s3", {})),
                machines=dict(doc.get("machines", {})),
                machine_type=str(doc.get("type", "STANDARD")),
                moto_lacks=moto.get("lacks"),
                moto_differs=moto.get("differs"),
            )
        )
    return cases


def events_cases() -> list[EventsCase]:
    """Every rule case, sorted by name."""
    cases: list[EventsCase] = []
    for path in sorted((CASES / "events").glob("*.json")):
        doc = _load(path)
        if not isinstance(doc.get("pattern"), dict):
            raise CaseError(f"{path}: 'pattern' is the rule's event pattern (an object)")
        deliveries = tuple(
            Delivery(
                put=dict(e["put"]),
                body=e.get("delivers"),
                error_code=e.get("rejected"),
                attributes=e.get("attributes"),
            )
            for e in doc.get("events", [])
        )
        s3_actions = tuple(doc.get("s3", []))
        if bool(deliveries) == bool(s3_actions):
            raise CaseError(f"{path}: a rule case has either 'events' or 's3' actions")
        cases.append(
            EventsCase(
                name=path.stem,
                doc=doc["doc"],
                pattern=doc["pattern"],
                target=dict(doc.get("target", {})),
                deliveries=deliveries,
                s3_actions=s3_actions,
                s3_events=tuple(doc.get("delivers", [])) if s3_actions else (),
                dead_letter_from=doc.get("dead_letter_from"),
                replay=doc.get("replay"),
            )
        )
    return cases


def object_bytes(value: Any) -> bytes:
    """The bytes of an S3 object of a case: text as UTF-8, "base64:..." decoded (binary files
    such as Parquet), anything else as its JSON text."""
    if isinstance(value, str):
        if value.startswith("base64:"):
            return base64.b64decode(value.removeprefix("base64:"), validate=True)
        return value.encode()
    return json.dumps(value).encode()


def shaped_like(expected: Any, actual: Any) -> bool:
    """`actual` equals `expected`, where an expected `"*"` matches any value (present)."""
    if expected == ANY:
        return True
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and set(expected) == set(actual)
            and all(shaped_like(v, actual[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(shaped_like(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual) and type(expected) is type(actual)
