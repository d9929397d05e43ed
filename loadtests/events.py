"""Custom team events for load tests: a registered contract, envelopes built from the golden
examples, and a per-run sink (an EventBridge rule → an SQS queue) to reconcile delivery.

A team publishing its own events uses the same envelope and registry as the suite. The load test
does exactly that: `LoadtestReplayedV1` is a custom contract whose `data` carries the `data` of
one of the contracts' golden examples, so the bus carries realistic payload sizes and shapes
without ever matching the suite's own rules (publishing a real `sluice.file.ingested.v1` would
make validate work on files that do not exist).

A team load-tests its own event type instead with `--event-example PATH` (`team_events`): a
golden example of its contract folder (or the folder, for all of them), each validated against
the folder's `schema.json` before anything is sent; the run then publishes that type, with a
fresh id per event and the run as correlation id, and its sink matches that type.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationError

from contracts.envelope import ContractModel, Envelope, to_eventbridge_entry
from contracts.registry import ContractRegistry, parse_eventbridge_event
from contracts.tools import EXAMPLES_DIR, SCHEMA_FILE

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_GLOB = "contracts/events/*/v*/examples/*.json"
PUT_EVENTS_MAX = 10
"""PutEvents takes at most 10 entries per call."""


class LoadtestReplayedV1(ContractModel):
    """`loadtest.golden.replayed.v1`: one golden example's payload, replayed by a load test."""

    TYPE: ClassVar[str] = "loadtest.golden.replayed.v1"
    SOURCE: ClassVar[str] = "loadtest.golden"
    """A team source: the bus policy keeps `sluice.*` sources for the services' own roles."""

    run_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0)
    example: str = Field(min_length=1)
    payload: dict[str, Any]


REGISTRY = ContractRegistry([LoadtestReplayedV1])
"""The load test's own registry: it reads only its custom contract."""


def golden_examples(root: Path = REPO_ROOT) -> list[tuple[str, dict[str, Any]]]:
    """Every golden example as (`<fact>/<major>/<name>`, its `data`), sorted by name.

    Raises:
        FileNotFoundError: no example under `contracts/events/`.
    """
    found = []
    for path in sorted(root.glob(EXAMPLES_GLOB)):
        doc = json.loads(path.read_text(encoding="utf-8"))
        name = "/".join((path.parts[-4], path.parts[-3], path.stem))
        found.append((name, dict(doc["data"])))
    if not found:
        raise FileNotFoundError(f"no golden examples under {root / 'contracts/events'}")
    return found


@dataclass(frozen=True)
class TeamEvent:
    """A team's event type, taken from one of its golden examples (already validated)."""

    example: str
    source: str
    type: str
    dataschema: str | None
    data: dict[str, Any]


class TeamEventError(ValueError):
    """A golden example that cannot be load-tested; the message lists every problem."""


def team_events(path: Path) -> list[TeamEvent]:
    """The team event types to send: the golden example `path`
    (`<fact>/v<N>/examples/<case>.json`), or every golden example under the folder `path`.

    Each is a whole envelope whose `data` must validate against its folder's `schema.json`
    (`sluice contracts generate --path` writes it) and whose source is the team's: `sluice.*`
    sources belong to Sluice's services (the bus policy refuses them from anyone else, and
    Sluice's rules would act on them).

    Raises:
        TeamEventError: nothing found, or an example is not a valid envelope of its schema.
    """
    files = [path] if path.is_file() else sorted(path.rglob(f"{EXAMPLES_DIR}/*.json"))
    if not files:
        raise TeamEventError(f"{path}: no golden example (<fact>/v<N>/{EXAMPLES_DIR}/*.json)")
    return [_team_event(file) for file in files]


