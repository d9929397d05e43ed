"""Ingest's settings, read from the environment once per execution environment."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pydantic import Field

from sluice_shared.limits import Limits
from sluice_shared.settings import SluiceSettings

if TYPE_CHECKING:
    from collections.abc import Mapping

# The templates' default (deploy/services/ingest.yaml BatchThresholdBytes): the largest stored size
# whose gunzipped rows fit the data functions' 10 GiB /tmp at the default decompression ratio.
DEFAULT_BATCH_THRESHOLD = 100 * 2**20


class IngestSettings(SluiceSettings):
    batch_threshold_bytes: int = Field(default=DEFAULT_BATCH_THRESHOLD, ge=1)
    batch_state_machine_arn: str | None = None
    limits: Limits = Field(default_factory=Limits)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        source = os.environ if env is None else env
        base = SluiceSettings.from_env(source)
        threshold = source.get("SLUICE_BATCH_THRESHOLD_BYTES")
        return cls(
            **base.model_dump(),
            batch_threshold_bytes=int(threshold) if threshold else DEFAULT_BATCH_THRESHOLD,
            batch_state_machine_arn=source.get("SLUICE_BATCH_STATE_MACHINE_ARN") or None,
            limits=Limits.from_env(source),
        )
