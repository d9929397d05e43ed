"""The function runner against real worker processes running tiny fixture handlers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from sluice.local.runner import FunctionConfig, FunctionNotFound, FunctionRunner, Worker

FIXTURES = Path(__file__).parent / "fixtures"


def _config(handler: str, **overrides: object) -> FunctionConfig:
    values: dict[str, object] = {
        "name": f"fx-{handler.replace('_', '-')}",
        "handler": f"handlers.{handler}",
        "code_dir": FIXTURES,
        "timeout_s": 5.0,
        "memory_mb": 256,
        "env": (("FIXTURE_VAR", "from-template"),),
    }
    values.update(overrides)
    return FunctionConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[FunctionRunner]:
    runner = FunctionRunner(tmp_path, "http://127.0.0.1:1")
    yield runner
    await runner.close()


async def test_invoke_warm_worker_is_reused_and_reports_init_once(runner: FunctionRunner) -> None:
    # GIVEN a registered function
    await runner.register(_config("echo"))
    # WHEN it is invoked twice
    first = await runner.invoke("fx-echo", b'{"n": 1}')
    second = await runner.invoke("arn:aws:lambda:us-east-1:123456789012:function:fx-echo", b"{}")
    # THEN the same process served both, only the first was a cold start
    one, two = first.json(), second.json()
    assert first.function_error is None
    assert one["event"] == {"n": 1}
    assert one["pid"] == two["pid"]
    assert one["loaded_at"] == two["loaded_at"]
    assert first.init_ms is not None
    assert first.init_ms > 0
    assert second.init_ms is None
    assert runner.stats()["fx-echo"]["cold_starts"] == 1


async def test_recycle_retires_idle_and_busy_workers_so_the_next_invocation_is_cold(
    runner: FunctionRunner,
) -> None:
    # GIVEN a function with two warm workers, one of them busy in a slow invocation
    await runner.register(_config("sleepy", max_workers=2))
    assert await runner.prewarm("fx-sleepy", 2) == 2
    busy = asyncio.create_task(runner.invoke("fx-sleepy", b'{"seconds": 1}'))
    await asyncio.sleep(0.3)
    assert runner.stats()["fx-sleepy"]["busy"] == 1
    # WHEN the runner recycles its workers
    stopped = await runner.recycle()
    # THEN the idle worker stopped at once, the busy one finished its invocation
    assert stopped == 1
    slow = await busy
    assert slow.json() == "slept"
    assert runner.stats()["fx-sleepy"]["warm"] == 0
    # AND the next invocation starts a new worker (a cold start), which stays warm after it
    after = await runner.invoke("fx-sleepy", b'{"seconds": 0}')
    assert after.init_ms is not None
    assert runner.stats()["fx-sleepy"]["cold_starts"] == 3
    again = await runner.invoke("fx-sleepy", b'{"seconds": 0}')
    assert again.init_ms is None


async def test_prewarm_starts_workers_up_to_the_limit_and_invoke_uses_them(
    runner: FunctionRunner,
) -> None:
    # GIVEN a function limited to 2 workers, pre-warmed for 3
    await runner.register(_config("echo", max_workers=2))
    started = await runner.prewarm("fx-echo", 3)
    stats = runner.stats()["fx-echo"]
    # THEN 2 workers are warm and nothing was invoked yet
    assert started == 2
    assert (stats["warm"], stats["prewarmed"], stats["invocations"]) == (2, 2, 0)
    # WHEN it is invoked
    result = await runner.invoke("fx-echo", b"{}")
    # THEN a pre-warmed worker served it (no new process) and its init is reported once
    assert result.function_error is None
    assert result.init_ms is not None
    assert runner.stats()["fx-echo"]["cold_starts"] == 2
    # AND pre-warming again starts nothing: the function already has its workers
    assert await runner.prewarm("fx-echo", 2) == 0


async def test_prewarm_worker_with_init_error_is_kept_and_fails_invocations(
    runner: FunctionRunner,
) -> None:
    await runner.register(_config("missing_handler_attribute_does_not_exist"))
    # An import error is an init *result* (reported at invoke), not a dead process: Lambda
    # keeps such an environment too and fails each invocation with the init error.
    assert await runner.prewarm("fx-missing-handler-attribute-does-not-exist", 1) == 1
    result = await runner.invoke("fx-missing-handler-attribute-does-not-exist", b"{}")
    assert result.function_error == "Unhandled"


async def test_invoke_context_and_environment_match_lambda(runner: FunctionRunner) -> None:
    await runner.register(_config("echo", timeout_s=5.0, memory_mb=300))
    body = (await runner.invoke("fx-echo", b"{}")).json()
    assert body["function_name"] == "fx-echo"
    assert body["memory"] == 300
    assert 0 < body["remaining_ms"] <= 5000
    assert body["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:fx-echo"
    assert body["log_group"] == "/aws/lambda/fx-echo"
    assert body["endpoint"] == "http://127.0.0.1:1"
    assert body["custom"] == "from-template"


async def test_invoke_writes_start_end_report_lines(runner: FunctionRunner, tmp_path: Path) -> None:
    await runner.register(_config("echo"))
    result = await runner.invoke("fx-echo", b"{}")
    text = (tmp_path / "logs" / "fx-echo.log").read_text()
    assert f"START RequestId: {result.request_id} Version: $LATEST" in text
    assert f"END RequestId: {result.request_id}" in text
    report = next(line for line in text.splitlines() if line.startswith("REPORT"))
    assert "Billed Duration:" in report
    assert "Memory Size: 256 MB" in report
    assert "Max Memory Used:" in report
    assert "Init Duration:" in report
    assert "echo called for fx-echo" in text
    assert "echo called for fx-echo" in result.log_tail
    assert result.billed_ms >= int(result.duration_ms)


async def test_invoke_handler_raises_returns_unhandled_error(runner: FunctionRunner) -> None:
    await runner.register(_config("boom"))
    result = await runner.invoke("fx-boom", b"{}")
    assert result.function_error == "Unhandled"
    body = result.json()
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "handler exploded"
    assert "Traceback" in result.log_tail


async def test_invoke_past_timeout_kills_worker_and_reports_timedout(
    runner: FunctionRunner,
) -> None:
    # GIVEN a 2 s timeout and a handler that sleeps a minute (no machine is slow enough to
    # make either side of that comparison come out the other way)
    await runner.register(_config("sleepy", timeout_s=2.0))
    result = await runner.invoke("fx-sleepy", b'{"seconds": 60}')
    # THEN the invocation fails like Lambda's and the next one gets a fresh worker
    assert result.function_error == "Unhandled"
    assert result.json()["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in result.json()["errorMessage"]
    assert result.duration_ms == 2000
    quick = await runner.invoke("fx-sleepy", b'{"seconds": 0}')
    assert quick.json() == "slept"
    assert quick.init_ms is not None


async def test_invoke_over_memory_size_reports_out_of_memory_at_the_limit(
    runner: FunctionRunner,
) -> None:
    # GIVEN a 128 MB function that allocates 300 MB
    await runner.register(_config("hog", memory_mb=128))
    # WHEN it is invoked
    result = await runner.invoke("fx-hog", b'{"mb": 300}')
    # THEN it is killed, and Max Memory Used is the limit, as Lambda reports it (not the RSS the
    # watch happened to see on its first poll past the limit)
    assert result.function_error == "Unhandled"
    assert result.json()["errorType"] == "Runtime.OutOfMemory"
    assert result.max_memory_mb == 128
    assert "Memory Size: 128 MB\tMax Memory Used: 128 MB" in result.log_tail
    assert "Error Type: Runtime.OutOfMemory" in result.log_tail


async def test_invoke_under_memory_size_succeeds_and_reports_its_peak(
    runner: FunctionRunner,
) -> None:
    await runner.register(_config("hog", memory_mb=512))
    result = await runner.invoke("fx-hog", b'{"mb": 50}')
    assert result.function_error is None
    assert result.json() == 50
    # The peak includes the 50 MB the handler held (plus the interpreter) and stays in bounds.
    assert 50 < result.max_memory_mb < 512


async def test_invoke_worker_exits_reports_exit_error(runner: FunctionRunner) -> None:
    await runner.register(_config("exits"))
    result = await runner.invoke("fx-exits", b"{}")
    assert result.json()["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in result.json()["errorMessage"]


async def test_invoke_unserializable_result_reports_marshal_error(runner: FunctionRunner) -> None:
    await runner.register(_config("unserializable"))
    result = await runner.invoke("fx-unserializable", b"{}")
    assert result.json()["errorType"] == "Runtime.MarshalError"


async def test_invoke_missing_module_reports_import_error(runner: FunctionRunner) -> None:
    await runner.register(FunctionConfig("fx-missing", "nowhere.handler", FIXTURES))
    result = await runner.invoke("fx-missing", b"{}")
    assert result.json()["errorType"] == "Runtime.ImportModuleError"
    # as Lambda reports it: no frames of the runtime or of the import machinery
    assert result.json()["stackTrace"] == []


async def test_function_imports_what_its_layer_ships_not_the_whole_venv(
    runner: FunctionRunner,
) -> None:
    # GIVEN a function of the templates' runtime and architecture, on this venv (which also
    # holds the CLI's, tests' and benchmarks' packages: moto, numpy, ...)
    await runner.register(_config("imports", runtime="python3.12", architecture="arm64"))
    names = ["yaml", "pyarrow", "moto", "numpy"]

    result = await runner.invoke("fx-imports", json.dumps({"names": names}).encode())

    # THEN the layer's packages import; the others fail as on Lambda, and pyarrow runs without
    # numpy as it does deployed (the layer has none)
    found = result.json()
    assert found["yaml"] is True
    assert found["pyarrow"] is True
    assert found["moto"] == "No module named 'moto'"
    assert found["numpy"] == "No module named 'numpy'"
    assert found["find_spec"] == {"yaml": True, "pyarrow": True, "moto": False, "numpy": False}
    assert found["numpy_loaded"] is False


async def test_invoke_missing_handler_attribute_reports_handler_not_found(
    runner: FunctionRunner,
) -> None:
    await runner.register(_config("not_there"))
    result = await runner.invoke("fx-not-there", b"{}")
    assert result.json()["errorType"] == "Runtime.HandlerNotFound"


async def test_invoke_unknown_function_raises_not_found(runner: FunctionRunner) -> None:
    with pytest.raises(FunctionNotFound, match="Function not found"):
        await runner.invoke("nope", b"{}")


async def test_log_tail_is_base64_of_at_most_4k(runner: FunctionRunner) -> None:
    await runner.register(_config("echo"))
    result = await runner.invoke("fx-echo", json.dumps({"x": "y" * 10000}).encode())
    import base64

    assert len(base64.b64decode(result.log_tail_b64)) <= 4096


async def test_memory_watch_of_a_reaped_worker_keeps_waiting_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker whose process has already exited and been reaped (a handler calling
    # os._exit before the invocation's memory watch starts)
    worker = Worker(_config("exits"), tmp_path / "w.log", {})
    worker.proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await worker.proc.wait()
    looked_up = asyncio.Event()
    real_process = psutil.Process

    def process(pid: int) -> psutil.Process:
        looked_up.set()
        return real_process(pid)

    monkeypatch.setattr(psutil, "Process", process)
    # WHEN the memory watch has looked the process up (and failed to find it)
    watch = asyncio.ensure_future(worker._watch_memory())
    await asyncio.wait_for(looked_up.wait(), 60)
    for _ in range(10):
        await asyncio.sleep(0)
    done = watch.done()
    watch.cancel()
    # THEN it neither returned nor raised (an error here was reported as Sandbox.Timedout
    # before the reply's EOF could report Runtime.ExitError)
    assert not done
