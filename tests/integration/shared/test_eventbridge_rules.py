"""EventBridgeRules on a moto server: the bus's rules listed page by page, and the
legacy-subscriber check (`sluice_shared.subscribers`) over them. TestEventPattern is answered by
the local runtime's EventBridge patches (`sluice.local.events_patches`; moto has none)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from types_aiobotocore_events.client import EventBridgeClient

from contracts.events import FileTransformedV3, FileValidatedV1, FileValidatedV3
from sluice_shared.aws.errors import AwsConfigurationError, AwsServiceError
from sluice_shared.aws.rules import PAGE_SIZE, EventBridgeRules
from sluice_shared.subscribers import LegacySubscribers, example_event

BUS = "sluice-bus"


async def put_rule(
    events: EventBridgeClient, name: str, pattern: dict[str, Any], *, enabled: bool = True
) -> None:
    await events.put_rule(
        Name=name,
        EventBusName=BUS,
        EventPattern=json.dumps(pattern),
        State="ENABLED" if enabled else "DISABLED",
    )


async def test_rules_listed_across_pages_with_state_and_pattern(events: EventBridgeClient) -> None:
    # GIVEN more rules on the bus than one ListRules page holds, one of them disabled
    await events.create_event_bus(Name=BUS)
    for n in range(PAGE_SIZE + 3):
        await put_rule(events, f"r{n:03d}", {"detail-type": [f"t{n}"]}, enabled=n != 7)
    await events.put_rule(Name="elsewhere", EventPattern="{}")  # the default bus: not listed

    # WHEN they are listed
    rules = await EventBridgeRules(events, BUS).list_rules()

    # THEN every rule of the bus is there once, with its state and pattern
    assert sorted(r.name for r in rules) == [f"r{n:03d}" for n in range(PAGE_SIZE + 3)]
    by_name = {r.name: r for r in rules}
    assert not by_name["r007"].enabled
    assert by_name["r008"].enabled
    assert json.loads(by_name["r008"].event_pattern or "") == {"detail-type": ["t8"]}
    assert by_name["r008"].arn.endswith(f":rule/{BUS}/r008")


async def test_rules_of_a_missing_bus_are_a_configuration_error(events: EventBridgeClient) -> None:
    with pytest.raises(AwsConfigurationError):
        await EventBridgeRules(events, "no-such-bus").list_rules()


async def test_legacy_plain_v1_rule_on_the_bus_is_found(events: EventBridgeClient) -> None:
    # GIVEN Sluice's own transform rule and a team's rule of file.validated.v1
    await events.create_event_bus(Name=BUS)
    await put_rule(events, "transform", {"detail-type": ["sluice.file.validated.v3"]})
    await put_rule(events, "team-v1", {"detail-type": ["sluice.file.validated.v1"]})
    subscribers = LegacySubscribers(EventBridgeRules(events, BUS))
    # THEN file.validated has a legacy subscriber, file.transformed has none
    assert await subscribers.present(FileValidatedV3) is True
    assert await subscribers.present(FileTransformedV3) is False


async def test_legacy_unreadable_rules_count_as_a_legacy_subscriber(
    events: EventBridgeClient,
) -> None:
    # GIVEN a bus that does not exist (ListRules fails)
    subscribers = LegacySubscribers(EventBridgeRules(events, "no-such-bus"))
    # THEN the producer stages (fail safe)
    assert await subscribers.present(FileValidatedV3) is True


@pytest.mark.usefixtures("test_event_pattern")
@pytest.mark.parametrize(
    ("pattern", "legacy"),
    [
        ({"detail-type": [{"prefix": "sluice.file.validated"}]}, False),
        ({"detail-type": [{"prefix": "sluice.file.validated.v1"}]}, True),
        ({"detail-type": [{"anything-but": ["sluice.file.validated.v3"]}]}, True),
        ({"source": ["sluice.validate"], "detail": {"type": ["sluice.file.validated.v2"]}}, True),
        ({"detail-type": [{"prefix": "sluice.file.transformed"}]}, False),
    ],
    ids=["prefix-every-major", "prefix-v1", "anything-but-v3", "envelope-type-v2", "other-fact"],
)
async def test_legacy_non_plain_pattern_is_judged_by_test_event_pattern(
    events: EventBridgeClient, pattern: dict[str, Any], legacy: bool
) -> None:
    # GIVEN a team rule only EventBridge's matcher can judge
    # THEN the check answers as the bus would route the recorded examples
    assert await _team_rule_is_legacy(events, pattern) is legacy


async def _team_rule_is_legacy(events: EventBridgeClient, pattern: dict[str, Any]) -> bool:
    """Whether a bus holding one team rule of `pattern` has a legacy subscriber of v3
    `file.validated`."""
    await events.create_event_bus(Name=BUS)
    await put_rule(events, "team", pattern)
    return await LegacySubscribers(EventBridgeRules(events, BUS)).present(FileValidatedV3)


RETURNS = {"data": {"dataset": {"name": ["returns"]}}}  # no recorded example is a returns file


@pytest.mark.usefixtures("test_event_pattern")
@pytest.mark.parametrize(
    ("pattern", "legacy"),
    [
        # v1 for the files of one dataset or bucket: a returns file reaches it in v1 only
        (
            {
                "detail-type": [{"prefix": "sluice.file.validated.v1"}],
                "$or": [{"detail": RETURNS}, {"detail": {"data": {"bucket": ["team-raw"]}}}],
            },
            True,
        ),
        (
            {
                "source": ["sluice.validate"],
                "detail": {
                    "type": [{"prefix": "sluice.file.validated.v1"}],
                    "$or": [RETURNS, {"subject": ["no-such-file"]}],
                },
            },
            True,
        ),
        # v1 for returns files, v3 for orders files: a returns file gets v1 alone
        (
            {
                "$or": [
                    {"detail-type": ["sluice.file.validated.v1"], "detail": RETURNS},
                    {
                        "detail-type": ["sluice.file.validated.v3"],
                        "detail": {"data": {"dataset": {"name": ["orders"]}}},
                    },
                ]
            },
            True,
        ),
        # v1 for every file, v3 for returns files: any other file gets v1 alone
        (
            {
                "source": ["sluice.validate"],
                "$or": [
                    {"detail": RETURNS, "detail-type": ["sluice.file.validated.v3"]},
                    {"detail-type": [{"prefix": "sluice.file.validated.v1"}]},
                ],
            },
            True,
        ),
        # every file gets v3 whatever else it gets: not a legacy subscriber
        (
            {
                "$or": [
                    {"detail-type": ["sluice.file.validated.v1"], "detail": RETURNS},
                    {"detail-type": [{"prefix": "sluice.file.validated"}]},
                ]
            },
            False,
        ),
        # the files of one dataset in every major: not a legacy subscriber
        (
            {
                "detail-type": [{"prefix": "sluice.file.validated"}],
                "$or": [{"detail": RETURNS}, {"detail": {"data": {"bucket": ["team-raw"]}}}],
            },
            False,
        ),
        (
            {
                "$or": [
                    {"detail": RETURNS, "detail-type": [{"prefix": "sluice.file.validated"}]},
                    {"detail-type": ["sluice.file.transformed.v1"]},
                ]
            },
            False,
        ),
    ],
    ids=[
        "v1-for-some-files",
        "or-in-detail",
        "v1-returns-v3-orders",
        "v1-all-v3-returns",
        "v3-for-every-file",
        "every-major-of-some-files",
        "every-major-of-some-files-or-another-fact",
    ],
)
async def test_legacy_data_filters_inside_or_are_judged_per_alternative(
    events: EventBridgeClient, pattern: dict[str, Any], legacy: bool
) -> None:
    # GIVEN a team's rule filtering files by their data in a `$or` (the recorded examples are
    # orders files of sluice-raw)
    # THEN it is a legacy subscriber exactly when some file would reach it in an older major
    # without the newest
    assert await _team_rule_is_legacy(events, pattern) is legacy


@pytest.mark.usefixtures("test_event_pattern")
async def test_pattern_test_answers_for_an_example_event(events: EventBridgeClient) -> None:
    rules = EventBridgeRules(events, BUS)
    arn = "arn:aws:events:us-east-1:123456789012:rule/sluice-bus/team"
    event = example_event(FileValidatedV1, arn)
    assert await rules.matches(json.dumps({"detail-type": ["sluice.file.validated.v1"]}), event)
    assert not await rules.matches(json.dumps({"account": ["999999999999"]}), event)
    with pytest.raises(AwsServiceError, match="InvalidEventPatternException"):
        await rules.matches('{"detail-type": "not a list"}', event)
