"""Ephemeral local storage for one unit of work (Lambda's /tmp)."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def scratch_dir(root: Path | None, label: str) -> Iterator[Path]:
    """A fresh directory under `root` (the system temp dir when None), removed afterwards.

    Warm Lambda environments keep /tmp between invocations: removing the directory even on
    failure keeps a long-lived environment from filling its ephemeral storage.
    """
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"sluice-{label}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