def _team_event(file: Path) -> TeamEvent:
    import jsonschema

    try:
        document = json.loads(file.read_text(encoding="utf-8"))
        envelope = Envelope[dict[str, Any]].model_validate(document)
    except (OSError, ValueError) as exc:
        detail = exc.errors() if isinstance(exc, ValidationError) else exc
        raise TeamEventError(f"{file}: not a golden example (a whole envelope): {detail}") from None
    if envelope.source.startswith("sluice."):
        raise TeamEventError(
            f"{file}: source {envelope.source!r} is Sluice's own; a team event has its own source"
        )
    schema_path = file.parent.parent / SCHEMA_FILE
    if file.parent.name != EXAMPLES_DIR or not schema_path.is_file():
        raise TeamEventError(
            f"{file}: no {SCHEMA_FILE} beside {EXAMPLES_DIR}/ to validate it against "
            "(run `sluice contracts generate --path` on the contract folder)"
        )
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    declared = schema.get("x-sluice-type")
    problems = [] if declared in (None, envelope.type) else [f"type: not {declared!r}"]
    validator = jsonschema.validators.validator_for(schema)(schema)
    for error in validator.iter_errors(envelope.data):
        where = ".".join(str(part) for part in ("data", *error.absolute_path))
        problems.append(f"{where}: {error.message}")
    if problems:
        raise TeamEventError(f"{file}: breaks {schema_path}: " + "; ".join(problems))
    return TeamEvent(
        example=file.as_posix(),
        source=envelope.source,
        type=envelope.type,
        dataschema=envelope.dataschema,
        data=envelope.data,
    )


@dataclass
class EventFactory:
    """Builds unique custom envelopes, cycling through the golden examples.

    Args:
        run_id: the load-test run; every envelope carries it (and the sink rule matches it).
        prefix: makes ids unique across the factories of one run (e.g. the user's number).
        team: a team's event types (`team_events`): sent as they are instead of the
            `LoadtestReplayedV1` wrapper.
    """

    run_id: str
    prefix: str = ""
    examples: list[tuple[str, dict[str, Any]]] = field(default_factory=golden_examples)
    team: list[TeamEvent] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def envelope(self) -> Envelope[Any]:
        """The next envelope: a fresh uuid4 id, the next golden payload, `correlationid` = run."""
        seq = next(self._seq)
        if self.team:
            event = self.team[seq % len(self.team)]
            return Envelope[dict[str, Any]](
                id=f"{self.prefix}{uuid.uuid4()}",
                source=event.source,
                type=event.type,
                dataschema=event.dataschema,
                correlationid=self.run_id,
                data=event.data,
            )
        name, data = self.examples[seq % len(self.examples)]
        model = LoadtestReplayedV1(run_id=self.run_id, seq=seq, example=name, payload=data)
        return Envelope.wrap(
            model, correlationid=self.run_id, id=f"{self.prefix}{uuid.uuid4()}", subject=name
        )

    def entries(self, bus_name: str, count: int = PUT_EVENTS_MAX) -> list[dict[str, Any]]:
        """`count` (≤ 10) PutEvents entries for `bus_name`.

        Raises:
            ValueError: `count` outside 1..10.
        """
        if not 1 <= count <= PUT_EVENTS_MAX:
            raise ValueError(f"PutEvents takes 1..{PUT_EVENTS_MAX} entries, not {count}")
        return [to_eventbridge_entry(self.envelope(), bus_name) for _ in range(count)]


def entry_id(entry: dict[str, Any]) -> str:
    """The envelope id inside a PutEvents entry's `Detail`."""
    return str(json.loads(entry["Detail"])["id"])


# ------------------------------------------------------------------------------------ the sink


@dataclass(frozen=True)
class Sink:
    """The per-run rule and queue that receive the run's custom events."""

    rule_name: str
    bus_name: str
    queue_url: str
    queue_arn: str


def sink_name(stage: str, run_id: str) -> str:
    """`sluice-<stage>-lt-<run_id>` (≤ 64 chars: the limit of an EventBridge rule name)."""
    return f"sluice-{stage}-lt-{run_id}"[:64]


