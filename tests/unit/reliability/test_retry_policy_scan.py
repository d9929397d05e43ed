"""Every tenacity retry in the code base has a `stop`: an unbounded retry turns a lasting fault
into a Lambda that runs until its timeout, and a queue that never drains."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCANNED = ("services", "sluice", "contracts", "orchestration")
RETRY_CALLS = frozenset({"AsyncRetrying", "Retrying", "retry", "TornadoRetrying"})


def unbounded_retries(source: str, filename: str = "<string>") -> list[str]:
    """`file:line` of every tenacity retry construction without a `stop=` keyword.

    Only names imported from tenacity count (`from tenacity import retry`, `tenacity.retry`),
    so an unrelated function called `retry` is not flagged.
    """
    tree = ast.parse(source, filename)
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tenacity")
        for alias in node.names
        if alias.name in RETRY_CALLS
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        named = isinstance(func, ast.Name) and func.id in imported
        dotted = (
            isinstance(func, ast.Attribute)
            and func.attr in RETRY_CALLS
            and isinstance(func.value, ast.Name)
            and func.value.id == "tenacity"
        )
        if (named or dotted) and not any(k.arg in ("stop", None) for k in node.keywords):
            found.append(f"{filename}:{node.lineno}")
    # A bare `@retry` decorator (no call) retries forever.
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Name) and decorator.id in imported:
                    found.append(f"{filename}:{decorator.lineno}")
    return found


def test_retry_scan_every_tenacity_retry_in_the_code_has_a_stop() -> None:
    offenders: list[str] = []
    files = [p for top in SCANNED for p in (ROOT / top).rglob("*.py")]
    assert len(files) > 50  # the scan really looked at the code base
    for path in files:
        offenders += unbounded_retries(path.read_text(encoding="utf-8"), str(path))
    assert offenders == []


def test_retry_scan_flags_retries_without_stop() -> None:
    source = (
        "import tenacity\n"
        "from tenacity import AsyncRetrying, retry, stop_after_attempt\n"
        "a = AsyncRetrying(reraise=True)\n"
        "b = tenacity.Retrying()\n"
        "c = AsyncRetrying(stop=stop_after_attempt(3))\n"
        "@retry\n"
        "def f(): ...\n"
        "@retry(reraise=True)\n"
        "def g(): ...\n"
        "@retry(stop=stop_after_attempt(2))\n"
        "def h(): ...\n"
    )
    assert unbounded_retries(source) == ["<string>:3", "<string>:4", "<string>:8", "<string>:6"]


def test_retry_scan_ignores_unrelated_retry_names() -> None:
    assert unbounded_retries("def retry(): ...\nretry()\nclient.retry()\n") == []
