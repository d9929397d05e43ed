"""Input limits: defaults, environment overrides, and clear errors for bad values."""

from __future__ import annotations

import pytest

from sluice_shared.limits import GiB, KiB, Limits, MiB


def test_limits_defaults_suit_lambda() -> None:
    limits = Limits()
    assert limits.max_file_bytes == 10 * GiB
    assert limits.max_record_bytes == 1 * MiB
    assert limits.max_field_bytes == 256 * KiB
    assert limits.max_decompression_ratio == 100.0
    assert limits.max_key_length == 1024
    assert limits.max_json_depth == 32


def test_limits_from_env_reads_every_variable() -> None:
    env = {
        "SLUICE_MAX_FILE_BYTES": "1000",
        "SLUICE_MAX_RECORD_BYTES": "200",
        "SLUICE_MAX_FIELD_BYTES": "50",
        "SLUICE_MAX_DECOMPRESSION_RATIO": "12.5",
        "SLUICE_MAX_KEY_LENGTH": "64",
        "SLUICE_MAX_JSON_DEPTH": "4",
    }
    assert Limits.from_env(env) == Limits(
        max_file_bytes=1000,
        max_record_bytes=200,
        max_field_bytes=50,
        max_decompression_ratio=12.5,
        max_key_length=64,
        max_json_depth=4,
    )


def test_limits_from_env_unset_or_blank_keeps_defaults() -> None:
    assert Limits.from_env({"SLUICE_MAX_FILE_BYTES": " ", "OTHER": "x"}) == Limits()


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("SLUICE_MAX_FILE_BYTES", "ten"),
        ("SLUICE_MAX_RECORD_BYTES", "0"),
        ("SLUICE_MAX_FIELD_BYTES", "-5"),
        ("SLUICE_MAX_DECOMPRESSION_RATIO", "inf"),
        ("SLUICE_MAX_KEY_LENGTH", "1.5"),
        ("SLUICE_MAX_JSON_DEPTH", "nan"),
    ],
)
def test_limits_from_env_bad_value_raises_naming_variable(var: str, value: str) -> None:
    with pytest.raises(ValueError, match=var):
        Limits.from_env({var: value})


def test_limits_non_positive_value_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_record_bytes"):
        Limits(max_record_bytes=0)