def create_sink(
    sqs: Any,
    events: Any,
    *,
    bus_name: str,
    stage: str,
    run_id: str,
    team: list[TeamEvent] | None = None,
) -> Sink:
    """Create the sink queue and a rule on `bus_name` matching this run's custom events (the
    `team` event types when given, else `LoadtestReplayedV1`).

    The queue policy lets EventBridge send (needed on AWS; stored but not enforced locally).
    """
    team = team or []
    name = sink_name(stage, run_id)
    url = sqs.create_queue(
        QueueName=name,
        Attributes={"MessageRetentionPeriod": "3600", "VisibilityTimeout": "60"},
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    rule_arn = events.put_rule(
        Name=name,
        EventBusName=bus_name,
        State="ENABLED",
        EventPattern=json.dumps(
            {
                "source": sorted({e.source for e in team} or {LoadtestReplayedV1.SOURCE}),
                "detail-type": sorted({e.type for e in team} or {LoadtestReplayedV1.TYPE}),
                "detail": {"correlationid": [run_id]},
            }
        ),
        Description="sluice load test: custom events of one run -> sink queue",
    )["RuleArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(Rule=name, EventBusName=bus_name, Targets=[{"Id": "sink", "Arn": arn}])
    return Sink(rule_name=name, bus_name=bus_name, queue_url=url, queue_arn=arn)


def delete_sink(sqs: Any, events: Any, sink: Sink) -> None:
    """Remove the rule (targets first) and the queue."""
    events.remove_targets(Rule=sink.rule_name, EventBusName=sink.bus_name, Ids=["sink"])
    events.delete_rule(Name=sink.rule_name, EventBusName=sink.bus_name)
    sqs.delete_queue(QueueUrl=sink.queue_url)


def read_event(body: str) -> Envelope[Any]:
    """The envelope of a sink message: `LoadtestReplayedV1` with its model, a team's type as an
    envelope of plain data (validated before it was sent).

    Raises:
        ValueError: the body is no EventBridge event carrying an envelope.
    """
    event = json.loads(body)
    if event.get("detail-type") == LoadtestReplayedV1.TYPE:
        try:
            return parse_eventbridge_event(event, registry=REGISTRY)
        except Exception as exc:
            raise ValueError(str(exc)) from None
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise ValueError("no detail")
    return Envelope[dict[str, Any]].model_validate(detail)


@dataclass
class Delivery:
    """What the sink received: envelope ids with their counts and delivery latencies."""

    counts: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    unreadable: int = 0


def drain_sink(
    sqs: Any,
    queue_url: str,
    *,
    expected: int,
    quiet_s: float = 3.0,
    timeout_s: float = 120.0,
) -> Delivery:
    """Receive and delete everything in the sink until `expected` messages arrived and the queue
    stayed empty for `quiet_s` (so late duplicates are still counted), or `timeout_s` passed.

    Latency is the SQS `SentTimestamp` minus the envelope's `time` (publish → delivered).
    """
    got = Delivery()
    received = 0
    quiet_since: float | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["SentTimestamp"],
        )
        messages = response.get("Messages", [])
        if not messages:
            now = time.monotonic()
            quiet_since = quiet_since or now
            if received >= expected and now - quiet_since >= quiet_s:
                break
            continue
        quiet_since = None
        for message in messages:
            received += 1
            try:
                envelope = read_event(message["Body"])
            except ValueError:
                got.unreadable += 1
                continue
            got.counts[envelope.id] += 1
            sent_ms = int(message.get("Attributes", {}).get("SentTimestamp", "0"))
            if sent_ms:
                published = envelope.time.astimezone(UTC).timestamp()
                got.latencies_s.append(max(0.0, sent_ms / 1000 - published))
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    return got


@dataclass(frozen=True)
class EventVerdict:
    """Published (accepted by the bus) versus delivered to the sink."""

    published: int
    delivered_unique: int
    lost: list[str]
    duplicated: dict[str, int]
    unexpected: list[str]
    unreadable: int

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing duplicated, nothing unexpected or unreadable."""
        return not (self.lost or self.duplicated or self.unexpected or self.unreadable)


def reconcile_events(published: set[str], delivery: Delivery) -> EventVerdict:
    """Compare the ids the bus accepted with what the sink received."""
    seen = set(delivery.counts)
    return EventVerdict(
        published=len(published),
        delivered_unique=len(seen & published),
        lost=sorted(published - seen),
        duplicated={i: n for i, n in sorted(delivery.counts.items()) if n > 1},
        unexpected=sorted(seen - published),
        unreadable=delivery.unreadable,
    )
