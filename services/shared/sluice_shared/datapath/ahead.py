"""Use the second CPU of a function process: work on the next item on a background thread.

Lambda gives a function CPU in proportion to its memory: the equivalent of one vCPU at 1,769 MB,
two at 3,538 MB (it shows two cores below 3,009 MB, but they share that one vCPU's time). The data
path's reads (Arrow IPC decompression, CSV parsing) and compute kernels release the GIL, so
reading the next chunk, or computing on it, while the caller works on the current one runs on the
other CPU. With one CPU's worth nothing is gained (a second thread would only hold one more chunk
in memory) and the caller's thread does it all.

A caller whose parallelism comes from elsewhere (the batch path runs partitions and buckets in
concurrent functions) caps the CPUs a step uses with `cpu_limit`.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, TypeVar, cast

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

T = TypeVar("T")
R = TypeVar("R")
_END = object()
# A context variable, not a process global: `asyncio.to_thread` carries it to the step's thread,
# and it ends with the `cpu_limit` block (in-process callers and tests share one process).
_CPU_LIMIT: ContextVar[int | None] = ContextVar("sluice_datapath_cpu_limit", default=None)


# Lambda's memory per vCPU of CPU time (Lambda Developer Guide, "Memory and computing power").
LAMBDA_MB_PER_VCPU = 1769


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container's cpuset narrows), at
    most the whole vCPUs a function's memory buys (`function_vcpus`) and the enclosing
    `cpu_limit`."""
    cpus = len(os.sched_getaffinity(0))
    bought = function_vcpus()
    if bought is not None:
        cpus = min(cpus, bought)
    limit = _CPU_LIMIT.get()
    return cpus if limit is None else min(cpus, limit)


def function_vcpus(env: Mapping[str, str] | None = None) -> int | None:
    """Whole vCPUs of CPU time a Lambda function's memory size buys (at least 1), from
    `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (set by Lambda and by the local runner); None outside a
    function or when the variable is not a number."""
    text = (os.environ if env is None else env).get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    try:
        memory_mb = int(text)
    except ValueError:
        return None
    return max(1, memory_mb // LAMBDA_MB_PER_VCPU)


@contextmanager
def cpu_limit(cpus: int) -> Iterator[None]:
    """Within the block (and the threads `asyncio.to_thread` starts from it), the data path uses
    at most `cpus` CPUs: with 1, every step runs on its caller's thread. Raises ValueError when
    `cpus` < 1."""
    if cpus < 1:
        raise ValueError("cpus must be at least 1")
    token = _CPU_LIMIT.set(cpus)
    try:
        yield
    finally:
        _CPU_LIMIT.reset(token)


def read_ahead(items: Iterable[T]) -> Iterator[T]:
    """Yield `items` in order, producing the next one on a background thread while the caller
    holds the current one (so at most one item more is in memory). With one usable CPU, yield
    them as they come. An exception from `items` is raised where that item would be yielded."""
    source = iter(items)
    if usable_cpus() < 2:
        yield from source
        return
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="sluice-read") as pool:
            future = pool.submit(next, source, _END)
            while True:
                item = future.result()
                if item is _END:
                    return
                future = pool.submit(next, source, _END)
                yield cast("T", item)
    finally:
        close = getattr(source, "close", None)
        if close is not None:  # the pool has finished: no other thread is inside `source`
            close()


def map_ahead(
    fn: Callable[[T], R], items: Iterable[T], threads: int, *, name: str = "sluice-map"
) -> Iterator[R]:
    """Yield `fn(item)` for each of `items`, in order, computing up to `threads` of them at once
    on a pool while the caller reads the next item and uses the results (so at most `threads`
    items are in flight). With `threads` = 1 (one usable CPU) everything runs on the caller's
    thread. An exception from `fn` is raised where its result would be yielded."""
    if threads < 2:
        for item in items:
            yield fn(item)
        return
    window: deque[Future[R]] = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix=name) as pool:
        try:
            for item in items:
                window.append(pool.submit(fn, item))
                if len(window) >= threads:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:  # stopped early: drop the work not started
                future.cancel()


class BackgroundWriter:
    """Runs write jobs on background threads: the jobs of one file (`key`) in the order
    submitted, one at a time; jobs of different files at once when there are two threads.
    Submitting waits while `depth` + 1 jobs are in flight (running or waiting), however many
    threads run them, so memory stays flat: a second thread takes one of those, not more. A
    job's exception is raised on the caller's thread by the next `submit` or by `finish`.
    """

    def __init__(
        self, *, threads: int = 1, depth: int = 2, inline: bool = False, name: str = "sluice-writer"
    ) -> None:
        # Inline (small inputs): jobs run on the caller's thread, in the same order; a thread
        # and a queue hop per job cost more than the overlap gains for a few kilobytes.
        self._slots = threading.Semaphore(depth + 1)
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Callable[[], None]]] = {}  # files with jobs in flight
        self._idle = threading.Condition(self._lock)
        self._error: BaseException | None = None
        self._ready: queue.SimpleQueue[str | None] = queue.SimpleQueue()  # files to drain
        self._threads: list[threading.Thread] = []
        if not inline:
            # Started now, not on demand: each is there when a second file has rows to write.
            for n in range(threads):
                thread = threading.Thread(target=self._run, name=f"{name}_{n}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        while (key := self._ready.get()) is not None:
            self._drain(key)

    def submit(self, key: str, job: Callable[[], None]) -> None:
        if self._error is not None:
            raise self._error
        if not self._threads:
            job()
            return
        self._slots.acquire()
        with self._lock:
            waiting = self._queues.get(key)
            if waiting is not None:  # the file's jobs run in order: after the queued ones
                waiting.append(job)
                return
            self._queues[key] = deque([job])
        self._ready.put(key)

    def _drain(self, key: str) -> None:
        """Run the file's queued jobs on this thread until none is left."""
        while True:
            with self._lock:
                job = self._queues[key][0]
            if self._error is None:
                try:
                    job()
                except BaseException as exc:  # re-raised on the caller's thread
                    self._error = exc
            self._slots.release()
            with self._lock:
                waiting = self._queues[key]
                waiting.popleft()
                if not waiting:
                    del self._queues[key]
                    self._idle.notify_all()
                    return

    def finish(self) -> None:
        if self._threads:
            with self._lock:
                self._idle.wait_for(lambda: not self._queues)
            for _ in self._threads:
                self._ready.put(None)
            for thread in self._threads:
                thread.join()
            self._threads.clear()
        if self._error is not None:
            raise self._error
