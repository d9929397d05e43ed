"""`sluice_shared.subscribers`: a rule of the bus that still delivers an older major of a fact
without the newest makes its producer stage every file (and publish every major); the answer is
the bus's own rules, kept for a TTL, and unknown counts as "yes" (fail safe)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from contracts.errors import ThrottledError
from contracts.events import FileTransformedV3, FileValidatedV1, FileValidatedV3
from sluice_shared.aws.errors import AwsConfigurationError
from sluice_shared.subscribers import (
    MAX_ALTERNATIVES,
    TEST_CONCURRENCY,
    Alternative,
    LegacySubscribers,
    alternatives,
    example_event,
    inline_limit,
    recorded_example,
)
from tests.fakes import InMemoryBusRules, ManualClock

V1, V2, V3 = (f"sluice.file.validated.v{n}" for n in (1, 2, 3))


def matcher(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """A stand-in for EventBridge's matcher of the detail-type filters these tests use."""
    wanted = pattern.get("detail-type")
    if wanted is None:
        return True
    got = event["detail-type"]
    for item in wanted:
        if isinstance(item, str) and item == got:
            return True
        if isinstance(item, dict) and "prefix" in item and got.startswith(item["prefix"]):
            return True
        if isinstance(item, dict) and "anything-but" in item:
            return got not in (
                item["anything-but"]
                if isinstance(item["anything-but"], list)
                else [item["anything-but"]]
            )
    return False


@pytest.fixture
def rules() -> InMemoryBusRules:
    bus = InMemoryBusRules(match=matcher)
    # Sluice's own consumers: each matches the newest major of what it reads
    bus.add("transform", {"source": ["sluice.validate"], "detail-type": [V3]})
    bus.add(
        "output", {"source": ["sluice.transform"], "detail-type": ["sluice.file.transformed.v3"]}
    )
    return bus


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def check(rules: InMemoryBusRules, clock: ManualClock, **kwargs: Any) -> LegacySubscribers:
    return LegacySubscribers(rules, ttl_s=60, clock=clock, **kwargs)


async def test_legacy_plain_rule_naming_an_older_major_is_a_legacy_subscriber_without_a_request(
    rules: InMemoryBusRules, clock: ManualClock
) -> None:
    # GIVEN a team's rule written before v3: it names file.validated.v1
    rules.add("team-v1", {"source": ["sluice.validate"], "detail-type": [V1]})
    # WHEN validate asks
    legacy = await check(rules, clock).present(FileValidatedV3)
    # THEN the fact has a legacy subscriber, decided from the rule's list alone
    assert legacy is True
    assert rules.asked == []
    assert rules.listings == 1


async def test_legacy_plain_rule_naming_only_the_newest_major_is_not_legacy(
    rules: InMemoryBusRules, clock: ManualClock
) -> None:
    rules.add("team-v3", {"detail-type": [V3]})
    rules.add("team-all", {"detail-type": [V1, V2, V3]})  # old and new: receives v3 anyway
    assert await check(rules, clock).present(FileValidatedV3) is False
    assert rules.asked == []


async def test_legacy_catch_all_rule_without_detail_type_is_not_legacy(
    rules: InMemoryBusRules, clock: ManualClock
) -> None:
    # GIVEN an audit rule on every Sluice fact, no detail-type at all
    rules.add("audit", {"source": [{"prefix": "sluice."}]})
    # THEN it sees every major alike: not a legacy subscriber, and nothing to ask EventBridge
    assert await check(rules, clock).present(FileValidatedV3) is False
    assert rules.asked == []


async def test_legacy_disabled_rule_and_schedule_are_not_subscribers(
    rules: InMemoryBusRules, clock: ManualClock
) -> None:
    rules.add("team-v1-off", {"detail-type": [V1]}, enabled=False)
    rules.add("nightly", None)
    assert await check(rules, clock).present(FileValidatedV3) is False


async def test_legacy_filters_on_the_data_do_not_hide_an_older_major_subscriber(
    rules: InMemoryBusRules, clock: ManualClock
) -> None:
    # GIVEN a v2 rule for one dataset only (no recorded example is of that dataset)
    rules.add(
        "team-v1-orders", {"detail-type": [V2], "detail": {"data": {"dataset": {"name": ["x"]}}}}
    )
    # THEN it is still a legacy subscriber, decided locally
    assert await check(rules, clock).present(FileValidatedV3) is True
    assert rules.asked == []


RETURNS = {"data": {"dataset": {"name": ["returns"]}}}  # a filter on the files, not the majors
SOURCE = {"source": ["sluice.validate"]}


