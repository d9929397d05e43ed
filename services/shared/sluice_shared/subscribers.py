"""Whether a fact still has legacy subscribers on the Sluice bus, so that its producer never
leaves them without a small file's fact.

A v3 `file.validated` / `file.transformed` fact may carry a small file's rows inline; v1 and v2
cannot say that, so such a fact goes out in v3 alone (`contracts.events.published_majors`). A
team whose rule still matches an older major would silently stop receiving every small file.
So a producer inlines only when no enabled rule of the bus would deliver an older major of the
fact without also delivering the newest (a *legacy subscriber*); otherwise it stages the rows
and publishes every major, exactly as with `SLUICE_INLINE_MAX_BYTES=0` (`inline_limit`).

How a rule is judged (`LegacySubscribers.present`), the bus's own rules being the only source:

- `ListRules` on the bus (every page); disabled rules and schedules are left out.
- Filters on `detail.data` are left out of the judgement: they select files (a dataset, a
  bucket), not majors, and no example stands for every file. A pattern with a `$or` (at the top
  level or in `detail`, however nested) is judged as its alternatives, one per choice of a
  branch in each `$or` (`alternatives`, at most `MAX_ALTERNATIVES`: more counts as a legacy
  subscriber), each put to `TestEventPattern`: the rule is a legacy subscriber when one
  alternative delivers an older major without the newest and no alternative free of data
  filters delivers the newest (only such an alternative reaches every file). Leaving the data
  filters out can only find more legacy subscribers, never fewer (a file's data being the same
  in each major).
- `detail-type` a plain list of strings, nothing else that could tell majors apart: decided
  locally by membership (no request). No `detail-type` either: the rule sees every major of the
  fact alike (a catch-all), not a legacy subscriber.
- Anything else (`prefix`, `anything-but`, `$or`, a filter on the envelope in `detail`):
  EventBridge decides with `TestEventPattern` against a recorded example of each major (the
  contract's `examples/`, read once per process in a worker thread, wrapped as the event a rule
  sees, in the rule's account and region), at most `TEST_CONCURRENCY` requests at a time, older
  majors first and the newest only when an older one matched; the first legacy subscriber found
  ends the check.

The answer is kept `ttl_s` per fact (`SLUICE_LEGACY_SUBSCRIBERS_TTL_S`, default 60 s) and
refreshed lazily by the first caller after it expires (concurrent callers share that refresh).
Fail safe: when the rules cannot be read or judged (AccessDenied, throttling, a timeout after
`REFRESH_TIMEOUT_S`), the fact counts as having legacy subscribers until the next refresh (every
major is published: it costs staging requests, never a fact), with one warning per refresh.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.events import live_majors

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from contracts.envelope import ContractModel
    from sluice_shared.ports import BusRule, BusRules
    from sluice_shared.retry import WarningLogger

DEFAULT_TTL_S = 60  # SluiceSettings.legacy_subscribers_ttl_s
TEST_CONCURRENCY = 4  # TestEventPattern requests in flight at once (its quota is per account)
REFRESH_TIMEOUT_S = 10.0  # a refresh that takes longer counts as failed (fail safe)
MAX_ALTERNATIVES = 16  # of one rule's `$or`s (`alternatives`); more counts as legacy (fail safe)
_EXAMPLE_NAMESPACE = uuid.UUID("0e9b7d5c-3f41-4a52-8c6e-2d7a1b9f4e30")
# Pattern keys that can tell two majors of one fact apart; every other field of the event
# (source, account, region, time, resources) is the same for each major of one fact.
_MAJOR_KEYS = ("detail-type", "detail", "$or")


@dataclass(frozen=True, slots=True)
class _Answer:
    legacy: bool
    until: float


class LegacySubscribers:
    """The answer, per fact, to "does an enabled rule of the bus deliver an older major of it
    without the newest?" (module docstring).

    Args:
        rules: the bus's rules (`sluice_shared.aws.rules.EventBridgeRules`).
        ttl_s: how long an answer is kept (seconds).
        logger: where the fail-safe warning and a change of answer are logged.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        rules: BusRules,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        logger: WarningLogger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, not {ttl_s}")
        self.rules = rules
        self.ttl_s = ttl_s
        self.logger: WarningLogger = logger or logging.getLogger(__name__)
        self.clock = clock
        self._answers: dict[str, _Answer] = {}
        self._refreshing: dict[str, asyncio.Lock] = {}

    async def present(self, fact: type[ContractModel]) -> bool:
        """Whether `fact` (any major of it) has a legacy subscriber on the bus. Never raises
        for an AWS failure: that answers True (fail safe) until the next refresh."""
        majors = live_majors(fact)
        if len(majors) < 2:
            return False
        key = majors[-1].TYPE
        answer = self._answers.get(key)
        if answer is not None and self.clock() < answer.until:
            return answer.legacy
        lock = self._refreshing.setdefault(key, asyncio.Lock())
        async with lock:
            answer = self._answers.get(key)  # another caller may have refreshed meanwhile
            if answer is not None and self.clock() < answer.until:
                return answer.legacy
            legacy = await self._refresh(majors, before=answer)
            self._answers[key] = _Answer(legacy, self.clock() + self.ttl_s)
            return legacy

    async def _refresh(
        self, majors: Sequence[type[ContractModel]], *, before: _Answer | None
    ) -> bool:
        fact = majors[-1].TYPE
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT_S):
                found = await self._legacy_rule(majors)
        except Exception as exc:  # every failure: stage and publish every major (fail safe)
            self.logger.warning(
                "legacy subscribers unknown: staging every file and publishing every major",
                extra={"fact": fact, "error": repr(exc), "retry_in_s": self.ttl_s},
            )
            return True
        legacy = found is not None
        if legacy and (before is None or not before.legacy):
            self.logger.warning(
                "older-major subscriber: staging every file and publishing every major",
                extra={"fact": fact, "rule": found},
            )
        elif not legacy and before is not None and before.legacy:
            self.logger.warning(
                "no older-major subscriber: small files travel inline again", extra={"fact": fact}
            )
        return legacy

    async def _legacy_rule(self, majors: Sequence[type[ContractModel]]) -> str | None:
        """The name of a rule that is a legacy subscriber of the fact, or None."""
        older = [m.TYPE for m in majors[:-1]]
        newest = majors[-1].TYPE
        to_test: list[tuple[BusRule, dict[str, Any]]] = []
        several: list[tuple[BusRule, list[Alternative]]] = []
        for rule in await self.rules.list_rules():
            if not rule.enabled or not rule.event_pattern:
                continue
            ways = alternatives(json.loads(rule.event_pattern))
            if len(ways) > 1:
                several.append((rule, ways))
                continue
            pattern = ways[0].pattern
            local = local_verdict(pattern, older, newest)
            if local is True:
                return rule.name
            if local is None:
                to_test.append((rule, pattern))
        if not to_test and not several:
            return None
        # The recorded examples are files, read once per process: in a worker thread, never on
        # the event loop (`example_event` then finds them in `recorded_example`'s cache).
        await asyncio.to_thread(_read_examples, majors)
        limit = asyncio.Semaphore(TEST_CONCURRENCY)

        async def matches(rule: BusRule, pattern: str, model: type[ContractModel]) -> bool:
            async with limit:
                return await self.rules.matches(pattern, example_event(model, rule.arn))

        async def legacy(rule: BusRule, pattern: dict[str, Any]) -> str | None:
            text = json.dumps(pattern, separators=(",", ":"))
            for model in majors[:-1]:
                if await matches(rule, text, model):
                    return None if await matches(rule, text, majors[-1]) else rule.name
            return None

        async def legacy_of_several(rule: BusRule, ways: list[Alternative]) -> str | None:
            texts = [(json.dumps(w.pattern, separators=(",", ":")), w.picks_files) for w in ways]
            for text, picks_files in texts:
                if not picks_files and await matches(rule, text, majors[-1]):
                    return None  # every file the rule sees gets the newest major
            for text, picks_files in texts:
                for model in majors[:-1]:
                    if await matches(rule, text, model):
                        if picks_files and await matches(rule, text, majors[-1]):
                            break  # the files this alternative picks get the newest too
                        return rule.name
            return None

        tasks = [asyncio.create_task(legacy(rule, pattern)) for rule, pattern in to_test]
        tasks += [asyncio.create_task(legacy_of_several(rule, ways)) for rule, ways in several]
        try:
            for done in asyncio.as_completed(tasks):
                name = await done
                if name is not None:
                    return name
            return None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class Alternative:
    """One way a rule's pattern matches (a branch chosen in each of its `$or`s), without its
    filters on `detail.data`; `picks_files`: it had some, so it may reach only some files."""

    pattern: dict[str, Any]
    picks_files: bool


