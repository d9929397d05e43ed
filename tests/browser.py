"""Headless Chromium driven over the DevTools protocol (a WebSocket, through aiohttp): load a
page, read its DOM with JavaScript, follow a link, wait for a condition. The browser is the
Debian package `make browser` installs; a missing browser fails the test that needs it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import tempfile
import time
from typing import Any

import aiohttp
import pytest

CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class BrowserError(AssertionError):
    """The page threw, or a condition was not met in time."""


class Browser:
    """One headless Chromium with one page. `async with Browser() as page:`."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._profile = tempfile.TemporaryDirectory(prefix="sluice-chromium-")

    async def __aenter__(self) -> Browser:
        if CHROMIUM is None:
            pytest.fail("needs Chromium: `make browser` (apt-get install chromium-headless-shell)")
        self._process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={self._profile.name}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert self._process.stderr is not None
        browser_ws = None
        deadline = time.monotonic() + 60
        while browser_ws is None and time.monotonic() < deadline:
            line = await asyncio.wait_for(self._process.stderr.readline(), 60)
            if not line:
                break
            found = _LISTENING.search(line.decode(errors="replace"))
            browser_ws = found.group(1) if found else None
        if browser_ws is None:
            raise BrowserError("Chromium did not open its DevTools port")
        asyncio.get_running_loop().create_task(self._drain())
        port = re.search(r":(\d+)/", browser_ws)
        assert port is not None
        self._http = aiohttp.ClientSession()
        async with self._http.get(f"http://127.0.0.1:{port.group(1)}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t["type"] == "page")
        self._ws = await self._http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Runtime.enable")
        return self

    async def _drain(self) -> None:
        # Chromium logs to stderr; an unread pipe would fill and stall it.
        assert self._process is not None
        assert self._process.stderr is not None
        while await self._process.stderr.readline():
            pass

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self._process is not None and self._process.returncode is None:
            # The renderer and utility processes share the browser's stderr: the whole group
            # goes, or the pipe stays open and `wait()` never returns.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            await self._process.wait()
        self._profile.cleanup()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events in between are skipped)."""
        assert self._ws is not None
        ident = next(self._ids)
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = await asyncio.wait_for(self._ws.receive(), 60)
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise BrowserError(f"DevTools connection closed: {message.type}")
            doc = json.loads(message.data)
            if doc.get("id") != ident:
                continue
            if "error" in doc:
                raise BrowserError(f"{method}: {doc['error']}")
            result: dict[str, Any] = doc["result"]
            return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> Any:  # noqa: ASYNC109
        """Poll `expression` until it is truthy; its value. Raises BrowserError at `timeout`."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise BrowserError(f"{expression!r} still {value!r} after {timeout} s")

    async def goto(self, url: str) -> None:
        """Load `url` and wait until the document has loaded."""
        await self.call("Page.navigate", url=url)
        await self.wait_for(
            f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        )
