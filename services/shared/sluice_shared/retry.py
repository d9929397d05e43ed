"""The retry policy for AWS calls: only `TransientError`, exponential backoff with full jitter,
always bounded by attempts *and* elapsed time.

Retries live here rather than in botocore (clients are built with few botocore attempts) so every
call site has the same, testable policy and the decision "is this retryable?" is made once, by the
error tree (`sluice_shared.aws.errors.translate`).

Fault tests patch `SLEEP` (an async callable taking seconds) to run without waiting.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from sluice_shared.errors import TransientError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping


class WarningLogger(Protocol):
    """Anything with a logging-style `warning` (stdlib and Powertools loggers)."""

    def warning(self, msg: object, *args: object, extra: Mapping[str, object] | None = ...) -> None:
        """Log `msg` at WARNING."""


T = TypeVar("T")

SLEEP: Callable[[float], Awaitable[None]] = asyncio.sleep

DEFAULT_ATTEMPTS = 5
DEFAULT_INITIAL_DELAY = 0.2  # seconds; the first wait is uniform in [0, 0.2]
DEFAULT_MAX_DELAY = 5.0  # seconds; cap of a single wait
DEFAULT_MAX_ELAPSED = 30.0  # seconds; total budget including the calls themselves


async def _sleep(seconds: float) -> None:
    # Looked up at call time, so monkeypatching `retry.SLEEP` reaches policies built earlier.
    await SLEEP(seconds)


def aws_retry(
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    initial_delay: float = DEFAULT_INITIAL_DELAY,
    max_delay: float = DEFAULT_MAX_DELAY,
    max_elapsed: float = DEFAULT_MAX_ELAPSED,
    logger: WarningLogger | None = None,
) -> AsyncRetrying:
    """Build the retry policy for one AWS operation.

    Args:
        attempts: total tries including the first (>= 1).
        initial_delay: multiplier of the exponential window; wait n is uniform in
            `[0, min(max_delay, initial_delay * 2**(n-1))]` ("full jitter").
        max_delay: cap on a single wait, seconds.
        max_elapsed: stop retrying once this many seconds have passed since the first try.
        logger: optional; each retry is logged at WARNING with the error.

    Returns:
        A tenacity `AsyncRetrying`; use as `await aws_retry()(fn, *args)` or
        `async for attempt in aws_retry(): with attempt: ...`. Only `TransientError` (and its
        subclass `ThrottledError`) is retried; after the last attempt the last error is re-raised
        unchanged (`reraise=True`), never wrapped in `tenacity.RetryError`.

    Raises:
        ValueError: when `attempts < 1`.
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")

    def _log(state: RetryCallState) -> None:
        if logger is None or state.outcome is None:
            return
        logger.warning(
            "aws call retried",
            extra={
                "attempt": state.attempt_number,
                "error": repr(state.outcome.exception()),
                "next_wait_s": round(state.upcoming_sleep, 3),
            },
        )

    return AsyncRetrying(
        retry=retry_if_exception_type(TransientError),
        wait=wait_random_exponential(multiplier=initial_delay, max=max_delay),
        stop=stop_after_attempt(attempts) | stop_after_delay(max_elapsed),
        sleep=_sleep,
        reraise=True,
        before_sleep=_log,
    )


async def with_retry(
    fn: Callable[[], Awaitable[T]], policy: Callable[[], AsyncRetrying] = aws_retry
) -> T:
    """Await `fn()` under a fresh `policy()` and return its result (typed wrapper for tenacity).

    Raises the last error once the policy stops, or at once for a non-transient error.
    """
    return cast("T", await policy()(fn))