def alternatives(pattern: Any) -> list[Alternative]:
    """The ways `pattern` matches, without their filters on `detail.data` (they select files,
    not majors): one per choice of a branch in each `$or` at the top level or in `detail`,
    however nested (a branch that filtered only the data adds nothing to its way). A pattern
    without `$or` is one alternative.

    Raises ValueError for a pattern that is not a JSON object, a `$or` branch filtering a field
    its pattern also filters beside the `$or`, or more than MAX_ALTERNATIVES ways."""
    if not isinstance(pattern, dict):
        raise ValueError(f"an event pattern is a JSON object, not {type(pattern).__name__}")
    found: list[Alternative] = []
    for way, picks_files in _ways(pattern, in_detail=False):
        alternative = Alternative(way, picks_files)
        if alternative not in found:
            found.append(alternative)
    return found


def _ways(level: Mapping[str, Any], *, in_detail: bool) -> list[tuple[dict[str, Any], bool]]:
    """One level of a pattern (the event, or its `detail`) as (pattern, picks files) ways."""
    ways: list[tuple[dict[str, Any], bool]] = [({}, False)]
    for key, value in level.items():
        if in_detail and key == "data":
            ways = [(way, True) for way, _ in ways]
            continue
        if key == "detail" and not in_detail and isinstance(value, dict):
            options = [
                ({"detail": detail} if detail else {}, picks)
                for detail, picks in _ways(value, in_detail=True)
            ]
        elif key == "$or" and isinstance(value, list) and value:
            if not all(isinstance(branch, dict) for branch in value):
                raise ValueError("each branch of a `$or` is a JSON object")
            options = [way for branch in value for way in _ways(branch, in_detail=in_detail)]
        else:
            options = [({key: value}, False)]
        ways = [(_both(way, option), a or b) for way, a in ways for option, b in options]
        if len(ways) > MAX_ALTERNATIVES:
            raise ValueError(f"an event pattern with over {MAX_ALTERNATIVES} `$or` alternatives")
    return ways


