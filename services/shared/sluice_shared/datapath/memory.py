"""Process-wide memory settings for a function process that runs the data path.

A Lambda execution environment runs one step at a time and is billed, and capped, by its peak
RSS (Lambda's "Max Memory Used"). Measured on the batch steps (2026-11-26, 300 MB orders CSV,
one step in a fresh process, VmHWM over the imports): validating a 128 MiB range raised RSS by
140 MB and deduping a 300 MB bucket by 185 MB while the Arrow pool's live bytes peaked at 22 MB
and 65 MB, and Python objects (tracemalloc) at under 30 MB. The rest was memory the allocators
kept after it was freed: mimalloc (Arrow's default pool) keeps freed pages for reuse, and
glibc's malloc (Python's large buffers) keeps a heap per thread. On top of that, pyarrow
imported pandas (+45 MB) in every worker of the development environment.

`prepare_process` hides pandas from pyarrow, limits glibc to one arena (whose heap serves the
raw blocks' buffers: `heap_block_buffers`) and makes jemalloc, purging after 100 ms, the Arrow
pool (with one arena: `sluice_shared/jemalloc_options.py`, set before pyarrow is imported);
`release_memory` hands back what is left after a step.
Every function that runs the data path applies it when the data path is first imported
(`sluice_shared/datapath/__init__.py`; the real-time stages import it with their first file,
the batch package at import), so the real-time functions run what `bench.datapath` measures;
outside a function process (tests, the CLI, notebooks) nothing is changed unless asked.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.abc
import os
import sys
from functools import cache
from typing import Any

import pyarrow as pa

# The Arrow pool of a function process. Measured per step over the imports (validate a 128 MiB
# range / dedupe a 300 MB bucket, fresh process, before the dedupe change in transform.py):
# mimalloc +140/+185 MB, system +83/+135 MB, jemalloc +85/+135 MB. With one glibc arena and no
# pandas, `bench.datapath --rows 1000000` (1 core, 2 locked runs of best-of-2 each, 2026-11-26
# 01:20 UTC): peak RSS / seconds / validate seconds: system 157-158 MB / 1.98-2.05 / 1.06,
# jemalloc (100 ms decay) 189-199 MB / 2.00-2.10 / 1.12-1.16, mimalloc 214-224 MB / 1.87-1.93
# / 0.95-1.00, pyarrow's defaults (mimalloc, pandas, no arena limit) 227-228 MB / 1.81-1.89.
# But in the batch workers (bench.batch_path, 300 MB, one 300 MB bucket) the system pool's
# run-bucket peaked at 362 MB against jemalloc's 270 MB (run-partition 260 vs 262): jemalloc.
WORKER_POOL = "jemalloc"
# jemalloc's purge delay, when jemalloc is chosen (ARROW_DEFAULT_MEMORY_POOL=jemalloc). 0 (purge
# on every free) cost +20% CPU on dedupe + Parquet write and +75% on validating 128 MiB into 4
# buckets; 30-100 ms kept nearly all of its saving at the CPU of pyarrow's default delay.
JEMALLOC_DECAY_MS = 100
_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
_IN_FUNCTION_ENV = "AWS_LAMBDA_FUNCTION_NAME"
_prepared: list[bool] = []
# glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Python buffers up to this size come from malloc's heap, which reuses their pages, rather than
# from a fresh mapping each (faulted in page by page, and for a bytes method under the GIL):
# validate's raw chunks and blocks (2 MiB each on two cores, 4 MiB on one, plus a record) and
# the copies made from them. glibc's own threshold starts at 128 KiB and rises only to the size
# of a freed mapping, and it trims the heap's top beyond twice that. Validating 2M orders rows
# (168 MB, best of 3, 2026-12-07): page faults per run 70-80k -> 36-52k; 2 cores 1.43 / 1.43 /
# 1.33 -> 1.21 / 1.37 / 1.34 s, 1 core 1.66 / 1.64 / 1.69 -> 1.68 / 1.62 / 1.66 s; peak RSS
# +0-10 MB on 2 cores, none on one. `release_memory` still hands the heap back after a step.
MMAP_THRESHOLD_BYTES = 8 << 20
TRIM_THRESHOLD_BYTES = 16 << 20


@cache
def _glibc() -> Any:
    """The C library when it is glibc (it has `malloc_trim`), else None (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - only glibc has it
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(count: int = 1) -> bool:
    """Let glibc's malloc use at most `count` arenas; return whether it took effect.

    Python's own buffers (the raw blocks, parts of uploads) come from malloc, not from the Arrow
    pool. glibc gives every thread that allocates at the same time as another its own arena, and
    an arena keeps freed memory for reuse: the batch steps run in `asyncio.to_thread` workers
    and Arrow's threads, and a second arena kept ~30 MB more after a validate step. Only
    threads that have not allocated yet are affected, so call it early.
    """
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, count) == 1)


