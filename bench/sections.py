"""What every RESULTS section states (date, tree, load) and how a benchmark writes its section.

A benchmark writes its figures between `<!-- begin:NAME -->` and `<!-- end:NAME -->` in its
RESULTS file and leaves the hand-written reading around them alone; `tools/docs_figures.py` reads
the same sections to generate README's figures.
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def tree() -> str:
    """The measured tree's commit, `+dirty` when tracked files (RESULTS files aside) differ."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *argv], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/RESULTS*")
    return commit + ("+dirty" if dirty else "")


def load() -> str:
    """The 1, 5 and 15 minute load averages now, and the CPU count (the box is shared)."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def now() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def replace_section(path: Path, name: str, body: str) -> None:
    """Put `body` between the `name` markers of the file at `path` (appended when absent)."""
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    pattern = re.compile(rf"{re.escape(begin)}\n.*?{re.escape(end)}", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = f"{text.rstrip()}\n\n{block}\n" if text else f"{block}\n"
    path.write_text(text, encoding="utf-8")
