"""Use the second CPU of a function process: produce the next item on a background thread.

A Lambda function has two vCPUs from 1,769 MB. The data path's reads (Arrow IPC decompression,
CSV parsing) and compute kernels release the GIL, so reading the next chunk while the caller
works on the current one runs on the other CPU. On one CPU nothing is gained and the caller's
thread does it all, as before.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar, cast

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

T = TypeVar("T")
_END = object()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container's cpuset narrows)."""
    return len(os.sched_getaffinity(0))


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
