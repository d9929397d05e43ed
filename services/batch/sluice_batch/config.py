"""Settings of the batch functions, read from the environment once at cold start."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pydantic import Field

from sluice_shared.stages import StageSettings

if TYPE_CHECKING:
    from collections.abc import Mapping

MiB = 2**20
_INT_FIELDS = {
    "partition_bytes": "SLUICE_BATCH_PARTITION_BYTES",
    "cut_window_bytes": "SLUICE_BATCH_CUT_WINDOW_BYTES",
    "max_concurrency": "SLUICE_BATCH_MAX_CONCURRENCY",
    "data_cpus": "SLUICE_BATCH_DATA_CPUS",
}


class BatchSettings(StageSettings):
    """The data-stage settings plus the batch path's own knobs.

    - partition_bytes: target size of one byte-range partition of a large CSV/JSONL object.
    - cut_window_bytes: bytes read (one ranged GET) after each cut target to find a record end;
      at least twice the record limit, so a window always holds a whole record.
    - max_concurrency: the Distributed Maps' MaxConcurrency (returned by plan).
    - tolerated_failure_percent: bad or failed partitions a run tolerates before it fails (the
      same figure as the Maps' ToleratedFailurePercentage).
    - data_cpus: CPUs one partition or bucket step's data path may use (`cpu_limit`). 1: the
      run gets its parallelism from concurrent functions (MaxConcurrency), each step on one
      thread; a function of `DataMemorySize` below 3,538 MB has less than two vCPUs of CPU
      time anyway (`usable_cpus` then runs one thread whatever this says), and a second
      thread costs a bucket step ~25 MB of its memory (services/batch/README.md).
    """

    partition_bytes: int = Field(default=128 * MiB, ge=1)
    cut_window_bytes: int = Field(default=4 * MiB, ge=1024)
    max_concurrency: int = Field(default=4, ge=1, le=10_000)
    tolerated_failure_percent: float = Field(default=10.0, ge=0.0, le=100.0)
    data_cpus: int = Field(default=1, ge=1, le=64)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BatchSettings:
        source = os.environ if env is None else env
        base = StageSettings.from_env(source)
        extra: dict[str, object] = {
            field: int(source[name]) for field, name in _INT_FIELDS.items() if source.get(name)
        }
        tolerated = source.get("SLUICE_BATCH_TOLERATED_FAILURE_PERCENT")
        if tolerated:
            extra["tolerated_failure_percent"] = float(tolerated)
        return cls(**base.model_dump(), **extra)

    @property
    def window_bytes(self) -> int:
        """The cut window actually used: never below twice the record limit."""
        return max(self.cut_window_bytes, 2 * self.limits.max_record_bytes + 2)
