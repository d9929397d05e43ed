"""EventBridge schedule expressions, fired locally (moto never fires them).

`rate(value unit)` and the six-field `cron(minutes hours day-of-month month day-of-week year)`
with `*`, `?`, lists, ranges, steps and month/day names. The `L`, `W` and `#` day modifiers are
rejected when the rule is provisioned rather than fired on the wrong day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
_DAYS = {d: i + 1 for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}


class ScheduleError(ValueError):
    """A schedule expression the local runtime cannot honour."""


@dataclass(frozen=True)
class Rate:
    """`rate(...)`: fires every `period`, the first time one period after it was set up."""

    period: timedelta

    def next_after(self, moment: datetime) -> datetime:
        """The next fire time strictly after `moment`."""
        return moment + self.period


@dataclass(frozen=True)
class Cron:
    """`cron(...)` fields as sets of allowed values (UTC); None = any."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None
    months: frozenset[int]
    days_of_week: frozenset[int] | None
    years: frozenset[int] | None

    def _day_matches(self, moment: datetime) -> bool:
        if self.days_of_month is not None:
            return moment.day in self.days_of_month
        if self.days_of_week is not None:
            # AWS numbers days 1 (SUN) .. 7 (SAT); isoweekday() is 1 (MON) .. 7 (SUN).
            return (moment.isoweekday() % 7) + 1 in self.days_of_week
        return True

    def next_after(self, moment: datetime) -> datetime:
        """The next minute strictly after `moment` that matches every field.

        Raises:
            ScheduleError: nothing matches within ten years (e.g. `cron(0 0 31 2 ? *)`).
        """
        t = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = moment + timedelta(days=3660)
        while t <= limit:
            if self.years is not None and t.year not in self.years:
                t = datetime(t.year + 1, 1, 1, tzinfo=t.tzinfo)
            elif t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        raise ScheduleError("cron expression never fires within ten years")


Schedule = Rate | Cron


def parse_schedule(expression: str) -> Schedule:
    """Parse an EventBridge `ScheduleExpression`.

    Raises:
        ScheduleError: malformed, or uses a modifier (`L`, `W`, `#`) not emulated locally.
    """
    text = expression.strip()
    rate = _RATE.match(text)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        if value < 1:
            raise ScheduleError(f"{expression}: rate must be at least 1")
        if (value == 1) != (not rate.group(2).endswith("s")):
            raise ScheduleError(f"{expression}: use the singular unit for 1, plural otherwise")
        return Rate(timedelta(**{f"{unit}s": value}))
    cron = _CRON.match(text)
    if not cron:
        raise ScheduleError(f"{expression}: not a rate(...) or cron(...) expression")
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ScheduleError(f"{expression}: cron needs 6 fields, got {len(fields)}")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleError(f"{expression}: exactly one of day-of-month/day-of-week must be ?")
    return Cron(
        minutes=_field(minute, 0, 59, {}, expression),
        hours=_field(hour, 0, 23, {}, expression),
        days_of_month=None if dom == "?" else _field(dom, 1, 31, {}, expression),
        months=_field(month, 1, 12, _MONTHS, expression),
        days_of_week=None if dow == "?" else _field(dow, 1, 7, _DAYS, expression),
        years=None if year in ("*", "?") else _field(year, 1970, 2199, {}, expression),
    )


def _field(text: str, low: int, high: int, names: dict[str, int], expr: str) -> frozenset[int]:
    if any(mark in text for mark in ("L", "W", "#")) and not any(n in text.upper() for n in names):
        raise ScheduleError(f"{expr}: the L, W and # modifiers are not emulated locally")
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names, expr), _value(b, names, expr)
        else:
            start = _value(part, names, expr)
            end = high if step != 1 else start
        if not (low <= start <= high and low <= end <= high):
            raise ScheduleError(f"{expr}: {part} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(token: str, names: dict[str, int], expr: str) -> int:
    upper = token.upper()
    if upper in names:
        return names[upper]
    if not token.isdigit():
        raise ScheduleError(f"{expr}: {token!r} is not a number or a known name")
    return int(token)


def scheduled_event(
    rule_arn: str, account_id: str, region: str, when: datetime, event_id: str
) -> dict[str, object]:
    """The event EventBridge sends to a scheduled rule's targets."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }
