"""Schedule expressions: parsing and next fire times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sluice.local.schedules import Cron, Rate, ScheduleError, parse_schedule, scheduled_event

T0 = datetime(2026, 1, 15, 10, 7, 30, tzinfo=UTC)  # a Thursday


@pytest.mark.parametrize(
    ("expr", "period"),
    [
        ("rate(1 minute)", timedelta(minutes=1)),
        ("rate(5 minutes)", timedelta(minutes=5)),
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(2 days)", timedelta(days=2)),
    ],
)
def test_parse_rate_gives_period(expr: str, period: timedelta) -> None:
    schedule = parse_schedule(expr)
    assert isinstance(schedule, Rate)
    assert schedule.next_after(T0) == T0 + period


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("cron(0 12 * * ? *)", datetime(2026, 1, 15, 12, 0, tzinfo=UTC)),
        ("cron(0/15 * * * ? *)", datetime(2026, 1, 15, 10, 15, tzinfo=UTC)),
        ("cron(0 8 ? * MON-FRI *)", datetime(2026, 1, 16, 8, 0, tzinfo=UTC)),
        ("cron(30 2 1 * ? *)", datetime(2026, 2, 1, 2, 30, tzinfo=UTC)),
        ("cron(0 0 ? * 1 *)", datetime(2026, 1, 18, 0, 0, tzinfo=UTC)),  # 1 = Sunday
        ("cron(0 9 1 JAN ? 2027)", datetime(2027, 1, 1, 9, 0, tzinfo=UTC)),
        ("cron(8 10 * * ? *)", datetime(2026, 1, 15, 10, 8, tzinfo=UTC)),
        ("cron(7 10 * * ? *)", datetime(2026, 1, 16, 10, 7, tzinfo=UTC)),
    ],
)
def test_cron_next_after_matches_aws_semantics(expr: str, expected: datetime) -> None:
    schedule = parse_schedule(expr)
    assert isinstance(schedule, Cron)
    assert schedule.next_after(T0) == expected


@pytest.mark.parametrize(
    "expr",
    [
        "rate(0 minutes)",
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(5 weeks)",
        "cron(0 12 * * *)",
        "cron(0 12 * * * *)",
        "cron(0 12 ? * ? *)",
        "cron(0 12 L * ? *)",
        "cron(0 12 ? * 6#3 *)",
        "cron(61 12 * * ? *)",
        "every day",
    ],
)
def test_parse_schedule_rejects_unsupported_or_malformed(expr: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(expr)


def test_cron_that_never_fires_raises() -> None:
    schedule = parse_schedule("cron(0 0 31 2 ? *)")
    with pytest.raises(ScheduleError, match="never fires"):
        schedule.next_after(T0)


def test_scheduled_event_has_eventbridge_shape() -> None:
    event = scheduled_event("arn:aws:events:us-east-1:1:rule/r", "1", "us-east-1", T0, "id-1")
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == ["arn:aws:events:us-east-1:1:rule/r"]
    assert event["time"] == "2026-01-15T10:07:30Z"
    assert event["detail"] == {}
