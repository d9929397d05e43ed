"""Task tokens of `.waitForTaskToken` tasks, and the SendTaskSuccess / SendTaskFailure /
SendTaskHeartbeat actions that complete or keep them alive.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token
(the token is `$$.Task.Token`; HeartbeatSeconds without a heartbeat fails the task with
`States.HeartbeatTimeout`; TimeoutSeconds bounds it whatever the heartbeats) and the API pages
of SendTaskSuccess (errors InvalidOutput, InvalidToken, TaskDoesNotExist, TaskTimedOut).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sluice.local.workflow.errors import ApiError, StatesError

if TYPE_CHECKING:
    from sluice.local.workflow.ports import Clock

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{64}$")
_CLOSED_KEPT = 10_000


@dataclass
class _Pending:
    execution_arn: str
    result: asyncio.Future[Any]
    beat: asyncio.Event = field(default_factory=asyncio.Event)


class TaskTokens:
    """Open task tokens of every running callback task (on the engine's loop)."""

    def __init__(self) -> None:
        self._open: dict[str, _Pending] = {}
        self._by_execution: dict[str, set[str]] = {}
        # Tokens whose task ended (succeeded, failed, timed out, stopped): a late callback
        # gets TaskTimedOut, as on AWS, rather than TaskDoesNotExist.
        self._closed: dict[str, None] = {}

    def issue(self, execution_arn: str) -> str:
        """A fresh token for one attempt of a callback task of `execution_arn`."""
        token = secrets.token_urlsafe(48)
        self._open[token] = _Pending(execution_arn, asyncio.get_running_loop().create_future())
        self._by_execution.setdefault(execution_arn, set()).add(token)
        return token

    def is_open(self, token: str) -> bool:
        """True while the token's task is waiting for its callback."""
        return token in self._open

    async def wait(self, token: str, clock: Clock, heartbeat: float | None) -> Any:
        """Wait for SendTaskSuccess (returns its output) or SendTaskFailure (raises its error);
        with `heartbeat`, each heartbeat period without SendTaskHeartbeat fails the task.

        The token is closed when this returns, raises or is cancelled.

        Raises:
            StatesError: the SendTaskFailure error, or `States.HeartbeatTimeout`.
        """
        pending = self._open[token]
        try:
            if heartbeat is None:
                return await pending.result
            while True:
                beat = asyncio.ensure_future(pending.beat.wait())
                timer = asyncio.ensure_future(clock.sleep(heartbeat))
                try:
                    await asyncio.wait(
                        {pending.result, beat, timer}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for waiter in (beat, timer):
                        waiter.cancel()
                    await asyncio.gather(beat, timer, return_exceptions=True)
                if pending.result.done():
                    return pending.result.result()
                if pending.beat.is_set():
                    pending.beat.clear()
                    continue
                raise StatesError(
                    "States.HeartbeatTimeout",
                    f"no heartbeat within HeartbeatSeconds ({heartbeat:g})",
                )
        finally:
            self.close(token)

    def open_for(self, execution_arn: str) -> int:
        """How many tokens of `execution_arn` are still open."""
        return len(self._by_execution.get(execution_arn, ()))

    def close_execution(self, execution_arn: str) -> None:
        """Close every token of an execution that ended (one issued for a task whose
        Parameters then failed never reached a wait)."""
        for token in list(self._by_execution.get(execution_arn, ())):
            self.close(token)

    def close(self, token: str) -> None:
        """Forget an open token (its task ended); later callbacks get TaskTimedOut."""
        pending = self._open.pop(token, None)
        if pending is None:
            return
        tokens = self._by_execution.get(pending.execution_arn)
        if tokens is not None:
            tokens.discard(token)
            if not tokens:
                del self._by_execution[pending.execution_arn]
        if not pending.result.done():
            pending.result.cancel()
        elif not pending.result.cancelled():
            pending.result.exception()  # retrieved: a failure nobody awaited is not an error
        self._closed[token] = None
        if len(self._closed) > _CLOSED_KEPT:
            del self._closed[next(iter(self._closed))]

    def _pending(self, token: Any) -> _Pending:
        if not isinstance(token, str) or not _TOKEN.match(token):
            raise ApiError("InvalidToken", "Invalid Token: 'Invalid token'")
        pending = self._open.get(token)
        if pending is None or pending.result.done():
            if token in self._closed or pending is not None:
                raise ApiError("TaskTimedOut", "Task Timed Out: 'Provided task does not exist'")
            raise ApiError("TaskDoesNotExist", "Task Does Not Exist: 'Provided task token'")
        return pending

    def succeed(self, token: Any, output: Any) -> None:
        """SendTaskSuccess: `output` must be JSON text.

        Raises:
            ApiError: InvalidToken, TaskDoesNotExist, TaskTimedOut, InvalidOutput.
        """
        pending = self._pending(token)
        if not isinstance(output, str):
            raise ApiError("InvalidOutput", "Invalid Output: 'output must be a JSON string'")
        try:
            value = json.loads(output)
        except ValueError as exc:
            raise ApiError("InvalidOutput", f"Invalid Output: '{exc}'") from exc
        pending.result.set_result(value)

    def fail(self, token: Any, error: str | None, cause: str | None) -> None:
        """SendTaskFailure: the task fails with `error` and `cause` (Retry/Catch apply).

        Raises:
            ApiError: InvalidToken, TaskDoesNotExist, TaskTimedOut.
        """
        pending = self._pending(token)
        pending.result.set_exception(StatesError(error or "", cause or ""))

    def heartbeat(self, token: Any) -> None:
        """SendTaskHeartbeat: restart the task's heartbeat period.

        Raises:
            ApiError: InvalidToken, TaskDoesNotExist, TaskTimedOut.
        """
        self._pending(token).beat.set()