def heap_block_buffers(
    mmap_bytes: int = MMAP_THRESHOLD_BYTES, trim_bytes: int = TRIM_THRESHOLD_BYTES
) -> bool:
    """Serve glibc allocations up to `mmap_bytes` from the heap and trim its top only beyond
    `trim_bytes` free (see `MMAP_THRESHOLD_BYTES`); return whether it took effect."""
    libc = _glibc()
    return bool(
        libc is not None
        and libc.mallopt(_M_MMAP_THRESHOLD, mmap_bytes) == 1
        and libc.mallopt(_M_TRIM_THRESHOLD, trim_bytes) == 1
    )


class _Absent(importlib.abc.MetaPathFinder):
    """Makes one top-level package look uninstalled while pyarrow looks for it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname.split(".")[0] == self.name:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def in_function_process() -> bool:
    """Whether this process is a Lambda execution environment (or the local runner's twin)."""
    return bool(os.environ.get(_IN_FUNCTION_ENV))


def skip_pandas_probe() -> bool:
    """Stop pyarrow from importing pandas in this process; return whether it took effect.

    pyarrow imports pandas on its first conversion of Python values (any `pa.scalar` or
    `pa.array` of a list) when pandas is installed: +45 MB RSS in a process that never uses it.
    The deployed layer has no pandas (deploy/README.md); a development environment has it for
    the benchmarks. pyarrow looks once per process and remembers the answer, so the package is
    hidden for that one look only: `import pandas` still works afterwards, and pyarrow's own
    pandas conversions (`to_pandas`, `Table.from_pandas`) look again and find it. A no-op when
    pandas is already imported.
    """
    if "pandas" in sys.modules:
        return False
    finder = _Absent("pandas")
    sys.meta_path.insert(0, finder)
    try:
        pa.array([None])
    finally:
        sys.meta_path.remove(finder)
    return "pandas" not in sys.modules


def use_worker_pool(backend: str = WORKER_POOL) -> str:
    """Make `backend` ("jemalloc", "system" or "mimalloc") Arrow's default pool; return the
    backend in use.

    An explicit `ARROW_DEFAULT_MEMORY_POOL` wins (it is how an operator overrides this). A
    backend this pyarrow build lacks leaves the default pool. jemalloc, when chosen, purges freed
    pages after `JEMALLOC_DECAY_MS` instead of its default delay.
    """
    chosen = os.environ.get(_POOL_ENV) or backend
    factories = {
        "jemalloc": pa.jemalloc_memory_pool,
        "mimalloc": pa.mimalloc_memory_pool,
        "system": pa.system_memory_pool,
    }
    factory = factories.get(chosen)
    if factory is not None:
        # a backend not compiled into this pyarrow raises: keep the default then
        with contextlib.suppress(NotImplementedError):
            pa.set_memory_pool(factory())
    if pa.default_memory_pool().backend_name == "jemalloc":
        pa.jemalloc_set_decay_ms(JEMALLOC_DECAY_MS)
    return str(pa.default_memory_pool().backend_name)


def prepare_process(*, force: bool = False) -> None:
    """Apply the function-process settings once: no pandas probe, one glibc arena serving the
    raw blocks from its heap, the worker pool. Call it before the first pyarrow conversion of a
    function process (importing `sluice_shared.datapath` does).

    Acts only inside a function process (`AWS_LAMBDA_FUNCTION_NAME` set) unless `force` (the
    benchmarks, to measure what a function runs). Idempotent.
    """
    if _prepared or not (force or in_function_process()):
        return
    _prepared.append(True)
    skip_pandas_probe()
    limit_malloc_arenas()
    heap_block_buffers()
    use_worker_pool()


def release_memory() -> None:
    """Hand the pages the Arrow pool and malloc hold but no longer use back to the OS (after a
    step: a warm function runs the next step in the same process, and its peak adds to what
    the last one left)."""
    pa.default_memory_pool().release_unused()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