def _both(way: Mapping[str, Any], option: Mapping[str, Any]) -> dict[str, Any]:
    """The pattern filtering what `way` and `option` both filter."""
    merged = dict(way)
    for key, value in option.items():
        if key not in merged:
            merged[key] = value
        elif key == "detail" and isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = _both(merged[key], value)
        else:
            raise ValueError(f"an event pattern filters {key!r} both in a `$or` and beside it")
    return merged


def local_verdict(pattern: Mapping[str, Any], older: Sequence[str], newest: str) -> bool | None:
    """Whether `pattern` is a legacy subscriber (delivers one of the `older` detail-types and
    not `newest`), when that can be told without EventBridge; None when it cannot."""
    if any(key in pattern for key in _MAJOR_KEYS if key != "detail-type"):
        return None
    types = pattern.get("detail-type")
    if types is None:
        return False  # a catch-all: every major of the fact alike
    if isinstance(types, list) and all(isinstance(t, str) for t in types):
        return newest not in types and any(t in types for t in older)
    return None


@functools.cache
def recorded_example(model: type[ContractModel]) -> dict[str, Any]:
    """The first recorded example envelope of `model` (its contract folder's `examples/`).

    Raises LookupError when the contract has none."""
    module = importlib.import_module(model.__module__)
    folder = Path(module.__file__ or "").parent / "examples"
    for path in sorted(folder.glob("*.json")):
        loaded = json.loads(path.read_text("utf-8"))
        if isinstance(loaded, dict) and loaded.get("type") == model.TYPE:
            return loaded
    raise LookupError(f"{model.TYPE} has no recorded example in {folder}")


def _read_examples(majors: Sequence[type[ContractModel]]) -> None:
    for model in majors:
        recorded_example(model)


def example_event(model: type[ContractModel], rule_arn: str) -> dict[str, Any]:
    """A recorded example of `model` as the EventBridge event a rule `rule_arn` would see (in
    the rule's account and region)."""
    envelope = recorded_example(model)
    parts = rule_arn.split(":")
    region, account = (parts[3], parts[4]) if len(parts) > 5 else ("us-east-1", "000000000000")
    return {
        "version": "0",
        "id": str(uuid.uuid5(_EXAMPLE_NAMESPACE, model.TYPE)),
        "detail-type": model.TYPE,
        "source": envelope["source"],
        "account": account,
        "time": envelope["time"],
        "region": region,
        "resources": [],
        "detail": envelope,
    }


async def inline_limit(
    subscribers: LegacySubscribers | None, fact: type[ContractModel], max_bytes: int
) -> int:
    """The most Arrow IPC a file's rows may carry inline in `fact`: `max_bytes`, or 0 when the
    fact has a legacy subscriber (then the rows are staged and every major is published, the
    path of `SLUICE_INLINE_MAX_BYTES=0`). No request when `max_bytes` is already 0 or there is
    no bus to ask (`subscribers` None)."""
    if max_bytes <= 0 or subscribers is None:
        return max_bytes
    return 0 if await subscribers.present(fact) else max_bytes
