"""A stage's own message that is poison is parked at once; the file it names must not stay in
its working state for ever: `StageService` moves it to FAILED with the reason code, under the
ledger's rules (only from the stage's working state, forward only). A refused or unknown event
is not the file's own message and leaves the file alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sluice_shared.errors import EventLedgerMismatch, InputLimitExceeded
from sluice_shared.ports import FileRecord, FileStatus, ObjectNotFoundError
from sluice_shared.stages import UnknownFileError
from tests.fakes import FakeDeps, fake_deps
from tests.unit.observability.test_stage_telemetry import (  # the autouse fixtures too
    ScriptedStep,
    build_service,
    fresh_cold_start,  # noqa: F401
    repo_root,  # noqa: F401
    run_handler,
    transformed_envelope,
)


def registered(fakes: FakeDeps, data: Any, status: FileStatus) -> FileRecord:
    record = FileRecord(
        file_id=data.file_id, dataset=data.dataset.name, bucket=data.bucket, key=data.key
    )
    asyncio.run(fakes.ledger.register_file(record))
    path = [FileStatus.VALIDATING, FileStatus.TRANSFORMING, FileStatus.WRITING]
    for step in path[: path.index(status) + 1] if status in path else []:
        current = fakes.ledger.records[data.file_id]
        asyncio.run(fakes.ledger.transition(data.file_id, step, expected=(current.status,)))
    return fakes.ledger.records[data.file_id]


@pytest.mark.parametrize(
    "poison",
    [
        ObjectNotFoundError("GetObject failed: NoSuchKey"),
        InputLimitExceeded("record above 1 MiB", code="record_too_large"),
    ],
)
def test_poison_of_the_files_own_message_fails_the_file_with_its_code(
    capsys: pytest.CaptureFixture[str], poison: Exception
) -> None:
    # GIVEN output working on a file (WRITING) and its step failing on poison
    envelope = transformed_envelope()
    fakes = fake_deps()
    before = registered(fakes, envelope.data, FileStatus.WRITING)
    service = build_service(ScriptedStep(poison), fakes, working=FileStatus.WRITING)
    # WHEN the handler runs the message
    response, _, _ = run_handler(service, envelope, capsys)
    # THEN the message is parked once, and the file is FAILED with the same code and reason
    assert response == {"batchItemFailures": []}
    code = getattr(poison, "code", "")
    assert [p.reason_code for p in fakes.parker.parked] == [code]
    after = fakes.ledger.records[envelope.data.file_id]
    assert (after.status, after.error_code) == (FileStatus.FAILED, code)
    assert after.error == str(poison)
    assert after.version == before.version + 1
    steps = fakes.ledger.steps[envelope.data.file_id]
    assert (steps[-1]["from_status"], steps[-1]["to_status"]) == ("WRITING", "FAILED")


@pytest.mark.parametrize("status", [FileStatus.COMPLETED, FileStatus.TRANSFORMING])
def test_poison_for_a_file_outside_the_stages_working_state_leaves_it_alone(
    capsys: pytest.CaptureFixture[str], status: FileStatus
) -> None:
    # GIVEN a file that is done, or not yet in output's step (a stale or early message)
    envelope = transformed_envelope()
    fakes = fake_deps()
    if status is FileStatus.COMPLETED:
        registered(fakes, envelope.data, FileStatus.WRITING)
        asyncio.run(
            fakes.ledger.transition(
                envelope.data.file_id, FileStatus.COMPLETED, expected=(FileStatus.WRITING,)
            )
        )
    else:
        registered(fakes, envelope.data, status)
    before = fakes.ledger.records[envelope.data.file_id]
    service = build_service(
        ScriptedStep(ObjectNotFoundError("gone")), fakes, working=FileStatus.WRITING
    )
    # WHEN its message turns out poison
    response, _, _ = run_handler(service, envelope, capsys)
    # THEN the message is parked, and the ledger only moves forward from the stage's own state
    assert response == {"batchItemFailures": []}
    assert fakes.ledger.records[envelope.data.file_id] == before


@pytest.mark.parametrize(
    "refused",
    [
        EventLedgerMismatch.of("x", [("key", "a", "b")]),
        UnknownFileError("file x is not in the ledger"),
    ],
)
def test_refused_or_unknown_events_do_not_fail_the_file(
    capsys: pytest.CaptureFixture[str], refused: Exception
) -> None:
    # GIVEN a file in output's step and an event the step refuses (not the file's own)
    envelope = transformed_envelope()
    fakes = fake_deps()
    before = registered(fakes, envelope.data, FileStatus.WRITING)
    service = build_service(ScriptedStep(refused), fakes, working=FileStatus.WRITING)
    # WHEN the handler runs it
    run_handler(service, envelope, capsys)
    # THEN it is parked and the file carries on where it was
    assert len(fakes.parker.parked) == 1
    assert fakes.ledger.records[envelope.data.file_id] == before
