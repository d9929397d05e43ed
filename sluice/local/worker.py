"""The process one local Lambda execution environment runs in (`python -m sluice.local.worker`).

A fresh interpreter per worker (the `spawn` start method's semantics, with an explicit environment
like Lambda's): it puts the function's code and layers first on `sys.path`, hides the installed
packages the deployed layer does not ship (`sluice.local.packages`: the spec's `hidden` names
import as they would on Lambda, `ModuleNotFoundError`), imports the handler (the init phase,
timed), then serves invocations one at a time, reused while warm.

Protocol with the runner, over the worker's original stdout (a private copy of fd 1): frames of a
4-byte big-endian length followed by JSON. The runner writes invocation frames to stdin. Anything
the handler prints (fd 1 and 2, `print`, logging) goes to the function's log file and is also
captured per invocation for `LogType=Tail`.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import io
import json
import math
import os
import resource
import struct
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable

SPEC_ENV = "SLUICE_WORKER_SPEC"


class LambdaContext:
    """The context object Lambda passes to a Python handler (the attributes handlers use)."""

    def __init__(self, spec: dict[str, Any], request_id: str, deadline_ms: float) -> None:
        self.function_name: str = spec["function_name"]
        self.function_version: str = "$LATEST"
        self.invoked_function_arn: str = spec["function_arn"]
        self.memory_limit_in_mb: int = int(spec["memory_mb"])
        self.aws_request_id: str = request_id
        self.log_group_name: str = spec["log_group"]
        self.log_stream_name: str = spec["log_stream"]
        self.identity: Any = None
        self.client_context: Any = None
        self.tenant_id: str | None = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the runner kills this invocation for exceeding `Timeout`."""
        return max(0, int(self._deadline_ms - time.time() * 1000))


class _Tee(io.TextIOBase):
    """A text stream that writes to the log file and keeps a copy of this invocation's output."""

    def __init__(self, sink: TextIO) -> None:
        self._sink = sink
        self.captured: list[str] = []

    def write(self, text: str) -> int:
        self._sink.write(text)
        self._sink.flush()
        self.captured.append(text)
        return len(text)

    def flush(self) -> None:
        self._sink.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._sink.fileno()


def _write_frame(channel: BinaryIO, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    channel.write(struct.pack(">I", len(data)) + data)
    channel.flush()


def _read_frame(channel: BinaryIO) -> dict[str, Any] | None:
    header = channel.read(4)
    if len(header) < 4:
        return None
    (size,) = struct.unpack(">I", header)
    result: dict[str, Any] = json.loads(channel.read(size))
    return result


def _error(kind: str, exc: BaseException, request_id: str = "") -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": kind,
        "requestId": request_id,
        "stackTrace": _stack_trace(exc),
    }


