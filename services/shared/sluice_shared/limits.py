"""Limits on everything Sluice reads from outside (file, record, field, nesting, compression, key).

Each breach is a reason code on a row or a file, never a crash or an unbounded allocation. The
defaults suit a Lambda function with 10 GB of ephemeral storage; every limit can be set per
deployment through an environment variable (see `Limits.from_env`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

GiB = 2**30
MiB = 2**20
KiB = 2**10

_ENV_NAMES = {
    "max_file_bytes": "SLUICE_MAX_FILE_BYTES",
    "max_record_bytes": "SLUICE_MAX_RECORD_BYTES",
    "max_field_bytes": "SLUICE_MAX_FIELD_BYTES",
    "max_decompression_ratio": "SLUICE_MAX_DECOMPRESSION_RATIO",
    "max_key_length": "SLUICE_MAX_KEY_LENGTH",
    "max_json_depth": "SLUICE_MAX_JSON_DEPTH",
}


@dataclass(frozen=True)
class Limits:
    """Input limits; all must be positive.

    - max_file_bytes: size of the object as stored (and of its decompressed bytes).
    - max_record_bytes: one CSV record / JSON line, terminator included.
    - max_field_bytes: one field's value (UTF-8 bytes).
    - max_decompression_ratio: decompressed bytes / compressed bytes of a gzip object.
    - max_key_length: the S3 object key, in characters.
    - max_json_depth: nesting of a JSON record (a flat object has depth 1).
    """

    max_file_bytes: int = 10 * GiB
    max_record_bytes: int = 1 * MiB
    max_field_bytes: int = 256 * KiB
    max_decompression_ratio: float = 100.0
    max_key_length: int = 1024
    max_json_depth: int = 32

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{f.name} must be a positive number, got {value!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        """Limits from `SLUICE_MAX_*` variables in `env`; unset variables keep their default.

        Integer limits accept plain integers (bytes, characters, levels); the ratio accepts a
        float. Raises ValueError naming the variable when a value is malformed or not positive.
        """
        values: dict[str, int | float] = {}
        for f in fields(cls):
            var = _ENV_NAMES[f.name]
            text = env.get(var)
            if text is None or text.strip() == "":
                continue
            try:
                value: int | float = (
                    float(text) if f.name == "max_decompression_ratio" else int(text.strip())
                )
            except ValueError:
                raise ValueError(f"{var}={text!r} is not a valid number") from None
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{var}={text!r} must be positive")
            values[f.name] = value
        return cls(**values)  # type: ignore[arg-type]