@pytest.mark.parametrize(
    ("pattern", "ways"),
    [
        # a branch that filtered only the data adds nothing to its way, which picks files
        (
            {"$or": [{"detail": RETURNS}, {"detail-type": [V1]}], **SOURCE},
            [(SOURCE, True), ({"detail-type": [V1], **SOURCE}, False)],
        ),
        (
            {"$or": [{"detail-type": [V1], "detail": RETURNS}, {"detail-type": [{"prefix": "x"}]}]},
            [({"detail-type": [V1]}, True), ({"detail-type": [{"prefix": "x"}]}, False)],
        ),
        # `$or` in `detail`, and in a branch of a top-level `$or`
        (
            {"detail-type": [V1], "detail": {"$or": [RETURNS, {"source": ["team.x"]}]}},
            [
                ({"detail-type": [V1]}, True),
                ({"detail-type": [V1], "detail": {"source": ["team.x"]}}, False),
            ],
        ),
        (
            {
                "$or": [
                    {"detail": {"type": [V2], "$or": [RETURNS, {"subject": ["s"]}]}},
                    {"detail-type": [V1]},
                ]
            },
            [
                ({"detail": {"type": [V2]}}, True),
                ({"detail": {"type": [V2], "subject": ["s"]}}, False),
                ({"detail-type": [V1]}, False),
            ],
        ),
        # a branch's `detail` joins the pattern's own `detail`
        (
            {"detail": {"type": [V1]}, "$or": [{"detail": {"subject": ["s"]}}, SOURCE]},
            [
                ({"detail": {"type": [V1], "subject": ["s"]}}, False),
                ({"detail": {"type": [V1]}, **SOURCE}, False),
            ],
        ),
        # no `$or`: one way; ways that end up alike are one
        ({"detail-type": [V1], "detail": RETURNS}, [({"detail-type": [V1]}, True)]),
        (
            {"detail-type": [V1], "$or": [{"detail": RETURNS}, {"detail": {"data": {"b": [1]}}}]},
            [({"detail-type": [V1]}, True)],
        ),
    ],
    ids=["data-only", "branches", "in-detail", "or-in-or", "detail-joined", "no-or", "alike"],
)
def test_legacy_or_patterns_are_judged_as_their_alternatives_without_data_filters(
    pattern: dict[str, Any], ways: list[tuple[dict[str, Any], bool]]
) -> None:
    assert alternatives(pattern) == [Alternative(way, picks) for way, picks in ways]


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ([{"detail-type": [V1]}], "a JSON object"),
        ({"source": ["a"], "$or": [{"source": ["b"]}, {"id": ["c"]}]}, "'source' both"),
        ({"$or": [{"detail-type": [f"t{n}"]} for n in range(MAX_ALTERNATIVES + 1)]}, "over"),
        ({"$or": [{"detail-type": [V1]}, "v2"]}, "each branch"),
    ],
    ids=["not-an-object", "field-in-and-beside-or", "too-many", "branch-not-an-object"],
)
def test_legacy_pattern_that_cannot_be_split_is_refused(pattern: Any, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        alternatives(pattern)


async def test_legacy_too_many_alternatives_count_as_a_legacy_subscriber(
    rules: InMemoryBusRules, clock: ManualClock
) -> None:
    wide = [{"detail-type": [f"t{n}"]} for n in range(MAX_ALTERNATIVES + 1)]
    rules.add("wide", {"$or": wide})
    assert await check(rules, clock).present(FileValidatedV3) is True


@pytest.mark.parametrize(
    ("pattern", "legacy"),
    [
        ({"detail-type": [{"prefix": "sluice.file.validated"}]}, False),
        ({"detail-type": [{"anything-but": [V3]}]}, True),
        ({"detail-type": [{"prefix": "sluice.file.transformed"}]}, False),
    ],
    ids=["prefix-of-every-major", "anything-but-v3", "another-fact"],
)
async def test_legacy_non_plain_pattern_is_asked_of_eventbridge_with_each_majors_example(
    rules: InMemoryBusRules, clock: ManualClock, pattern: dict[str, Any], legacy: bool
) -> None:
    # GIVEN a team rule whose detail-type is not a plain list
    rules.add("team", pattern)
    # WHEN validate asks
    answer = await check(rules, clock).present(FileValidatedV3)
    # THEN EventBridge's matcher decided with the recorded examples (older majors first)
    assert answer is legacy
    asked = [detail_type for _, detail_type in rules.asked]
    assert asked[0] == V1
    assert set(asked) <= {V1, V2, V3}
    if legacy:
        assert asked[-1] == V3


async def test_legacy_example_event_is_the_recorded_example_in_the_rules_account() -> None:
    event = example_event(FileValidatedV1, "arn:aws:events:eu-west-1:111122223333:rule/sluice/r")
    assert (event["account"], event["region"], event["detail-type"]) == (
        "111122223333",
        "eu-west-1",
        V1,
    )
    assert event["source"] == "sluice.validate"
    assert event["detail"]["type"] == V1
    assert set(event) >= {"id", "time", "resources", "detail"}


@pytest.mark.parametrize(
    "fault",
    [
        AwsConfigurationError("AccessDeniedException: not allowed events:ListRules"),
        ThrottledError("ThrottlingException"),
    ],
    ids=["access-denied", "throttled"],
)
async def test_legacy_unknown_answer_counts_as_a_legacy_subscriber_and_warns_once(
    rules: InMemoryBusRules,
    clock: ManualClock,
    fault: Exception,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN the rules cannot be listed
    rules.faults.append(fault)
    subscribers = check(rules, clock)
    # WHEN validate asks twice within the TTL
    with caplog.at_level(logging.WARNING, logger="sluice_shared.subscribers"):
        first = await subscribers.present(FileValidatedV3)
        second = await subscribers.present(FileValidatedV3)
    # THEN the fact counts as having a legacy subscriber (stage: nothing is lost), with one
    # warning for the refresh, and no new request until the TTL ends
    assert (first, second) == (True, True)
    warned = [r for r in caplog.records if "legacy subscribers unknown" in r.getMessage()]
    assert len(warned) == 1
    assert rules.listings == 0
    # AND the next refresh, which works, answers from the rules again
    clock.now += 61
    assert await subscribers.present(FileValidatedV3) is False
    assert rules.listings == 1


async def test_legacy_failed_pattern_test_counts_as_a_legacy_subscriber(
    rules: InMemoryBusRules, clock: ManualClock
) -> None:
    rules.add("team", {"detail-type": [{"prefix": "sluice.file"}]})

    def refuse(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
        raise ThrottledError("ThrottlingException: TestEventPattern")

    rules.match = refuse
    assert await check(rules, clock).present(FileValidatedV3) is True


async def test_legacy_answer_is_kept_for_the_ttl_then_refreshed(
    rules: InMemoryBusRules, clock: ManualClock
) -> None:
    # GIVEN an answer given once
    subscribers = check(rules, clock)
    assert await subscribers.present(FileValidatedV3) is False
    # WHEN a team adds a v1 rule: within the TTL the kept answer stands, no request
    rules.add("team-v1", {"detail-type": [V1]})
    clock.now += 59
    assert await subscribers.present(FileValidatedV3) is False
    assert rules.listings == 1
    # THEN once the TTL is over the first caller refreshes and sees it
    clock.now += 2
    assert await subscribers.present(FileValidatedV3) is True
    assert rules.listings == 2


async def test_legacy_each_fact_has_its_own_answer(
    rules: InMemoryBusRules, clock: ManualClock
) -> None:
    rules.add("team-v1", {"detail-type": [V1]})
    subscribers = check(rules, clock)
    assert await subscribers.present(FileValidatedV3) is True
    assert await subscribers.present(FileTransformedV3) is False


async def test_legacy_pattern_tests_run_at_most_the_cap_at_once(
    rules: InMemoryBusRules, clock: ManualClock
) -> None:
    # GIVEN many rules with non-plain patterns, none a legacy subscriber
    for n in range(20):
        rules.add(f"team-{n}", {"detail-type": [{"prefix": "sluice.file.validated"}]})
    # WHEN validate asks
    assert await check(rules, clock).present(FileValidatedV3) is False
    # THEN every rule was asked about, never more than the cap at a time
    assert len(rules.asked) >= 20
    assert rules.most_in_flight <= TEST_CONCURRENCY


async def test_legacy_inline_limit_is_zero_only_with_a_legacy_subscriber(
    rules: InMemoryBusRules, clock: ManualClock
) -> None:
    subscribers = check(rules, clock)
    assert await inline_limit(subscribers, FileValidatedV3, 65536) == 65536
    assert await inline_limit(None, FileValidatedV3, 65536) == 65536
    rules.add("team-v1", {"detail-type": [V1]})
    clock.now += 61
    assert await inline_limit(subscribers, FileValidatedV3, 65536) == 0
    # SLUICE_INLINE_MAX_BYTES=0 stages anyway: nothing to ask
    listings = rules.listings
    clock.now += 61
    assert await inline_limit(subscribers, FileValidatedV3, 0) == 0
    assert rules.listings == listings


async def test_legacy_concurrent_callers_share_one_refresh(
    rules: InMemoryBusRules, clock: ManualClock
) -> None:
    # GIVEN a batch's records asking at once, with no answer kept yet
    rules.add("team", {"detail-type": [{"anything-but": [V3]}]})
    subscribers = check(rules, clock)
    # WHEN five ask concurrently
    answers = await asyncio.gather(*(subscribers.present(FileValidatedV3) for _ in range(5)))
    # THEN they all get the one answer of one listing
    assert answers == [True] * 5
    assert rules.listings == 1


async def test_legacy_recorded_examples_are_read_off_the_event_loop(
    rules: InMemoryBusRules, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a rule only EventBridge can judge, and no example read yet in this process
    rules.add("team", {"detail-type": [{"anything-but": [V3]}]})
    recorded_example.cache_clear()
    reads: list[tuple[str, bool]] = []
    read_text = Path.read_text

    def spy(path: Path, *args: Any, **kwargs: Any) -> str:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        reads.append((path.parent.name, on_loop))
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", spy)
    # WHEN validate asks
    assert await check(rules, clock).present(FileValidatedV3) is True
    # THEN the examples' files were read, each in a worker thread, none on the event loop
    examples = [on_loop for folder, on_loop in reads if folder == "examples"]
    assert examples, reads
    assert not any(examples), reads
