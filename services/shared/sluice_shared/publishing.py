"""One SQS batch's facts share PutEvents requests.

The records of a standard-queue batch run concurrently (`sluice_shared.sqs`), and each ends by
publishing the fact it produced. Sent one by one, a batch of ten small files makes ten PutEvents
requests of one or two entries each, where one request takes ten entries. A `PublishRound` is
opened for the batch (`BatchProcessor.process`); while it is open, a record's
`EventBridgePublisher.publish` waits in the round instead of sending, and the round sends every
waiting record's entries together:

- as soon as every running record is waiting (the last one to arrive sends for all, so the batch
  is not held up), or a record finished without publishing left only waiting ones;
- as soon as ten entries wait (one full request);
- at the latest `SLUICE_PUBLISH_WAIT_MS` (default 250 ms) after the first record began to wait,
  so a record whose siblings are slower is held for at most that.

Each record still learns its own outcome: the sender attributes every entry's result to the record
it came from, so a permanent refusal or an exhausted retry budget fails only the records whose
entries it hit (and SQS redelivers or parks exactly those). What a record publishes is unchanged:
the same envelopes, after the same ledger writes; only the requests are shared. Records that run
one at a time (FIFO queues, `SLUICE_RECORD_CONCURRENCY=1`) and calls outside a batch (the batch
path's tasks) open no round and send at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence

    # One record's entries: (envelope id, PutEvents entry) pairs, all of them sent or failed.
    Group = Sequence[tuple[str, dict[str, Any]]]
    # Sends groups together; returns each group's error (None: every entry accepted).
    GroupSender = Callable[[Sequence[Group]], Awaitable[list[BaseException | None]]]

MAX_ENTRIES_PER_REQUEST = 10  # PutEvents limit: a round this full is sent at once
DEFAULT_WAIT_MS = 250
WAIT_ENV = "SLUICE_PUBLISH_WAIT_MS"

_CURRENT: ContextVar[PublishRound | None] = ContextVar("sluice_publish_round", default=None)


def wait_ms_from_env(env: Mapping[str, str] | None = None) -> int:
    """`SLUICE_PUBLISH_WAIT_MS` (default 250; 0 sends every record's facts at once, unshared).

    Raises ValueError for a value that is not a whole number >= 0."""
    from sluice_shared.settings import int_from_env

    return int_from_env(os.environ if env is None else env, WAIT_ENV, DEFAULT_WAIT_MS, minimum=0)


def current_round() -> PublishRound | None:
    """The round the calling record belongs to (None outside a concurrent batch)."""
    return _CURRENT.get()


@contextlib.contextmanager
def publish_round(wait_ms: int) -> Iterator[PublishRound | None]:
    """Open a round for the records started inside (they inherit it as tasks of this context).

    `wait_ms` 0 opens none: every record then sends its own facts."""
    if wait_ms <= 0:
        yield None
        return
    round_ = PublishRound(wait_s=wait_ms / 1000)
    token = _CURRENT.set(round_)
    try:
        yield round_
    finally:
        _CURRENT.reset(token)


@dataclass(slots=True)
class _Waiter:
    send: GroupSender
    group: Group
    done: asyncio.Future[None]


@dataclass(slots=True)
class PublishRound:
    """The facts of one batch's running records, sent in shared requests (module docstring)."""

    wait_s: float
    running: int = 0
    _waiting: list[_Waiter] = field(default_factory=list)
    _timer: asyncio.TimerHandle | None = None
    _check_pending: bool = False
    _sends: set[asyncio.Task[None]] = field(default_factory=set)

    def started(self) -> None:
        """A record began to run (holds its slot)."""
        self.running += 1

    def finished(self) -> None:
        """A record ended, published or not: those still waiting may be all that run now."""
        self.running -= 1
        self._send_if_due()

    async def publish(self, send: GroupSender, group: Group) -> None:
        """Wait until the round sends `group` with the others; raise what its entries met."""
        waiter = _Waiter(send, group, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        self._send_if_due()  # on the loop's next turn: the waiter is still here now
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.wait_s, self._send_now)
        try:
            await waiter.done
        except asyncio.CancelledError:
            # Cancelled before its send began: never sent, so nothing of it goes out later.
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            raise

    def _send_if_due(self) -> None:
        # Checked on the loop's next turn, not now: records created with this one (the tasks
        # of one batch start in order) take their first step first, and so count as running.
        if not self._check_pending:
            self._check_pending = True
            asyncio.get_running_loop().call_soon(self._check)

    def _check(self) -> None:
        self._check_pending = False
        if not self._waiting:
            return
        entries = sum(len(w.group) for w in self._waiting)
        if len(self._waiting) >= self.running or entries >= MAX_ENTRIES_PER_REQUEST:
            self._send_now()

    def _send_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters, self._waiting = self._waiting, []
        if not waiters:
            return
        task = asyncio.get_running_loop().create_task(_send(waiters))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)


async def _send(waiters: list[_Waiter]) -> None:
    # Groups of one sender (one bus) go in one call; a round rarely sees two senders.
    by_sender: dict[GroupSender, list[_Waiter]] = {}
    for waiter in waiters:
        # Bound methods of one publisher are equal (not identical): one sender.
        by_sender.setdefault(waiter.send, []).append(waiter)
    for same in by_sender.values():
        try:
            errors = await same[0].send([w.group for w in same])
        except Exception as exc:  # the sender itself broke: every record of it learns so
            errors = [exc] * len(same)
        for waiter, error in zip(same, errors, strict=True):
            if waiter.done.done():  # its record was cancelled meanwhile
                continue
            if error is None:
                waiter.done.set_result(None)
            else:
                waiter.done.set_exception(error)
