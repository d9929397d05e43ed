"""Reused scratch directories: files never outlive a unit of work, directories are reused."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import pytest

from sluice_shared import scratch
from sluice_shared.errors import PoisonInputError
from sluice_shared.scratch import EphemeralStorageExhausted, reused_scratch_dir, scratch_dir

if TYPE_CHECKING:
    from pathlib import Path


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def test_reused_scratch_dir_after_use_keeps_no_files_and_hands_dir_to_next_unit(
    tmp_path: Path,
) -> None:
    with reused_scratch_dir(tmp_path, "unit-a") as first:
        (first / "part" / "date=2026-01-01").mkdir(parents=True)
        (first / "part" / "date=2026-01-01" / "x.parquet").write_bytes(b"data")
        (first / "source").write_bytes(b"raw")
    assert _files_under(first) == []
    with reused_scratch_dir(tmp_path, "unit-a") as second:
        assert second == first
        assert _files_under(second) == []


def test_reused_scratch_dir_on_failure_removes_files(tmp_path: Path) -> None:
    seen: list[Path] = []

    def fail_midway() -> None:
        with reused_scratch_dir(tmp_path, "unit-b") as work:
            seen.append(work)
            (work / "source").write_bytes(b"raw")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert _files_under(seen[0]) == []


def test_reused_scratch_dir_concurrent_units_get_distinct_dirs(tmp_path: Path) -> None:
    with (
        reused_scratch_dir(tmp_path, "unit-c") as one,
        reused_scratch_dir(tmp_path, "unit-c") as two,
    ):
        assert one != two
        (one / "source").write_bytes(b"1")
        (two / "source").write_bytes(b"2")
        assert (one / "source").read_bytes() == b"1"


def test_reused_scratch_dir_with_too_many_subdirs_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scratch, "MAX_KEPT_DIRS", 2)
    with reused_scratch_dir(tmp_path, "unit-d") as work:
        for n in range(3):
            (work / f"date={n}").mkdir()
            (work / f"date={n}" / "x").write_bytes(b"x")
    assert not work.exists()
    with reused_scratch_dir(tmp_path, "unit-d") as fresh:
        assert fresh != work


@pytest.mark.parametrize("reused", [True, False])
def test_scratch_dir_disk_full_in_the_block_is_ephemeral_storage_exhausted(
    tmp_path: Path, reused: bool
) -> None:
    # GIVEN a unit of work whose write hits a full disk
    full = OSError(errno.ENOSPC, "No space left on device")
    opened = reused_scratch_dir(tmp_path, "unit-f") if reused else scratch_dir(tmp_path, "unit-f")

    def unit() -> None:
        with opened as work:
            (work / "source").write_bytes(b"raw")
            raise full

    # WHEN it fails / THEN the error is poison with a stable code, naming the place and the unit
    with pytest.raises(EphemeralStorageExhausted) as raised:
        unit()
    assert isinstance(raised.value, PoisonInputError)
    assert raised.value.code == "ephemeral_storage_exhausted"
    assert str(tmp_path) in raised.value.message
    assert "unit-f" in raised.value.message
    assert "No space left on device" in raised.value.message
    assert raised.value.__cause__ is full
    # AND nothing the unit wrote is left behind
    assert _files_under(tmp_path) == []


def test_scratch_dir_other_os_errors_pass_through(tmp_path: Path) -> None:
    denied = PermissionError(errno.EACCES, "Permission denied")

    def unit() -> None:
        with scratch_dir(tmp_path, "unit-h"):
            raise denied

    with pytest.raises(PermissionError) as raised:
        unit()
    assert raised.value is denied
