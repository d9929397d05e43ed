"""read_ahead: the next item is produced on another thread, in order, errors where they occur;
cpu_limit caps the CPUs a step uses."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import TYPE_CHECKING

import pytest

from sluice_shared.datapath import ahead
from sluice_shared.datapath.ahead import read_ahead

if TYPE_CHECKING:
    from collections.abc import Iterator


def _items(log: list[tuple[int, str]], n: int, fail_at: int | None = None) -> Iterator[int]:
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"item {i} is broken")
        log.append((i, threading.current_thread().name))
        yield i


def test_read_ahead_two_cpus_produces_next_item_while_caller_holds_current(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ahead, "usable_cpus", lambda: 2)
    log: list[tuple[int, str]] = []
    seen = []
    for item in read_ahead(_items(log, 5)):
        if item == 1:
            # while the caller holds item 1, item 2 is being (or has been) produced
            for _ in range(200):
                if len(log) >= 3:
                    break
                threading.Event().wait(0.01)
            assert [i for i, _ in log] == [0, 1, 2]
        seen.append(item)
    assert seen == [0, 1, 2, 3, 4]
    assert {name for _, name in log} != {threading.current_thread().name}
    assert all(name.startswith("sluice-read") for _, name in log)


def test_read_ahead_one_cpu_runs_on_the_callers_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ahead, "usable_cpus", lambda: 1)
    log: list[tuple[int, str]] = []
    assert list(read_ahead(_items(log, 3))) == [0, 1, 2]
    assert {name for _, name in log} == {threading.current_thread().name}


def test_read_ahead_error_is_raised_where_that_item_would_come(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ahead, "usable_cpus", lambda: 2)
    items = read_ahead(_items([], 5, fail_at=2))
    assert [next(items), next(items)] == [0, 1]
    with pytest.raises(ValueError, match="item 2 is broken"):
        next(items)


def test_read_ahead_stopped_early_closes_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ahead, "usable_cpus", lambda: 2)
    closed = []

    def source() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            closed.append(True)

    for item in read_ahead(source()):
        if item == 3:
            break
    assert closed == [True]


def test_map_ahead_two_threads_computes_off_the_callers_thread_in_order() -> None:
    names: set[str] = set()

    def square(i: int) -> int:
        names.add(threading.current_thread().name)
        threading.Event().wait(0.001 * (5 - i % 5))  # later items may finish first
        return i * i

    assert list(ahead.map_ahead(square, range(12), 2, name="sluice-test")) == [
        i * i for i in range(12)
    ]
    assert names
    assert all(name.startswith("sluice-test") for name in names)


def test_map_ahead_one_thread_runs_on_the_callers_thread() -> None:
    names: set[str] = set()

    def ident(i: int) -> int:
        names.add(threading.current_thread().name)
        return i

    assert list(ahead.map_ahead(ident, range(3), 1)) == [0, 1, 2]
    assert names == {threading.current_thread().name}


def test_map_ahead_error_is_raised_where_that_result_would_come() -> None:
    def check(i: int) -> int:
        if i == 3:
            raise ValueError("item 3 is broken")
        return i

    results = ahead.map_ahead(check, range(6), 2)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="item 3 is broken"):
        next(results)


def test_cpu_limit_caps_usable_cpus_in_the_block_and_its_to_thread_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a process that may run on four CPUs
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})

    async def step() -> tuple[int, int]:
        with ahead.cpu_limit(1):
            return ahead.usable_cpus(), await asyncio.to_thread(ahead.usable_cpus)

    # WHEN a step runs under cpu_limit(1), THEN it and the thread it hands work to see one CPU
    assert asyncio.run(step()) == (1, 1)
    # AND the limit ends with the block; a limit above the affinity changes nothing
    assert ahead.usable_cpus() == 4
    with ahead.cpu_limit(8):
        assert ahead.usable_cpus() == 4
    with pytest.raises(ValueError, match="at least 1"), ahead.cpu_limit(0):
        pass


@pytest.mark.parametrize(
    ("memory_mb", "cpus"),
    [("128", 1), ("1024", 1), ("1769", 1), ("3008", 1), ("3538", 2), ("10240", 4)],
)
def test_a_functions_memory_size_caps_the_cpus_the_data_path_uses(
    monkeypatch: pytest.MonkeyPatch, memory_mb: str, cpus: int
) -> None:
    # GIVEN a function process that sees four cores (Lambda shows two or more at any size)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    # WHEN its memory size buys `cpus` whole vCPUs of CPU time (one per 1,769 MB)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb)
    # THEN the data path runs on that many threads, not on every core it sees
    assert ahead.usable_cpus() == cpus


def test_outside_a_function_the_affinity_alone_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", raising=False)
    assert ahead.usable_cpus() == 2
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "not a number")
    assert ahead.usable_cpus() == 2


def test_background_writer_runs_a_files_jobs_one_at_a_time_other_files_meanwhile() -> None:
    # GIVEN two writer threads, a job of file a that blocks, a second job of a, a job of b
    writer = ahead.BackgroundWriter(threads=2)
    gate = threading.Event()
    log: list[str] = []

    def first_of_a() -> None:
        log.append("a1 start")
        gate.wait(10)
        log.append("a1 end")

    try:
        writer.submit("a", first_of_a)
        writer.submit("a", lambda: log.append("a2"))
        writer.submit("b", lambda: log.append("b1"))
        for _ in range(1000):  # until b's job ran on the other thread
            if "b1" in log:
                break
            threading.Event().wait(0.01)
        # THEN b's job ran while a's first blocked, and a's second waited for it
        assert log == ["a1 start", "b1"]
    finally:
        gate.set()
    writer.finish()
    assert log == ["a1 start", "b1", "a1 end", "a2"]


def test_background_writer_raises_a_jobs_error_on_the_callers_thread_and_skips_the_rest() -> None:
    # GIVEN a writer thread whose first job fails
    writer = ahead.BackgroundWriter(threads=1, depth=4)
    ran: list[str] = []

    def fails() -> None:
        raise OSError("disk full")

    writer.submit("a", fails)
    writer.submit("a", lambda: ran.append("a2"))
    # WHEN the caller finishes
    # THEN the job's own error is raised there, and the jobs queued after it did not run
    with pytest.raises(OSError, match="disk full"):
        writer.finish()
    assert ran == []
