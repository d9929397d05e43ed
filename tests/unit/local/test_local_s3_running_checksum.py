"""`RunningChecksum` fed in chunks equals moto's one-shot `compute_checksum` (no network)."""

from __future__ import annotations

import hashlib

import pytest
from moto.s3.utils import compute_checksum

from sluice.local.s3_patches import RunningChecksum


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", "MD5X"])
@pytest.mark.parametrize("cuts", [[], [1], [7, 4096, 4097], [0, 0, 100_000]])
def test_running_checksum_any_chunking_equals_compute_checksum(
    algorithm: str, cuts: list[int]
) -> None:
    data = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(5000))
    running = RunningChecksum(algorithm)
    start = 0
    for cut in [*cuts, len(data)]:
        running.update(data[start:cut] if cut >= start else b"")
        start = max(start, cut)

    assert running.digest() == compute_checksum(data, algorithm, encode_base64=False)


def test_running_checksum_nothing_added_equals_checksum_of_empty() -> None:
    for algorithm in ("CRC32", "SHA256"):
        assert RunningChecksum(algorithm).digest() == compute_checksum(
            b"", algorithm, encode_base64=False
        )
