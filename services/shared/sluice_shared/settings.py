"""Settings every service shares, read from the environment once at cold start.

Field `x` is read from `SLUICE_X` unless `ENV_NAMES` says otherwise; a service's own settings
subclass `SluiceSettings` and get the same rule for their fields
(`batch_threshold_bytes` <- `SLUICE_BATCH_THRESHOLD_BYTES`). Tests build settings directly:
`SluiceSettings(raw_bucket=..., ...)`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field


class SluiceSettings(BaseModel):
    """Names of the shared resources and of the running service (docs/architecture.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Fields read from a variable other than `SLUICE_<FIELD>`; the first one set wins.
    ENV_NAMES: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "service_name": ("POWERTOOLS_SERVICE_NAME",),
        "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
        "log_level": ("LOG_LEVEL",),
        "endpoint_url": ("AWS_ENDPOINT_URL",),
    }

    raw_bucket: str = Field(min_length=3)
    work_bucket: str = Field(min_length=3)
    processed_bucket: str = Field(min_length=3)
    error_bucket: str = Field(min_length=3)
    event_bus: str = Field(min_length=1)
    ledger_table: str = Field(min_length=1)
    service_name: str = Field(default="sluice", min_length=1)
    dlq_url: str | None = None
    region: str = "us-east-1"
    log_level: str = "INFO"
    # Informational only: botocore reads AWS_ENDPOINT_URL itself for every client.
    endpoint_url: str | None = None
    # Where the data contracts are read from: the processed bucket under this prefix, as
    # `sluice contracts publish --datasets` put them (`sluice_shared.published_contracts`);
    # unset, the copy packaged with the code (tests and tools only).
    contracts_prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-/]+/$")
    # How long a producer keeps its answer to "does a rule of the bus still deliver only an older
    # major of my fact?" (`sluice_shared.subscribers`): one ListRules per this many seconds.
    legacy_subscribers_ttl_s: int = Field(default=60, ge=1, le=3600)

    @classmethod
    def env_names(cls, field: str) -> tuple[str, ...]:
        """The environment variables `field` is read from, in order of precedence."""
        return cls.ENV_NAMES.get(field, (f"SLUICE_{field.upper()}",))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Build settings from `env` (default: `os.environ`); empty variables count as unset.

        Raises pydantic.ValidationError naming every missing or invalid field.
        """
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in cls.model_fields:
            for name in cls.env_names(field):
                value = source.get(name)
                if value:
                    values[field] = value
                    break
        return cls.model_validate(values)


def int_from_env(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    """The whole number `env[name]` (`default` when unset or blank).

    Raises ValueError naming the variable for a value that is not a whole number >= `minimum`:
    a typo fails the cold start instead of silently changing how a handler behaves.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, not {raw!r}")
    return value
