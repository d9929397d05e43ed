"""The local function runner: Lambda execution environments as worker processes.

Each function gets a pool of workers (`sluice.local.worker`, a fresh interpreter each), reused
while warm. The runner enforces `Timeout` (the worker is killed and replaced: `Sandbox.Timedout`)
and `MemorySize` (RSS watched with psutil; over the limit the worker is killed:
`Runtime.OutOfMemory`, reported as Lambda does with Max Memory Used equal to the limit), and
writes Lambda-shaped `START`/`END`/`REPORT` lines to
`<state-dir>/logs/<function>.log`, which the cost report reads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import os
import struct
import sys
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from sluice.local.packages import hidden_packages
from sluice.local.template import ACCOUNT_ID, REGION
from sluice.local.worker import SPEC_ENV

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger("sluice.local.runner")

_MIB = 1024 * 1024
INIT_TIMEOUT_S = 10.0
"""Lambda's limit on the init phase."""
MEMORY_POLL_S = 0.02


@dataclass(frozen=True)
class FunctionConfig:
    """One function as the templates define it."""

    name: str
    handler: str
    code_dir: Path
    layers: tuple[Path, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 3.0
    memory_mb: int = 128
    runtime: str = "python3.12"
    architecture: str = "x86_64"
    max_workers: int = 4
    role_arn: str = ""
    """The function's execution role; its workers carry temporary credentials of it."""
    dead_letter_arn: str = ""
    """`DeadLetterConfig.TargetArn`: the SQS queue or SNS topic a failed asynchronous
    invocation's event goes to."""

    @property
    def arn(self) -> str:
        """The function ARN as AWS would form it."""
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.name}"

    @property
    def log_group(self) -> str:
        """The CloudWatch log group Lambda would write to."""
        return f"/aws/lambda/{self.name}"


@dataclass
class InvokeResult:
    """The outcome of one invocation, shaped like the Lambda Invoke response.

    `function_error` is `"Unhandled"` when the function failed (the payload then holds
    `errorType`/`errorMessage`); `log_tail` is the invocation's log text (≤ 4 KiB).
    """

    payload: bytes
    function_error: str | None = None
    log_tail: str = ""
    request_id: str = ""
    duration_ms: float = 0.0
    billed_ms: int = 0
    max_memory_mb: int = 0
    init_ms: float | None = None
    status_code: int = 200
    executed_version: str = "$LATEST"

    @property
    def log_tail_b64(self) -> str:
        """`X-Amz-Log-Result`: the last 4 KiB of the log, base64."""
        return base64.b64encode(self.log_tail.encode()[-4096:]).decode()

    def json(self) -> Any:
        """The payload decoded as JSON (None for an empty payload)."""
        return json.loads(self.payload) if self.payload else None


ASYNC_TIME_SCALE = 60.0
"""Seconds of event age one local second counts for in asynchronous invocations (Lambda waits
about a minute before its first retry; locally one second)."""
ASYNC_RETRY_DELAYS_S = (1.0, 2.0)
"""Local waits before the first and second retry of a failed asynchronous invocation."""


@dataclass(frozen=True)
class AsyncInvokeConfig:
    """A function's `EventInvokeConfig`: retries, maximum event age, destinations (ARNs)."""

    max_retries: int = 2
    max_event_age_s: float = 21_600.0
    on_success: str = ""
    on_failure: str = ""


SendToDestination = Callable[[FunctionConfig, str, dict[str, Any]], Awaitable[None]]
"""(function, destination ARN, invocation record) → sends the record there."""
SendToDeadLetter = Callable[["FunctionConfig", bytes, "InvokeResult | None"], Awaitable[None]]
"""(function, the event, the last result) → sends the event to the function's dead-letter
queue or topic."""


