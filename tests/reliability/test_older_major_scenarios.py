"""A team whose EventBridge rule still matches an older major of `file.validated` or
`file.transformed` (written before v3) keeps receiving every file's fact, small files included:
the producers find such a rule on the bus (`sluice_shared.subscribers`) and then stage a small
file's rows and publish every major instead of carrying the rows in the v3 fact alone. Real
handlers on the moto server; the rules are the bus's own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import pytest

from tests.reliability.scenario import assert_reconciled

if TYPE_CHECKING:
    from pathlib import Path

    from tests.reliability.scenario import Rig

OLDER = ("sluice.file.validated.v1", "sluice.file.transformed.v1")


def subscribe(rig: Rig, name: str, pattern: dict[str, Any]) -> str:
    """A team's rule on the Sluice bus with a queue of its own as target; returns the queue."""
    sqs, events = rig.stack.client("sqs"), rig.stack.client("events")
    url = sqs.create_queue(QueueName=f"{rig.stack.prefix}-{name}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name=name, EventBusName=rig.stack.bus, EventPattern=orjson.dumps(pattern).decode()
    )
    events.put_targets(Rule=name, EventBusName=rig.stack.bus, Targets=[{"Id": name, "Arn": arn}])
    return str(url)


def received(rig: Rig, url: str) -> list[dict[str, Any]]:
    """The envelopes (`detail`) the team's queue holds."""
    sqs = rig.stack.client("sqs")
    found: list[dict[str, Any]] = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in got:
            found.append(orjson.loads(message["Body"])["detail"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def published_types(rig: Rig, file_id: str) -> set[str]:
    return {fact.type for fact in rig.facts() if fact.file_id == file_id}


@pytest.mark.parametrize(
    ("pattern", "asks_eventbridge"),
    [
        pytest.param(
            {"source": [{"prefix": "sluice."}], "detail-type": list(OLDER)}, False, id="plain"
        ),
        pytest.param(
            {"detail-type": [{"prefix": "sluice.file.validated.v1"}, *OLDER[1:]]}, True, id="prefix"
        ),
    ],
)
def test_scenario_older_major_subscriber_receives_a_small_files_facts(
    rig: Rig,
    tmp_path: Path,
    pattern: dict[str, Any],
    asks_eventbridge: bool,
    request: pytest.FixtureRequest,
) -> None:
    if asks_eventbridge:  # a pattern only EventBridge's matcher can judge
        request.getfixturevalue("test_event_pattern")
    # GIVEN a team's rule on the bus matching the v1 facts only
    rig.start()
    team = subscribe(rig, "team-v1", pattern)
    # WHEN a small file (its rows would fit in a v3 fact) goes through the pipeline
    key = "orders/small-older-major.csv"
    truth = rig.upload_generated(tmp_path, key, rows=40)
    (file_id,) = rig.settle(1)
    # THEN validate and transform staged its rows and published every major: the team's queue
    # received the v1 fact of each, naming the staged rows
    got = {e["type"]: e for e in received(rig, team) if e["data"]["file_id"] == file_id}
    assert set(got) == set(OLDER)
    assert got[OLDER[0]]["data"]["staged_prefix"].startswith(f"s3://{rig.stack.work}/")
    assert got[OLDER[1]]["data"]["transformed_prefix"].startswith(f"s3://{rig.stack.work}/")
    types = published_types(rig, file_id)
    for fact in ("validated", "transformed"):
        assert {f"sluice.file.{fact}.v{n}" for n in (1, 2, 3)} <= types
    # AND the file completed as usual
    assert_reconciled(rig.reconcile({key: truth}))


def test_scenario_without_an_older_major_subscriber_a_small_file_travels_inline(
    rig: Rig, tmp_path: Path
) -> None:
    # GIVEN only rules of the newest major (Sluice's own) and a catch-all (the audit copy)
    rig.start()
    team = subscribe(rig, "team-v3", {"detail-type": ["sluice.file.validated.v3"]})
    # WHEN the same small file goes through the pipeline
    key = "orders/small-inline.csv"
    truth = rig.upload_generated(tmp_path, key, rows=40)
    (file_id,) = rig.settle(1)
    # THEN its rows travelled in the v3 facts, which went out in v3 alone
    (validated,) = [e for e in received(rig, team) if e["data"]["file_id"] == file_id]
    assert validated["data"]["inline"] is not None
    assert validated["data"].get("staged_prefix") is None
    types = published_types(rig, file_id)
    for fact in ("validated", "transformed"):
        assert {t for t in types if f".{fact}." in t} == {f"sluice.file.{fact}.v3"}
    assert_reconciled(rig.reconcile({key: truth}))
