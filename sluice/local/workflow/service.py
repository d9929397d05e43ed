"""Thread-safe access to a `WorkflowEngine` that lives on its own event loop.

The local runtime's HTTP endpoint runs in other threads; every call is submitted to the engine's
loop with `run_coroutine_threadsafe`, so engine state is only ever touched by one thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from sluice.local.workflow import api
from sluice.local.workflow.engine import WorkflowEngine

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from sluice.local.workflow.ports import Clock, FunctionInvoker, SdkCaller

T = TypeVar("T")


class ThreadedWorkflowService:
    """A workflow engine running on a private event loop in a daemon thread.

    Use as a context manager, or call `start()` / `close()`.
    """

    def __init__(
        self,
        *,
        invoker: FunctionInvoker | None = None,
        sdk: SdkCaller | None = None,
        clock: Clock | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
    ):
        self._options: dict[str, Any] = {
            "invoker": invoker,
            "sdk": sdk,
            "clock": clock,
            "region": region,
            "account": account,
        }
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sluice-workflow", daemon=True
        )
        self._engine: WorkflowEngine | None = None

    def start(self) -> ThreadedWorkflowService:
        """Start the loop thread and build the engine on it."""
        self._thread.start()

        async def build() -> WorkflowEngine:
            return WorkflowEngine(**self._options)

        self._engine = self.run(build)
        return self

    @property
    def engine(self) -> WorkflowEngine:
        """The engine; only touch it from coroutines submitted through `run`."""
        if self._engine is None:
            raise RuntimeError("service not started")
        return self._engine

    def run(self, factory: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None) -> T:
        """Run `factory()` on the engine loop and wait for its result from this thread."""
        return asyncio.run_coroutine_threadsafe(factory(), self._loop).result(timeout)

    def handle(self, target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The API facade: `AWSStepFunctions.<Action>` + JSON body -> (status, JSON body)."""
        return self.run(lambda: api.handle(self.engine, target, body))

    def close(self) -> None:
        """Cancel running executions, stop the loop and join the thread."""
        if self._thread.is_alive():
            if self._engine is not None:
                self.run(self._engine.close, timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> ThreadedWorkflowService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
