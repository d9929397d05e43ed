"""`sluice events publish` puts a validated envelope on the stage's bus (moto server)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from contracts.events import FileProcessedV1
from contracts.registry import parse_eventbridge_event
from contracts.tools import ContractFolder
from tests.integration.cli.support import Invoke, Platform

PROCESSED = FileProcessedV1.TYPE


def _queue_on_bus(platform: Platform) -> str:
    sqs = platform.client("sqs")
    url = sqs.create_queue(QueueName="it-consumer")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = platform.client("events")
    bus = platform.names["event_bus"]
    events.put_rule(
        Name="it-processed", EventBusName=bus, EventPattern=json.dumps({"detail-type": [PROCESSED]})
    )
    events.put_targets(Rule="it-processed", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return str(url)


def _golden_data() -> dict[str, Any]:
    example = ContractFolder.of(FileProcessedV1).example_files()[0]
    data: dict[str, Any] = orjson.loads(example.read_bytes())["data"]
    return data


async def test_events_publish_delivers_a_parseable_envelope(
    platform: Platform, sluice: Invoke
) -> None:
    url = _queue_on_bus(platform)
    data = _golden_data()

    result = sluice(
        "--json",
        "events",
        "publish",
        "--type",
        PROCESSED,
        "--data",
        orjson.dumps(data).decode(),
        "--correlation-id",
        "corr-1",
    )

    assert result.exit_code == 0, result.output
    sent = orjson.loads(result.stdout)
    messages = platform.client("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    envelope = parse_eventbridge_event(messages[0]["Body"])
    assert envelope.id == sent["id"]
    assert envelope.correlationid == "corr-1"
    assert envelope.data.file_id == data["file_id"]


async def test_events_publish_invalid_event_sends_nothing(
    platform: Platform, sluice: Invoke
) -> None:
    url = _queue_on_bus(platform)
    data = {**_golden_data(), "rows_out": "many"}

    result = sluice("events", "publish", "--type", PROCESSED, "--data", orjson.dumps(data).decode())

    assert result.exit_code == 1
    assert "data.rows_out" in result.stdout
    received = platform.client("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert received.get("Messages", []) == []


async def test_events_publish_dry_run_entries_are_accepted_by_put_events(
    platform: Platform, sluice: Invoke
) -> None:
    # GIVEN a consumer queue on the stage's bus; WHEN --dry-run prints the entries
    url = _queue_on_bus(platform)
    data = _golden_data()
    printed = sluice(
        "events", "publish", "--type", PROCESSED, "--data", orjson.dumps(data).decode(),
        "--dry-run",
    )  # fmt: skip

    # THEN nothing was sent, the bus is the stage's ARN (resolved, not a placeholder), and the
    # printed list goes to PutEvents unchanged, as `aws events put-events --entries file://` would
    assert printed.exit_code == 0, printed.output
    entries = orjson.loads(printed.stdout)
    events = platform.client("events")
    bus_arn = events.describe_event_bus(Name=platform.names["event_bus"])["Arn"]
    assert [e["EventBusName"] for e in entries] == [bus_arn]
    sqs = platform.client("sqs")
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []
    response = events.put_events(Entries=entries)
    assert response["FailedEntryCount"] == 0
    [message] = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert parse_eventbridge_event(message["Body"]).data.file_id == data["file_id"]
