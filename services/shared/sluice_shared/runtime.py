"""One event loop and one set of dependencies per execution environment.

A Lambda execution environment serves many invocations one at a time. aioboto3 clients belong
to the loop that created them, and `asyncio.run` per invocation makes a new loop each time,
orphaning the clients (and paying for new TLS connections). `Runtime` keeps one
`asyncio.Runner` for the life of the process and opens the dependencies lazily, once, inside it.

```python
runtime = Runtime(lambda: open_aws_deps(settings), dlq_url=settings.dlq_url, logger=logger)

def lambda_handler(event, context):
    return runtime.process_sqs_batch(event, handle_one, accepted={FileIngestedV1.TYPE})
```
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from contracts.registry import parse_eventbridge_event
from sluice_shared.observability import count_file, telemetry
from sluice_shared.publishing import wait_ms_from_env
from sluice_shared.sqs import (
    BatchProcessor,
    Concurrency,
    EventParser,
    Outcome,
    RecordHandler,
    RecordResult,
    TimeGuard,
    min_remaining_ms_from_env,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping

    from aws_lambda_powertools import Logger, Metrics

    from contracts.envelope import Envelope
    from sluice_shared.ports import QueueParker

T = TypeVar("T")


class SupportsParking(Protocol):
    """Dependencies that can park poison messages (`AwsDeps` and every service's Deps)."""

    @property
    def parker(self) -> QueueParker: ...


DepsT = TypeVar("DepsT", bound=SupportsParking)


def parse_with_registry(event: Mapping[str, Any]) -> Envelope[Any]:
    """Parse an EventBridge event with the default contract registry (the default parser).

    Raises the `contracts.errors.ContractError` subclasses of `parse_eventbridge_event`.
    """
    return parse_eventbridge_event(event)


class Runtime(Generic[DepsT]):
    """Owns the event loop and the dependencies of one execution environment.

    Args:
        open_deps: returns an async context manager yielding the dependencies; entered once, on
            first use, inside the runtime's loop, and exited by `close()`.
        dlq_url: the DLQ that poison SQS records are parked in (None: report them as failures).
        logger: Powertools logger (default: the `sluice` service's).
        parse: EventBridge event -> envelope (default: the contract registry).
        min_remaining_ms: below this many ms left in an invocation, no further record starts
            (default: `SLUICE_MIN_REMAINING_MS`, see `sluice_shared.sqs`).
    """

    def __init__(
        self,
        open_deps: Callable[[], AbstractAsyncContextManager[DepsT]],
        *,
        dlq_url: str | None = None,
        logger: Logger | None = None,
        parse: EventParser = parse_with_registry,
        metrics: Metrics | None = None,
        concurrency: Concurrency | None = None,
        min_remaining_ms: int | None = None,
    ) -> None:
        self._open_deps = open_deps
        self._min_remaining_ms = (
            min_remaining_ms if min_remaining_ms is not None else min_remaining_ms_from_env()
        )
        self._concurrency = concurrency if concurrency is not None else Concurrency.from_env()
        self._publish_wait_ms = wait_ms_from_env()
        self._metrics = metrics
        self._dlq_url = dlq_url
        self._logger = logger if logger is not None else telemetry("sluice").logger
        self._parse = parse
        self._runner: asyncio.Runner | None = None
        self._stack: AsyncExitStack | None = None
        self._deps: DepsT | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The runtime's event loop (created on first use)."""
        return self._get_runner().get_loop()

    def _get_runner(self) -> asyncio.Runner:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` to completion on the runtime's loop and return its result.

        Raises whatever the coroutine raises; RuntimeError when called from inside a running loop.
        """
        return self._get_runner().run(coro)

    async def deps(self) -> DepsT:
        """The dependencies, opened on the first call (from inside `run`) and kept open.

        Raises whatever opening raises; the next call tries again.
        """
        if self._deps is None:
            stack = AsyncExitStack()
            try:
                deps = await stack.enter_async_context(self._open_deps())
            except BaseException:
                await stack.aclose()
                raise
            self._stack, self._deps = stack, deps
        return self._deps

    def run_with_deps(self, fn: Callable[[DepsT], Awaitable[T]]) -> T:
        """Run `fn(deps)` on the runtime's loop (non-SQS handlers, e.g. Step Functions tasks)."""

        async def call() -> T:
            return await fn(await self.deps())

        return self.run(call())

    def process_sqs_batch(
        self,
        event: Mapping[str, Any],
        handle_one: RecordHandler[DepsT],
        *,
        accepted: Collection[str],
        context: object | None = None,
    ) -> dict[str, list[dict[str, str]]]:
        """Process an SQS batch of EventBridge events; return the partial batch response.

        Args:
            event: the Lambda event (`{"Records": [...]}`).
            handle_one: called with each record's envelope and the dependencies.
            accepted: contract types this consumer understands; any other is parked.
            context: the Lambda context; its `get_remaining_time_in_millis` stops the batch
                starting records near the timeout (None: no limit).

        Returns:
            `{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}` (see `sluice_shared.sqs`
            for the outcome of each kind of error).

        Raises:
            Whatever opening the dependencies raises, and MalformedBatchError for an event that
            is not an SQS batch: the whole batch then fails and is redelivered.
        """

        async def batch() -> dict[str, list[dict[str, str]]]:
            deps = await self.deps()
            processor = BatchProcessor(
                parse=self._parse,
                parker=deps.parker,
                dlq_url=self._dlq_url,
                logger=self._logger,
                on_result=self._count,
                concurrency=self._concurrency,
                time_guard=TimeGuard(
                    getattr(context, "get_remaining_time_in_millis", None), self._min_remaining_ms
                ),
                publish_wait_ms=self._publish_wait_ms,
            )
            return await processor.process(event, handle_one, deps, accepted=accepted)

        return self.run(batch())

    def _count(self, result: RecordResult) -> None:
        # Poison and retried records are counted here, once, wherever they failed: parsing the
        # contract, claiming the step or inside the domain.
        if self._metrics is None:
            return
        if result.outcome is Outcome.PARKED:
            count_file(self._metrics, "poison")
        elif result.outcome is Outcome.FAILED:
            count_file(self._metrics, "retried")

    def close(self) -> None:
        """Close the dependencies and the loop (tests and the local runner; Lambda never does)."""
        if self._runner is None:
            return
        try:
            if self._stack is not None:
                self._runner.run(self._stack.aclose())
        finally:
            self._stack, self._deps = None, None
            self._runner.close()
            self._runner = None
