"""Ephemeral local storage for one unit of work (Lambda's /tmp).

Every unit of work that writes locally does so inside `scratch_dir` or `reused_scratch_dir`, so
this is where a full disk is recognised: an `OSError` with `ENOSPC` (or `EDQUOT`) raised in the
block — by a download, a staged Arrow or Parquet write, a quarantine file — leaves it as
`EphemeralStorageExhausted`, a `PoisonInputError` with code `ephemeral_storage_exhausted`. The
same input needs the same space on the next attempt, so an SQS consumer parks the message with
that reason at once and a batch item is caught as poison, instead of retrying into the same
full disk until `maxReceiveCount`.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sluice_shared.errors import PoisonInputError, SluiceError

if TYPE_CHECKING:
    from collections.abc import Iterator

# A reused directory keeps the sub-directories a unit of work made (Hive partition folders,
# say) so the next unit skips their rmdir/mkdir; past this many it is removed outright, which
# bounds what an environment that has seen many partition values keeps in /tmp.
MAX_KEPT_DIRS = 64
# Disk full, or the user's quota exhausted: the same for a unit of work.
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class EphemeralStorageExhausted(PoisonInputError):
    """The unit of work needs more local storage than the execution environment has."""

    code = "ephemeral_storage_exhausted"


def storage_exhausted(exc: BaseException) -> OSError | None:
    """The disk-full `OSError` behind `exc` (itself, or a cause or context of it), or None.

    pyarrow reports a failed write as an `OSError` carrying the errno, as Python's files do.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _STORAGE_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None


def _exhausted(root: Path | None, label: str, cause: OSError) -> EphemeralStorageExhausted:
    place = root if root is not None else Path(tempfile.gettempdir())
    try:
        usage = shutil.disk_usage(place)
        space = f"{usage.total / 2**20:.0f} MiB, {usage.free / 2**20:.1f} MiB free now"
    except OSError:
        space = "size unknown"
    return EphemeralStorageExhausted(
        f"ephemeral storage {place} ({space}) ran out during {label}: {cause.strerror or cause}; "
        "the input needs more local space than the function's EphemeralStorage"
    )


@contextmanager
def _storage_guard(root: Path | None, label: str) -> Iterator[None]:
    """Re-raise a disk-full error of the block as EphemeralStorageExhausted (from it)."""
    try:
        yield
    except SluiceError:  # already classified (a poison or a transient failure of its own)
        raise
    except Exception as exc:
        full = storage_exhausted(exc)
        if full is None:
            raise
        raise _exhausted(root, label, full) from exc


@contextmanager
def scratch_dir(root: Path | None, label: str) -> Iterator[Path]:
    """A fresh directory under `root` (the system temp dir when None), removed afterwards.

    Warm Lambda environments keep /tmp between invocations: removing the directory even on
    failure keeps a long-lived environment from filling its ephemeral storage. A disk-full
    error in the block is raised as EphemeralStorageExhausted (see the module docstring).
    """
    with _storage_guard(root, label):
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"sluice-{label}-", dir=root))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


class _Pool:
    """Idle scratch directories of one process, by (root, kind)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[Path | None, str], list[Path]] = {}
        self._pid = os.getpid()

    def take(self, root: Path | None, kind: str) -> Path:
        with self._lock:
            if self._pid != os.getpid():  # a forked child must not share its parent's dirs
                self._idle, self._pid = {}, os.getpid()
            idle = self._idle.get((root, kind))
            if idle:
                path = idle.pop()
                if path.is_dir():
                    return path
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"sluice-{kind}-", dir=root))

    def give_back(self, root: Path | None, kind: str, path: Path) -> None:
        if not _empty_files(path):
            shutil.rmtree(path, ignore_errors=True)
            return
        with self._lock:
            if self._pid == os.getpid():
                self._idle.setdefault((root, kind), []).append(path)
                return
        shutil.rmtree(path, ignore_errors=True)


def _empty_files(path: Path) -> bool:
    """Delete every file under `path`, keeping its directories; False when the tree should go
    instead (too many directories kept, or something could not be removed)."""
    dirs = 0
    try:
        for current, subdirs, files in os.walk(path):
            dirs += len(subdirs)
            if dirs > MAX_KEPT_DIRS:
                return False
            for name in files:
                os.unlink(os.path.join(current, name))
    except OSError:
        return False
    return True


_POOL = _Pool()


@contextmanager
def reused_scratch_dir(root: Path | None, kind: str) -> Iterator[Path]:
    """A directory holding no files (perhaps empty sub-directories) under `root` (the system
    temp dir when None) for one unit of work, emptied of its files afterwards and handed to the
    next unit of the same `kind` in this process.

    For the per-file stages of small files: creating and removing a directory tree per file
    cost more CPU than the file's data work. Concurrent units (record concurrency) each get
    their own directory. Files never outlive the unit, even on failure, so /tmp holds no data
    between invocations; a directory that cannot be emptied is removed instead.
    """
    with _storage_guard(root, kind):
        path = _POOL.take(root, kind)
        try:
            yield path
        finally:
            _POOL.give_back(root, kind, path)
