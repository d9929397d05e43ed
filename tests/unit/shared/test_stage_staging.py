"""Per-attempt staging (`sluice_shared.stages.attempt_staging`/`announced_staging`): where an
attempt stages, and what the next stage reads of an announced prefix."""

from __future__ import annotations

import pytest

from sluice_shared.keys import StageKeys
from sluice_shared.ports import FileRecord, FileStatus
from sluice_shared.stages import announced_staging, attempt_staging
from tests.fakes import InMemoryObjectStore

KEYS = StageKeys("f1", "orders")


def claimed(status: FileStatus, version: int, file_id: str = "f1") -> FileRecord:
    return FileRecord(
        file_id=file_id, dataset="orders", bucket="raw", key="orders/a.csv", status=status,
        version=version,
    )  # fmt: skip


def test_attempt_staging_is_keyed_by_the_claimed_version_under_the_step_prefix() -> None:
    validating = attempt_staging(KEYS, claimed(FileStatus.VALIDATING, 1))
    again = attempt_staging(KEYS, claimed(FileStatus.VALIDATING, 2))
    transforming = attempt_staging(KEYS, claimed(FileStatus.TRANSFORMING, 4))
    assert validating.prefix == "stage/f1/validated/v000001/"
    assert again.prefix == "stage/f1/validated/v000002/"
    assert validating.validated(0, 3) == "stage/f1/validated/v000001/p00000-b0003.arrow"
    assert transforming.transformed(2) == "stage/f1/transformed/v000004/b0002.arrow"
    assert all(p.startswith(KEYS.staging_prefix) for p in (validating.prefix, again.prefix))


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (claimed(FileStatus.WRITING, 5), "no staging for a claim into WRITING"),
        (claimed(FileStatus.VALIDATING, 1, file_id="f2"), "of file f2, not f1"),
        (claimed(FileStatus.VALIDATING, 0), "not 0"),
    ],
)
def test_attempt_staging_refuses_what_is_not_a_stage_claim(
    record: FileRecord, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        attempt_staging(KEYS, record)


def test_announced_staging_own_prefix_may_be_named_a_foreign_one_is_listed() -> None:
    own = announced_staging("s3://work/stage/f1/validated/v000003/", KEYS.validated_prefix)
    foreign = announced_staging("s3://work/elsewhere/", KEYS.validated_prefix)
    assert (own.bucket, own.area.prefix, own.own) == ("work", "stage/f1/validated/v000003/", True)
    assert foreign.own is False
    with pytest.raises(ValueError, match="not an S3 URI"):
        announced_staging("stage/f1/validated/", KEYS.validated_prefix)


async def test_announced_staging_lists_only_the_announcing_attempts_objects() -> None:
    # GIVEN a base prefix announced by an event from before per-attempt staging, under which
    # attempts' areas now live
    store = InMemoryObjectStore()
    store.put("work", "stage/f1/validated/p00000-b0000.arrow", b"a")
    store.put("work", "stage/f1/validated/v000001/p00000-b0000.arrow", b"b")
    legacy = announced_staging("s3://work/stage/f1/validated/", KEYS.validated_prefix)
    attempt = announced_staging("s3://work/stage/f1/validated/v000001/", KEYS.validated_prefix)
    # THEN each reads exactly its own objects
    assert await legacy.keys(store) == ["stage/f1/validated/p00000-b0000.arrow"]
    assert await attempt.keys(store) == ["stage/f1/validated/v000001/p00000-b0000.arrow"]
