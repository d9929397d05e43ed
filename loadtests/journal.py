"""What the load generators did, for the reconciliation afterwards.

Locust users append to the process-wide `JOURNAL` (Locust runs users as greenlets of one
process). `loadtests.run` reads it in place; a plain `locust -f loadtests/locustfile.py` run
writes it to `SLUICE_LOADTEST_JOURNAL` when the test stops, so it can be reconciled later.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path  # noqa: TC003 (used at runtime by save/load annotations)
from typing import Any


@dataclass(frozen=True)
class Upload:
    """One file PUT to the raw bucket: key, when (epoch s, before the request), its truth, and
    the ledger file id its version gets."""

    key: str
    dataset: str
    size: int
    started_at: float
    truth: dict[str, Any]
    file_id: str = ""


@dataclass
class Journal:
    """Accepted event ids, failed PutEvents entries and uploaded files of one run."""

    run_id: str = ""
    events_accepted: dict[str, float] = field(default_factory=dict)
    events_failed: int = 0
    uploads: list[Upload] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def accepted(self, ids: list[str], at: float | None = None) -> None:
        """Record envelope ids the bus accepted (at epoch seconds `at`, default now)."""
        stamp = time.time() if at is None else at
        with self._lock:
            for ident in ids:
                self.events_accepted[ident] = stamp

    def failed(self, count: int) -> None:
        """Record entries PutEvents rejected (FailedEntryCount) or a whole failed call."""
        with self._lock:
            self.events_failed += count

    def uploaded(self, upload: Upload) -> None:
        """Record a file the raw bucket accepted."""
        with self._lock:
            self.uploads.append(upload)

    def reset(self, run_id: str) -> None:
        """Forget everything; start recording `run_id`."""
        with self._lock:
            self.run_id = run_id
            self.events_accepted = {}
            self.events_failed = 0
            self.uploads = []

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        with self._lock:
            return {
                "run_id": self.run_id,
                "events_accepted": dict(self.events_accepted),
                "events_failed": self.events_failed,
                "uploads": [asdict(u) for u in self.uploads],
            }

    def save(self, path: Path) -> None:
        """Write `to_dict()` as JSON to `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Journal:
        """Read a journal `save` wrote.

        Raises:
            OSError, ValueError, KeyError: missing or malformed file.
        """
        doc = json.loads(path.read_text(encoding="utf-8"))
        journal = cls(run_id=str(doc["run_id"]))
        journal.events_accepted = {str(k): float(v) for k, v in doc["events_accepted"].items()}
        journal.events_failed = int(doc["events_failed"])
        journal.uploads = [Upload(**u) for u in doc["uploads"]]
        return journal


JOURNAL = Journal()
"""The process-wide journal the Locust users write to."""
