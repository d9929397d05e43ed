"""The workers' time source, and the one rule that keeps written times in order when clocks
disagree.

Every execution environment reads its own host's clock, and hosts disagree (NTP keeps them
within milliseconds, a bad host can be off by minutes; S3 and EventBridge stamp times with
theirs). Every time a worker writes goes through `now()` (`sluice_shared.ports.utc_now`
delegates here), so a test can give each worker a clock of its own by patching this function.

A time a worker writes after something it has read must not precede it: `not_before(now(),
earlier...)`. The ledger uses it for each transition (one microsecond after the step before, so
a file's history in time order is its history in version order) and output for a file's
completion time (never before the raw object's creation or the file's last step, so no
end-to-end latency is negative). See docs/guarantees.md, "Clock skew".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# The ledger's time resolution (`sluice_shared.aws.dynamodb.iso` writes microseconds).
TICK = timedelta(microseconds=1)


def now() -> datetime:
    """This worker's clock: the current time, timezone-aware UTC."""
    return datetime.now(UTC)


def not_before(moment: datetime, *earliest: datetime) -> datetime:
    """`moment`, or the latest of `earliest` when that is later (all timezone-aware)."""
    return max((moment, *earliest))
