"""The ledger state machine, settings, publisher chunking and the in-memory fakes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.envelope import Envelope, to_eventbridge_entry
from contracts.events import FileIngestedV1
from contracts.types import DatasetRef
from sluice_shared.aws.events import MAX_REQUEST_BYTES, chunk_entries
from sluice_shared.aws.s3 import MAX_PARTS, MIB, part_size_for
from sluice_shared.ports import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    FileRecord,
    FileStatus,
    IllegalTransitionError,
    check_transition,
)
from sluice_shared.settings import SluiceSettings
from tests.fakes import fake_deps

ENV = {
    "SLUICE_RAW_BUCKET": "sluice-raw",
    "SLUICE_WORK_BUCKET": "sluice-work",
    "SLUICE_PROCESSED_BUCKET": "sluice-processed",
    "SLUICE_ERROR_BUCKET": "sluice-error",
    "SLUICE_EVENT_BUS": "sluice-bus",
    "SLUICE_LEDGER_TABLE": "sluice-ledger",
    "POWERTOOLS_SERVICE_NAME": "validate",
    "AWS_REGION": "eu-west-1",
}


def record(file_id: str = "f" * 32) -> FileRecord:
    return FileRecord(file_id=file_id, dataset="orders", bucket="sluice-raw", key="orders/a.csv")


# ------------------------------------------------------------------------------ state machine


def test_transition_table_moves_forward_only() -> None:
    order = [
        FileStatus.PENDING,
        FileStatus.VALIDATING,
        FileStatus.TRANSFORMING,
        FileStatus.WRITING,
        FileStatus.COMPLETED,
    ]
    for index, status in enumerate(order):
        for earlier in order[:index]:
            assert earlier not in ALLOWED_TRANSITIONS[status], f"{status} -> {earlier}"


def test_transition_table_terminal_states_have_no_exit() -> None:
    assert {
        FileStatus.COMPLETED,
        FileStatus.FAILED,
        FileStatus.QUARANTINED,
    } == TERMINAL_STATUSES
    assert all(ALLOWED_TRANSITIONS[s] == frozenset() for s in TERMINAL_STATUSES)


def test_transition_table_failure_reachable_from_every_working_state() -> None:
    for status in set(FileStatus) - TERMINAL_STATUSES:
        assert {FileStatus.FAILED, FileStatus.QUARANTINED} <= ALLOWED_TRANSITIONS[status]


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        (FileStatus.PENDING, {FileStatus.VALIDATING}),
        (FileStatus.WRITING, {FileStatus.PENDING}),
        (FileStatus.VALIDATING, {FileStatus.COMPLETED}),
        (FileStatus.VALIDATING, set()),
    ],
)
def test_check_transition_illegal_move_raises(to: FileStatus, expected: set[FileStatus]) -> None:
    with pytest.raises(IllegalTransitionError):
        check_transition(to, expected)


# ------------------------------------------------------------------------------------ fakes


def test_fake_deps_form_aws_deps() -> None:
    deps = fake_deps().as_aws_deps()

    assert deps.parker is not None
    assert deps.ledger is not None


# ------------------------------------------------------------------------------------- settings


def test_settings_from_env_reads_sluice_and_powertools_names() -> None:
    settings = SluiceSettings.from_env({**ENV, "SLUICE_DLQ_URL": "http://q/dlq"})

    assert settings.raw_bucket == "sluice-raw"
    assert settings.ledger_table == "sluice-ledger"
    assert settings.service_name == "validate"
    assert settings.region == "eu-west-1"
    assert settings.dlq_url == "http://q/dlq"


def test_settings_from_env_missing_names_every_missing_field() -> None:
    env = {k: v for k, v in ENV.items() if k not in {"SLUICE_EVENT_BUS", "SLUICE_RAW_BUCKET"}}

    with pytest.raises(ValidationError) as caught:
        SluiceSettings.from_env(env)

    missing = {str(error["loc"][0]) for error in caught.value.errors()}
    assert missing == {"event_bus", "raw_bucket"}


def test_settings_subclass_fields_follow_the_sluice_prefix_rule() -> None:
    class IngestSettings(SluiceSettings):
        batch_threshold_bytes: int = 256 * MIB

    settings = IngestSettings.from_env({**ENV, "SLUICE_BATCH_THRESHOLD_BYTES": "1024"})

    assert settings.batch_threshold_bytes == 1024
    assert settings.dlq_url is None


# ------------------------------------------------------------------------------------- chunking


def envelope(size: int) -> Envelope[Any]:
    # The key carries the padding: the envelope's size grows with it.
    return Envelope.wrap(
        FileIngestedV1(
            file_id="a" * 32,
            dataset=DatasetRef(name="orders", version=1),
            bucket="sluice-raw",
            key="orders/" + "k" * size,
            etag="e",
            size_bytes=1,
            object_created_at=datetime(2024, 1, 1, tzinfo=UTC),
        ),
        correlationid="a" * 32,
    )


def test_chunk_entries_caps_count_at_ten() -> None:
    entries = [(str(i), to_eventbridge_entry(envelope(10), "bus")) for i in range(23)]

    chunks = list(chunk_entries(entries))

    assert [len(c) for c in chunks] == [10, 10, 3]
    assert [pair[0] for c in chunks for pair in c] == [str(i) for i in range(23)]


def test_chunk_entries_caps_request_bytes() -> None:
    # GIVEN entries of ~100 KB (object keys cap at 1 KB, so the padding goes into the detail)
    big = to_eventbridge_entry(envelope(1000), "bus")
    big = {**big, "Detail": big["Detail"][:-1] + ', "pad": "' + "x" * 100_000 + '"}'}
    entries = [(str(i), big) for i in range(5)]

    # WHEN they are chunked
    chunks = list(chunk_entries(entries))

    # THEN no request exceeds 256 KB, though each holds fewer than 10 entries
    assert [len(c) for c in chunks] == [2, 2, 1]
    for chunk in chunks:
        total = sum(
            len(e["Detail"]) + len(e["Source"]) + len(e["DetailType"]) + 14 for _, e in chunk
        )
        assert total <= MAX_REQUEST_BYTES


def test_part_size_grows_to_stay_under_ten_thousand_parts() -> None:
    assert part_size_for(100 * MIB) == 8 * MIB
    huge = 200 * 1024 * MIB  # 200 GiB
    size = part_size_for(huge)
    assert size % MIB == 0
    assert -(-huge // size) <= MAX_PARTS