def _stack_trace(exc: BaseException) -> list[str]:
    """The frames of the failure from the handler inward, as Lambda's Python runtime reports
    them: the runtime's own frames (here, this module calling the handler) are left out."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = os.path.realpath(__file__)
    importlib_dir = os.path.dirname(os.path.realpath(importlib.__file__)) + os.sep

    def runtime_frame(frame: traceback.FrameSummary) -> bool:
        # This module, and the import machinery it loads the handler with (an import that
        # fails reports no frames, as Lambda's Runtime.ImportModuleError does).
        path = os.path.realpath(frame.filename)
        return (
            frame.filename.startswith("<frozen importlib")
            or path == own
            or path.startswith(importlib_dir)
        )

    start = 0
    while start < len(frames) and runtime_frame(frames[start]):
        start += 1
    return traceback.format_list(frames[start:])


def _max_rss_mb() -> int:
    """Peak RSS of this environment in MB (MiB), rounded up, as Lambda's "Max Memory Used"
    reports a completed invocation (an environment killed for memory reports the limit instead;
    the runner does that)."""
    # VmHWM is the high-water mark of this process image. ru_maxrss is not usable here: Linux
    # carries it across exec, so it would report the parent's size from before the fork.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return math.ceil(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return math.ceil(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


class _LayerView:
    """The path finder, blind to the packages the function could not import when deployed: an
    import of one fails as on Lambda, and `importlib.util.find_spec` answers None."""

    def __init__(self, finder: Any, hidden: frozenset[str]) -> None:
        self.finder = finder
        self.hidden = hidden

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.partition(".")[0] in self.hidden:
            return None
        return self.finder.find_spec(fullname, path, target)

    def invalidate_caches(self) -> None:
        self.finder.invalidate_caches()


def hide_packages(hidden: frozenset[str]) -> None:
    """Make the top-level packages `hidden` unimportable in this process (see `_LayerView`)."""
    if hidden:
        sys.meta_path[:] = [
            _LayerView(finder, hidden) if finder is importlib.machinery.PathFinder else finder
            for finder in sys.meta_path
        ]


def _load_handler(spec: dict[str, Any]) -> Callable[[Any, Any], Any]:
    module_name, _, function_name = str(spec["handler"]).rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    handler = getattr(module, function_name, None)
    if handler is None:
        raise AttributeError(f"Handler '{function_name}' missing on module '{module_name}'")
    return handler  # type: ignore[no-any-return]


def main() -> int:
    """Run one execution environment until stdin closes. Returns the exit status."""
    spec: dict[str, Any] = json.loads(os.environ.pop(SPEC_ENV))
    channel = os.fdopen(os.dup(1), "wb")
    # Private copies of the protocol pipes: handler code that reads stdin or prints cannot
    # corrupt the frames.
    requests = os.fdopen(os.dup(0), "rb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    log_file = open(spec["log_file"], "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    os.dup2(log_file.fileno(), 1)
    os.dup2(log_file.fileno(), 2)
    tee = _Tee(log_file)
    sys.stdout = tee
    sys.stderr = tee
    for path in reversed(spec["paths"]):
        sys.path.insert(0, path)
    hide_packages(frozenset(spec.get("hidden", ())))

    started = time.perf_counter()
    handler: Callable[[Any, Any], Any] | None = None
    init_error: dict[str, Any] | None = None
    try:
        handler = _load_handler(spec)
    except ImportError as exc:
        init_error = _error("Runtime.ImportModuleError", exc)
        init_error["errorMessage"] = f"Unable to import module '{spec['handler']}': {exc}"
    except AttributeError as exc:
        init_error = _error("Runtime.HandlerNotFound", exc)
    except Exception as exc:
        init_error = _error(type(exc).__name__, exc)
    init_ms = (time.perf_counter() - started) * 1000
    if init_error is not None:
        # Lambda logs INIT failures as an [ERROR] line; so do we, in the function's log file.
        print(f"[ERROR] {init_error['errorType']}: {init_error['errorMessage']}", file=sys.stderr)
    tee.captured.clear()
    _write_frame(channel, {"op": "ready", "init_ms": init_ms, "init_error": init_error})

    while True:
        frame = _read_frame(requests)
        if frame is None:
            return 0
        request_id = str(frame["request_id"])
        context = LambdaContext(spec, request_id, float(frame["deadline_ms"]))
        tee.captured.clear()
        began = time.perf_counter()
        reply: dict[str, Any]
        if handler is None:
            reply = {
                "ok": False,
                "payload": json.dumps(dict(init_error or {}, requestId=request_id)),
            }
        else:
            try:
                # An Invoke without a payload reaches the handler as {} (Lambda's default event).
                result = handler(json.loads(frame["payload"] or "{}"), context)
                try:
                    reply = {"ok": True, "payload": json.dumps(result)}
                except (TypeError, ValueError) as exc:
                    err = _error("Runtime.MarshalError", exc, request_id)
                    err["errorMessage"] = f"Unable to marshal response: {exc}"
                    reply = {"ok": False, "payload": json.dumps(err)}
            except Exception as exc:
                traceback.print_exc()
                reply = {
                    "ok": False,
                    "payload": json.dumps(_error(type(exc).__name__, exc, request_id)),
                }
        reply["op"] = "result"
        reply["duration_ms"] = (time.perf_counter() - began) * 1000
        reply["max_rss_mb"] = _max_rss_mb()
        reply["logs"] = "".join(tee.captured)[-4096:]
        _write_frame(channel, reply)


if __name__ == "__main__":
    sys.exit(main())