def invocation_record(
    config: FunctionConfig,
    payload: bytes,
    result: InvokeResult | None,
    condition: str,
    attempts: int,
    stamp: datetime,
) -> dict[str, Any]:
    """The record Lambda sends to an asynchronous invocation's destination
    (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html)."""
    request_payload = json.loads(payload) if payload else {}
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
        "requestContext": {
            "requestId": result.request_id if result else str(uuid.uuid4()),
            "functionArn": f"{config.arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": request_payload,
    }
    if result is not None:
        context: dict[str, Any] = {
            "statusCode": result.status_code,
            "executedVersion": result.executed_version,
        }
        if result.function_error:
            context["functionError"] = result.function_error
        record["responseContext"] = context
        record["responsePayload"] = result.json()
    return record


class FunctionNotFound(LookupError):
    """No function of that name or ARN is registered."""


class _WorkerDied(Exception):
    def __init__(self, kind: str, message: str, max_rss_mb: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.max_rss_mb = max_rss_mb


def _frame(message: dict[str, Any]) -> bytes:
    data = json.dumps(message).encode()
    return struct.pack(">I", len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    header = await reader.readexactly(4)
    (size,) = struct.unpack(">I", header)
    result: dict[str, Any] = json.loads(await reader.readexactly(size))
    return result


class Worker:
    """One execution environment (a worker process) of one function."""

    def __init__(self, config: FunctionConfig, log_path: Path, base_env: dict[str, str]) -> None:
        self.config = config
        self.log_path = log_path
        self.base_env = base_env
        self.proc: asyncio.subprocess.Process | None = None
        self.init_ms: float = 0.0
        self.init_error: dict[str, Any] | None = None
        self.invocations = 0
        self.last_used = time.monotonic()
        self.generation = 0
        self.stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"

    async def start(self) -> None:
        """Spawn the process and wait for its init phase (handler import) to finish.

        Raises:
            _WorkerDied: the process exited or exceeded the init timeout.
        """
        spec = {
            "handler": self.config.handler,
            "paths": [str(self.config.code_dir), *(str(p) for p in self.config.layers)],
            "function_name": self.config.name,
            "function_arn": self.config.arn,
            "memory_mb": self.config.memory_mb,
            "log_group": self.config.log_group,
            "log_stream": self.stream,
            "log_file": str(self.log_path),
            # What the deployed layer does not ship stays out of reach (sluice.local.packages).
            "hidden": sorted(hidden_packages(self.config.runtime, self.config.architecture)),
        }
        env = dict(self.base_env)
        env.update(dict(self.config.env))
        env.update(
            {
                SPEC_ENV: json.dumps(spec),
                "AWS_LAMBDA_FUNCTION_NAME": self.config.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.config.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": self.config.log_group,
                "AWS_LAMBDA_LOG_STREAM_NAME": self.stream,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{self.config.runtime}",
                "LAMBDA_TASK_ROOT": str(self.config.code_dir),
                "_HANDLER": self.config.handler,
            }
        )
        with self.log_path.open("ab") as errors:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sluice.local.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
                env=env,
                cwd=str(self.config.code_dir),
            )
        began = time.perf_counter()
        assert self.proc.stdout is not None
        try:
            ready = await asyncio.wait_for(_read_frame(self.proc.stdout), INIT_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError) as exc:
            await self.kill()
            raise _WorkerDied(
                "Runtime.ExitError", f"worker for {self.config.name} failed to initialise"
            ) from exc
        # Init Duration covers interpreter start + handler import, as Lambda's INIT phase does.
        self.init_ms = (time.perf_counter() - began) * 1000
        self.init_error = ready.get("init_error")

    @property
    def pid(self) -> int | None:
        """The worker's process id (None before start)."""
        return self.proc.pid if self.proc else None

    async def invoke(self, request_id: str, payload: bytes) -> dict[str, Any]:
        """Run one invocation; enforce Timeout and MemorySize.

        Returns:
            The worker's result frame (`ok`, `payload`, `duration_ms`, `max_rss_mb`, `logs`).

        Raises:
            _WorkerDied: timeout, out of memory, or the process exited; the worker is dead.
        """
        assert self.proc is not None
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.invocations += 1
        deadline_ms = time.time() * 1000 + self.config.timeout_s * 1000
        self.proc.stdin.write(
            _frame(
                {
                    "request_id": request_id,
                    # An Invoke without a payload reaches the handler as {}, as on Lambda.
                    "payload": payload.decode() or "{}",
                    "deadline_ms": deadline_ms,
                }
            )
        )
        await self.proc.stdin.drain()
        reply = asyncio.ensure_future(_read_frame(self.proc.stdout))
        watch = asyncio.ensure_future(self._watch_memory())
        try:
            done, _ = await asyncio.wait(
                {reply, watch},
                timeout=self.config.timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            watch.cancel()
        if reply in done:
            try:
                result = reply.result()
            except asyncio.IncompleteReadError:
                code = await self._exit_code()
                raise _WorkerDied(
                    "Runtime.ExitError",
                    f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}",
                ) from None
            self.last_used = time.monotonic()
            return result
        reply.cancel()
        if watch in done and not watch.cancelled() and watch.exception() is None:
            await self.kill()
            # Lambda reports the limit as Max Memory Used of an environment it killed for
            # memory: the RSS seen a poll after the crossing says more about the poll interval.
            raise _WorkerDied(
                "Runtime.OutOfMemory",
                f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
                self.config.memory_mb,
            )
        await self.kill()
        raise _WorkerDied(
            "Sandbox.Timedout",
            f"RequestId: {request_id} Error: Task timed out after {self.config.timeout_s:.2f} "
            "seconds",
        )

    async def _watch_memory(self) -> None:
        """Returns once RSS exceeds MemorySize; runs until cancelled otherwise."""
        assert self.proc is not None
        limit = self.config.memory_mb * _MIB
        process: psutil.Process | None = None
        while True:
            try:
                # Inside the try: a worker that already exited (and was reaped) must not end
                # the watch with an error, which `invoke` would take for a timeout; its reply's
                # EOF reports the exit instead.
                process = process or psutil.Process(self.proc.pid)
                rss = process.memory_info().rss
            except psutil.Error:
                await asyncio.sleep(3600)
                continue
            if rss > limit:
                return
            await asyncio.sleep(MEMORY_POLL_S)

    async def _exit_code(self) -> int | None:
        assert self.proc is not None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self.proc.wait(), 2)
        return None

    async def kill(self) -> None:
        """Stop the process now (idempotent)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()

    async def close(self) -> None:
        """Stop the process gracefully (stdin closed), killing it if it lingers."""
        if self.proc is None or self.proc.returncode is not None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 2)
        except TimeoutError:
            await self.kill()


@dataclass
class _Pool:
    config: FunctionConfig
    idle: deque[Worker] = field(default_factory=deque)
    busy: set[Worker] = field(default_factory=set)
    slots: asyncio.Semaphore | None = None
    # Bumped by `FunctionRunner.recycle`: a worker of an older generation is not reused.
    generation: int = 0
    cold_starts: int = 0
    prewarmed: int = 0
    invocations: int = 0
    errors: int = 0


class FunctionRunner:
    """Invokes registered functions in warm-reused worker processes.

    Args:
        state_dir: where `logs/<function>.log` files are written.
        endpoint_url: the local AWS endpoint the functions' clients use (`AWS_ENDPOINT_URL`).
        idle_timeout_s: a worker idle for this long is stopped (Lambda recycles idle
            environments too).
        credentials: the credentials environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
            `AWS_SESSION_TOKEN`) of a function's workers, from its role; without it (or for a
            function without a role) workers carry placeholder keys, which act as the account
            root.
    """

    def __init__(
        self,
        state_dir: Path,
        endpoint_url: str,
        idle_timeout_s: float = 600.0,
        credentials: Callable[[FunctionConfig], Mapping[str, str]] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.log_dir = state_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.endpoint_url = endpoint_url
        self.idle_timeout_s = idle_timeout_s
        self.credentials = credentials
        self._pools: dict[str, _Pool] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._async_configs: dict[str, AsyncInvokeConfig] = {}
        self.destinations: SendToDestination | None = None
        """Sends an asynchronous invocation's record to a destination (set by the runtime)."""
        self.dead_letters: SendToDeadLetter | None = None
        """Sends a failed asynchronous invocation's event to the function's `DeadLetterConfig`."""

    def base_env(self) -> dict[str, str]:
        """The environment every worker starts from (never the caller's own credentials)."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "PYTHONUNBUFFERED": "1",
            # No PYTHONDONTWRITEBYTECODE (even if the caller's shell sets it): a cold start loads
            # the bytecode cached beside the sources instead of compiling every import again.
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    @property
    def functions(self) -> dict[str, FunctionConfig]:
        """Registered functions by name."""
        return {name: pool.config for name, pool in self._pools.items()}

    async def register(self, config: FunctionConfig) -> None:
        """Add or replace a function. An unchanged config keeps its warm workers."""
        current = self._pools.get(config.name)
        if current is not None and current.config == config:
            return
        self._pools[config.name] = _Pool(config, slots=asyncio.Semaphore(config.max_workers))
        if current is not None:
            for worker in list(current.idle):
                await worker.close()

    def resolve(self, name_or_arn: str) -> str:
        """Function name from a name, a full or partial ARN, or `name:qualifier`.

        Raises:
            FunctionNotFound: no such function.
        """
        name = name_or_arn
        if name.startswith("arn:"):
            parts = name.split(":")
            name = parts[6] if len(parts) > 6 else parts[-1]
        elif ":function:" in name:
            name = name.split(":function:", 1)[1]
        name = name.split(":", 1)[0]
        if name not in self._pools:
            raise FunctionNotFound(
                f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
            )
        return name

    async def invoke(self, name_or_arn: str, payload: bytes) -> InvokeResult:
        """Invoke synchronously (RequestResponse).

        Raises:
            FunctionNotFound: no such function.
        """
        pool = self._pools[self.resolve(name_or_arn)]
        assert pool.slots is not None
        async with pool.slots:
            return await self._invoke_in_pool(pool, payload)

    def set_async_config(self, name_or_arn: str, config: AsyncInvokeConfig | None) -> None:
        """A function's `EventInvokeConfig` (None: Lambda's defaults, no destinations).

        Raises:
            FunctionNotFound: no such function.
        """
        name = self.resolve(name_or_arn)
        if config is None:
            self._async_configs.pop(name, None)
        else:
            self._async_configs[name] = config

    def async_config(self, name_or_arn: str) -> AsyncInvokeConfig:
        """The asynchronous-invocation settings of a function (defaults when none is set)."""
        return self._async_configs.get(self.resolve(name_or_arn), AsyncInvokeConfig())

    def invoke_async(self, name_or_arn: str, payload: bytes) -> None:
        """Invoke asynchronously (InvocationType=Event): queued, retried on error as the
        function's `EventInvokeConfig` says (two retries, after 1 s and 2 s, by default), the
        record of the outcome sent to its on-success or on-failure destination
        (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html).

        Time is compressed: the retries wait 1 s and 2 s where Lambda waits about 1 and
        2 minutes, and `MaximumEventAgeInSeconds` counts `ASYNC_TIME_SCALE` seconds of event age
        per local second.

        Raises:
            FunctionNotFound: no such function (checked before queueing, as Lambda does).
        """
        name = self.resolve(name_or_arn)
        queued = time.monotonic()
        stamp = datetime.now(UTC)

        async def run() -> None:
            config = self.async_config(name)
            attempts = 0
            result: InvokeResult | None = None
            condition = "RetriesExhausted"
            while True:
                age = (time.monotonic() - queued) * ASYNC_TIME_SCALE
                if attempts and age > config.max_event_age_s:
                    condition = "EventAgeExceeded"
                    break
                attempts += 1
                result = await self.invoke(name, payload)
                if result.function_error is None:
                    condition = "Success"
                    break
                if attempts > config.max_retries:
                    break
                await asyncio.sleep(ASYNC_RETRY_DELAYS_S[min(attempts, 2) - 1])
            if condition != "Success":
                log.warning("async invoke of %s: %s after %d attempts", name, condition, attempts)
            destination = config.on_success if condition == "Success" else config.on_failure
            if destination and self.destinations is not None:
                record = invocation_record(
                    self.functions[name], payload, result, condition, attempts, stamp
                )
                try:
                    await self.destinations(self.functions[name], destination, record)
                except Exception as exc:
                    log.warning("destination %s of %s failed: %s", destination, name, exc)
            function = self.functions[name]
            if condition != "Success" and function.dead_letter_arn and self.dead_letters:
                try:
                    await self.dead_letters(function, payload, result)
                except Exception as exc:
                    log.warning("dead-letter queue of %s failed: %s", name, exc)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def prewarm(self, name_or_arn: str, count: int) -> int:
        """Start workers ahead of the first invocation, up to `count` warm ones (capped by the
        function's worker limit), so a burst does not pay the cold starts.

        A pre-warmed worker is an ordinary cold environment whose init phase ran early: its first
        invocation still reports `Init Duration` (and bills it), as it would have without
        pre-warming. A worker that fails to initialise is dropped; its function then starts
        workers on demand as before.

        Returns:
            How many workers were started.

        Raises:
            FunctionNotFound: no such function.
        """
        pool = self._pools[self.resolve(name_or_arn)]
        wanted = min(count, pool.config.max_workers) - len(pool.idle) - len(pool.busy)
        started = 0
        for _ in range(max(0, wanted)):
            worker = self._new_worker(pool)
            try:
                await worker.start()
            except _WorkerDied as exc:
                log.warning("pre-warm of %s failed: %s", pool.config.name, exc)
                break
            if self._pools.get(pool.config.name) is not pool:
                await worker.close()  # re-registered meanwhile: this config is gone
                break
            pool.cold_starts += 1
            pool.prewarmed += 1
            pool.idle.appendleft(worker)
            started += 1
        return started

    def worker_env(self, config: FunctionConfig) -> dict[str, str]:
        """`base_env` with the credentials of the function's role."""
        env = self.base_env()
        if self.credentials is not None and config.role_arn:
            env.update(self.credentials(config))
        return env

    def _new_worker(self, pool: _Pool) -> Worker:
        worker = Worker(
            pool.config, self.log_dir / f"{pool.config.name}.log", self.worker_env(pool.config)
        )
        worker.generation = pool.generation
        return worker

    async def _acquire(self, pool: _Pool) -> Worker:
        while pool.idle:
            worker = pool.idle.pop()
            if worker.generation != pool.generation:
                await worker.close()  # pre-warmed while `recycle` ran
            elif worker.proc is not None and worker.proc.returncode is None:
                return worker
        worker = self._new_worker(pool)
        await worker.start()
        pool.cold_starts += 1
        return worker

    async def _invoke_in_pool(self, pool: _Pool, payload: bytes) -> InvokeResult:
        config = pool.config
        request_id = str(uuid.uuid4())
        log_path = self.log_dir / f"{config.name}.log"
        pool.invocations += 1
        try:
            worker = await self._acquire(pool)
        except _WorkerDied as exc:
            pool.errors += 1
            return self._failure(request_id, exc.kind, str(exc), config, log_path, 0.0, 0, None)
        cold = worker.invocations == 0
        init_ms = worker.init_ms if cold else None
        self._log(log_path, f"START RequestId: {request_id} Version: $LATEST\n")
        began = time.perf_counter()
        pool.busy.add(worker)
        try:
            reply = await worker.invoke(request_id, payload)
        except _WorkerDied as exc:
            pool.busy.discard(worker)
            pool.errors += 1
            duration = (time.perf_counter() - began) * 1000
            if exc.kind == "Sandbox.Timedout":
                duration = config.timeout_s * 1000
            return self._failure(
                request_id, exc.kind, str(exc), config, log_path, duration, exc.max_rss_mb, init_ms
            )
        pool.busy.discard(worker)
        if worker.generation == pool.generation:
            pool.idle.append(worker)
        else:
            await worker.close()  # recycled while it ran: the next invocation starts cold
        duration = float(reply["duration_ms"])
        result = InvokeResult(
            payload=str(reply["payload"]).encode(),
            function_error=None if reply["ok"] else "Unhandled",
            request_id=request_id,
            duration_ms=duration,
            billed_ms=_billed(duration, init_ms),
            max_memory_mb=int(reply["max_rss_mb"]),
            init_ms=init_ms,
        )
        if not reply["ok"]:
            pool.errors += 1
        result.log_tail = self._report(log_path, result, config, str(reply.get("logs", "")))
        return result

    def _failure(
        self,
        request_id: str,
        kind: str,
        message: str,
        config: FunctionConfig,
        log_path: Path,
        duration: float,
        max_rss_mb: int,
        init_ms: float | None,
    ) -> InvokeResult:
        body = {"errorType": kind, "errorMessage": message, "requestId": request_id}
        result = InvokeResult(
            payload=json.dumps(body).encode(),
            function_error="Unhandled",
            request_id=request_id,
            duration_ms=duration,
            billed_ms=_billed(duration, init_ms),
            max_memory_mb=max_rss_mb or config.memory_mb,
            init_ms=init_ms,
        )
        status = {
            "Sandbox.Timedout": "timeout",
            "Runtime.OutOfMemory": "error\tError Type: Runtime.OutOfMemory",
        }.get(kind, f"error\tError Type: {kind}")
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}\n"
        self._log(log_path, line)
        result.log_tail = line + self._report(log_path, result, config, "", status)
        return result

    def _report(
        self,
        log_path: Path,
        result: InvokeResult,
        config: FunctionConfig,
        handler_logs: str,
        status: str | None = None,
    ) -> str:
        start = f"START RequestId: {result.request_id} Version: $LATEST\n"
        end = f"END RequestId: {result.request_id}\n"
        report = (
            f"REPORT RequestId: {result.request_id}\tDuration: {result.duration_ms:.2f} ms\t"
            f"Billed Duration: {result.billed_ms} ms\tMemory Size: {config.memory_mb} MB\t"
            f"Max Memory Used: {result.max_memory_mb} MB"
        )
        if result.init_ms is not None:
            report += f"\tInit Duration: {result.init_ms:.2f} ms"
        if status is not None:
            report += f"\tStatus: {status}"
        report += "\n"
        self._log(log_path, end + report)
        return start + handler_logs + end + report

    @staticmethod
    def _log(path: Path, text: str) -> None:
        with path.open("a", encoding="utf-8") as out:
            out.write(text)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per function: warm workers, busy workers, cold starts, invocations, errors."""
        return {
            name: {
                "warm": len(pool.idle),
                "busy": len(pool.busy),
                "cold_starts": pool.cold_starts,
                "prewarmed": pool.prewarmed,
                "invocations": pool.invocations,
                "errors": pool.errors,
            }
            for name, pool in self._pools.items()
        }

    async def recycle(self) -> int:
        """Retire every worker: idle ones stop now, busy ones when their invocation ends, so
        every function's next invocation starts cold (as after a function update on Lambda),
        with nothing cached by an earlier environment (`make iam-proof` re-provisions a role
        without one statement, then recycles). Returns how many idle workers were stopped."""
        stopped = 0
        for pool in self._pools.values():
            pool.generation += 1
            while pool.idle:
                await pool.idle.pop().close()
                stopped += 1
        return stopped

    async def reap_idle(self) -> int:
        """Stop workers idle longer than `idle_timeout_s`. Returns how many were stopped."""
        now = time.monotonic()
        stopped = 0
        for pool in self._pools.values():
            for worker in list(pool.idle):
                if now - worker.last_used > self.idle_timeout_s:
                    pool.idle.remove(worker)
                    await worker.close()
                    stopped += 1
        return stopped

    async def close(self) -> None:
        """Stop every worker and pending asynchronous invocation."""
        for task in list(self._background):
            task.cancel()
        for pool in self._pools.values():
            while pool.idle:
                await pool.idle.pop().close()
            for worker in list(pool.busy):
                await worker.kill()


def _billed(duration_ms: float, init_ms: float | None) -> int:
    # Since August 2025 Lambda bills the INIT phase of on-demand functions too; 1 ms granularity.
    return max(1, math.ceil(duration_ms + (init_ms or 0.0)))
