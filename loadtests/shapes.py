"""Load shapes: steady, ramp and spike, each bounded by users, spawn rate and duration.

`make_shape("ramp", users=10, spawn_rate=2, duration_s=60)` returns a Locust `LoadTestShape`
subclass; `loadtests.run` passes it to Locust, and the locustfile exposes one when
`SLUICE_LOADTEST_SHAPE` is set (Locust's CLI then uses it instead of `-u/-r/-t`).

- steady: `users` from the start (spawned at `spawn_rate`) until `duration_s`.
- ramp: from 1 user up to `users` linearly over the first half, held for the second half.
- spike: `users // 3` (at least 1) throughout, `users` during the middle fifth of the run.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from locust import LoadTestShape

SHAPES = ("steady", "ramp", "spike")


def users_at(shape: str, elapsed_s: float, users: int, duration_s: float) -> int | None:
    """How many users `shape` wants `elapsed_s` into the run; None once the run is over.

    Raises:
        ValueError: unknown shape.
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    if elapsed_s >= duration_s:
        return None
    users = max(1, users)
    if shape == "steady":
        return users
    if shape == "ramp":
        half = duration_s / 2
        if elapsed_s >= half:
            return users
        return max(1, min(users, 1 + int((users - 1) * elapsed_s / half)))
    base = max(1, users // 3)
    spike_from, spike_to = duration_s * 0.4, duration_s * 0.6
    return users if spike_from <= elapsed_s < spike_to else base


def spawn_rate_at(shape: str, wanted: int, spawn_rate: float) -> float:
    """The spawn rate to use: a spike arrives at once (all its users within a second)."""
    return max(spawn_rate, float(wanted)) if shape == "spike" else spawn_rate


def make_shape(
    shape: str, *, users: int, spawn_rate: float, duration_s: float
) -> type[LoadTestShape]:
    """A concrete Locust `LoadTestShape` class for `shape` with these bounds.

    Locust is imported here, not at module level: importing it monkey-patches the process
    (gevent), which only a Locust run wants.

    Raises:
        ValueError: unknown shape, or non-positive users/spawn rate/duration.
    """
    from locust import LoadTestShape

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    if users < 1 or spawn_rate <= 0 or duration_s <= 0:
        raise ValueError("users, spawn rate and duration must be positive")

    def tick(self: Any) -> tuple[int, float] | None:
        wanted = users_at(shape, float(self.get_run_time()), users, duration_s)
        if wanted is None:
            return None
        return wanted, spawn_rate_at(shape, wanted, spawn_rate)

    made: type[LoadTestShape] = type(
        f"{shape.capitalize()}Shape",
        (LoadTestShape,),
        {"abstract": False, "tick": tick, "__doc__": f"{shape}: {users} users, {duration_s} s"},
    )
    return made


def shape_from_env(env: dict[str, str] | None = None) -> type[LoadTestShape] | None:
    """The shape named by `SLUICE_LOADTEST_SHAPE` (bounds from `SLUICE_LOADTEST_USERS`,
    `_SPAWN_RATE`, `_DURATION`), or None when unset.

    Raises:
        ValueError: unknown shape or bad bounds.
    """
    source = dict(os.environ) if env is None else env
    name = source.get("SLUICE_LOADTEST_SHAPE")
    if not name:
        return None
    return make_shape(
        name,
        users=int(source.get("SLUICE_LOADTEST_USERS", "4")),
        spawn_rate=float(source.get("SLUICE_LOADTEST_SPAWN_RATE", "2")),
        duration_s=float(source.get("SLUICE_LOADTEST_DURATION", "30")),
    )
