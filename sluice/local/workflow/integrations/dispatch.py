"""Runs one Task attempt: finds its integration, records its history events, applies
TimeoutSeconds and, for `.waitForTaskToken`, waits for the callback under HeartbeatSeconds.

The interpreter calls `task_context` before rendering Parameters (so `$$.Task.Token` resolves)
and `run` for the attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from sluice.local.workflow.errors import StatesError
from sluice.local.workflow.integrations import REGISTRY, Registry, UnsupportedResource
from sluice.local.workflow.integrations.base import Pattern, TaskCall, TaskServices
from sluice.local.workflow.integrations.events import TaskEvents

if TYPE_CHECKING:
    from sluice.local.workflow.models import ExecutionRecord

Limiter = Callable[[Coroutine[Any, Any, Any], float | None], Awaitable[Any]]
"""Awaits a coroutine under a time limit (raising `States.Timeout`); the interpreter's."""


class TaskDispatcher:
    """Dispatches Task states to their integrations."""

    def __init__(self, services: TaskServices, region: str, registry: Registry = REGISTRY):
        self.services = services
        self.region = region
        self.registry = registry

    def task_context(
        self, resource: str, ctx: dict[str, Any], execution: ExecutionRecord
    ) -> dict[str, Any]:
        """The `$$` object of one attempt: with `Task.Token` for a `.waitForTaskToken` resource
        (a fresh token per attempt, as AWS issues one per attempt)."""
        if not resource.endswith(Pattern.CALLBACK.value):
            return ctx
        return {**ctx, "Task": {"Token": self.services.tokens.issue(execution.arn)}}

    async def run(
        self,
        state_name: str,
        resource: str,
        params: Any,
        execution: ExecutionRecord,
        ctx: dict[str, Any],
        *,
        time_limit: float | None,
        heartbeat: float | None,
        limit: Limiter,
    ) -> Any:
        """Run one attempt and return the Task's result.

        A callback task is bounded by TimeoutSeconds and fails with `States.HeartbeatTimeout`
        when HeartbeatSeconds pass without a heartbeat; any other task never heartbeats, so
        HeartbeatSeconds bounds it like a second timeout.

        Raises:
            StatesError: the task's failure (also recorded in the history).
        """
        token = ctx.get("Task", {}).get("Token")
        try:
            integration, parsed = self.registry.lookup(resource)
        except UnsupportedResource as exc:
            if token is not None:
                self.services.tokens.close(token)
            raise StatesError("States.Runtime", str(exc)) from exc
        callback = parsed.pattern is Pattern.CALLBACK
        limits = [t for t in (time_limit, None if callback else heartbeat) if t is not None]
        bound = min(limits) if limits else None
        events = TaskEvents(execution, self.services.clock, resource, self.region)
        events.scheduled(params, bound, heartbeat if callback else None)
        call = TaskCall(state_name, parsed, params, execution, events, token, heartbeat)

        async def attempt() -> Any:
            if token is None:
                return await integration.run(call, self.services)
            try:
                events.submitted(await integration.run(call, self.services))
                return await self.services.tokens.wait(token, self.services.clock, heartbeat)
            finally:
                self.services.tokens.close(token)

        try:
            result = await limit(attempt(), bound)
        except StatesError as err:
            events.failed(err)
            raise
        events.succeeded(result)
        return result
