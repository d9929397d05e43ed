"""Runtime and SQS partial-batch semantics, with in-memory fakes (no network)."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aws_lambda_powertools import Logger

from contracts.envelope import Envelope
from contracts.events import FileIngestedV1, FileValidatedV1
from contracts.types import DatasetRef
from sluice_shared.errors import (
    MalformedBatchError,
    PoisonInputError,
    ThrottledError,
    TransientError,
)
from sluice_shared.runtime import Runtime
from sluice_shared.sqs import WEIGHT_UNITS, Concurrency
from tests.fakes import FakeDeps, fake_deps

DLQ = "http://127.0.0.1:1/000000000000/ingest-dlq"
ACCEPTED = {FileIngestedV1.TYPE}
FILE_ID = "936b51a89792fd773da08d5a96cafb0d"


def ingested(file_id: str = FILE_ID) -> Envelope[FileIngestedV1]:
    return Envelope.wrap(
        FileIngestedV1(
            file_id=file_id,
            dataset=DatasetRef(name="orders", version=1),
            bucket="sluice-raw",
            key="orders/2024/01/15/a.csv",
            etag="abc",
            size_bytes=10,
            object_created_at=datetime(2024, 1, 15, tzinfo=UTC),
        ),
        correlationid=file_id,
    )


def eventbridge_event(envelope: Envelope[Any]) -> dict[str, Any]:
    """The body an EventBridge -> SQS target delivers."""
    return {
        "version": "0",
        "id": "8f5c1b2e-0000-0000-0000-000000000001",
        "detail-type": envelope.type,
        "source": envelope.source,
        "account": "000000000000",
        "time": "2024-01-15T10:30:05Z",
        "region": "us-east-1",
        "resources": [],
        "detail": envelope.model_dump(mode="json"),
    }


def record(message_id: str, body: str, **extra: Any) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:ingest-queue",
        "awsRegion": "us-east-1",
        **extra,
    }


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def body_of(envelope: Envelope[Any]) -> str:
    return json.dumps(eventbridge_event(envelope))


class Opener:
    """An open_deps factory that counts how often deps are opened/closed and on which loop."""

    def __init__(self, deps: FakeDeps, fail_times: int = 0) -> None:
        self.deps = deps
        self.opened = 0
        self.closed = 0
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.fail_times = fail_times

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[FakeDeps]:
        if self.fail_times:
            self.fail_times -= 1
            raise TransientError("cannot reach the endpoint")
        self.opened += 1
        self.loops.append(asyncio.get_running_loop())
        try:
            yield self.deps
        finally:
            self.closed += 1


@pytest.fixture
def deps() -> FakeDeps:
    return fake_deps()


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def runtime(deps: FakeDeps, log_stream: io.StringIO) -> Iterator[Runtime[FakeDeps]]:
    # Powertools keeps one handler per service name: a fresh name gets this test's stream.
    logger = Logger(service=f"test-runtime-{uuid.uuid4().hex}", stream=log_stream)
    rt: Runtime[FakeDeps] = Runtime(Opener(deps), dlq_url=DLQ, logger=logger)
    yield rt
    rt.close()


class Handler:
    """A handle_one that records envelopes and raises the next queued error, if any."""

    def __init__(self, *errors: BaseException | None) -> None:
        self.errors = list(errors)
        self.seen: list[str] = []

    async def __call__(self, envelope: Envelope[Any], deps: FakeDeps) -> None:
        self.seen.append(envelope.id)
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error


def failures(response: dict[str, list[dict[str, str]]]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_process_sqs_batch_all_succeed_reports_no_failures(runtime: Runtime[FakeDeps]) -> None:
    handler = Handler()
    first, second = ingested(), ingested("0" * 32)
    event = sqs_event(record("m1", body_of(first)), record("m2", body_of(second)))

    response = runtime.process_sqs_batch(event, handler, accepted=ACCEPTED)

    assert response == {"batchItemFailures": []}
    assert handler.seen == [first.id, second.id]


def test_process_sqs_batch_transient_error_reports_only_that_record(
    runtime: Runtime[FakeDeps], deps: FakeDeps
) -> None:
    handler = Handler(None, ThrottledError("slow down"), None)
    bodies = [body_of(ingested(str(i) * 32)) for i in range(3)]
    event = sqs_event(*(record(f"m{i}", b) for i, b in enumerate(bodies)))

    response = runtime.process_sqs_batch(event, handler, accepted=ACCEPTED)

    assert failures(response) == ["m1"]
    assert len(handler.seen) == 3  # a failure does not stop a standard queue's batch
    assert deps.parker.parked == []


def test_process_sqs_batch_unexpected_exception_is_redelivered_not_parked(
    runtime: Runtime[FakeDeps], deps: FakeDeps
) -> None:
    event = sqs_event(record("m1", body_of(ingested())))

    response = runtime.process_sqs_batch(event, Handler(KeyError("bug")), accepted=ACCEPTED)

    assert failures(response) == ["m1"]
    assert deps.parker.parked == []


def test_process_sqs_batch_poison_from_handler_is_parked_with_reason(
    runtime: Runtime[FakeDeps], deps: FakeDeps
) -> None:
    body = body_of(ingested())
    poison = PoisonInputError("header does not match the contract", code="header_mismatch")
    event = sqs_event(record("m1", body))

    response = runtime.process_sqs_batch(event, Handler(poison), accepted=ACCEPTED)

    assert failures(response) == []
    [parked] = deps.parker.parked
    assert (parked.queue_url, parked.body, parked.reason_code) == (DLQ, body, "header_mismatch")
    assert "header does not match" in parked.reason


def test_process_sqs_batch_unknown_major_is_parked_without_calling_handler(
    runtime: Runtime[FakeDeps], deps: FakeDeps
) -> None:
    # GIVEN an event of a major this build has never heard of
    raw = eventbridge_event(ingested())
    raw["detail-type"] = raw["detail"]["type"] = "sluice.file.ingested.v9"
    handler = Handler()

    # WHEN the batch is processed
    response = runtime.process_sqs_batch(
        sqs_event(record("m1", json.dumps(raw))), handler, accepted=ACCEPTED
    )

    # THEN it is parked with the contract's reason code, never retried, never handled
    assert failures(response) == []
    assert handler.seen == []
    assert [p.reason_code for p in deps.parker.parked] == ["unknown_contract_type"]


@pytest.mark.parametrize(
    ("body", "reason_code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        (json.dumps({"detail-type": FileIngestedV1.TYPE, "detail": {}}), "invalid_contract"),
    ],
    ids=["broken-json", "json-array", "empty-envelope"],
)
def test_process_sqs_batch_unreadable_body_is_parked(
    runtime: Runtime[FakeDeps], deps: FakeDeps, body: str, reason_code: str
) -> None:
    response = runtime.process_sqs_batch(
        sqs_event(record("m1", body)), Handler(), accepted=ACCEPTED
    )

    assert failures(response) == []
    assert [(p.body, p.reason_code) for p in deps.parker.parked] == [(body, reason_code)]


def test_process_sqs_batch_invalid_data_is_parked_as_invalid_contract(
    runtime: Runtime[FakeDeps], deps: FakeDeps
) -> None:
    raw = eventbridge_event(ingested())
    raw["detail"]["data"]["size_bytes"] = -5

    response = runtime.process_sqs_batch(
        sqs_event(record("m1", json.dumps(raw))), Handler(), accepted=ACCEPTED
    )

    assert failures(response) == []
    assert [p.reason_code for p in deps.parker.parked] == ["invalid_contract"]


def test_process_sqs_batch_type_not_accepted_is_parked(
    runtime: Runtime[FakeDeps], deps: FakeDeps
) -> None:
    response = runtime.process_sqs_batch(
        sqs_event(record("m1", body_of(ingested()))),
        Handler(),
        accepted={FileValidatedV1.TYPE},
    )

    assert failures(response) == []
    assert [p.reason_code for p in deps.parker.parked] == ["type_not_accepted"]


def test_process_sqs_batch_parking_fails_reports_failure(
    runtime: Runtime[FakeDeps], deps: FakeDeps
) -> None:
    deps.parker.faults.append(TransientError("DLQ unreachable"))

    response = runtime.process_sqs_batch(
        sqs_event(record("m1", "{not json"), record("m2", body_of(ingested()))),
        Handler(),
        accepted=ACCEPTED,
    )

    assert failures(response) == ["m1"]
    assert deps.parker.parked == []


def test_process_sqs_batch_without_dlq_fails_poison_for_the_redrive_policy(
    deps: FakeDeps,
) -> None:
    rt: Runtime[FakeDeps] = Runtime(Opener(deps), dlq_url=None)
    try:
        response = rt.process_sqs_batch(
            sqs_event(record("m1", "{not json")), Handler(), accepted=ACCEPTED
        )
    finally:
        rt.close()

    assert failures(response) == ["m1"]
    assert deps.parker.parked == []


def test_runtime_warm_invocations_reuse_loop_and_deps(deps: FakeDeps) -> None:
    # GIVEN one runtime serving several invocations, like a warm Lambda environment
    opener = Opener(deps)
    rt: Runtime[FakeDeps] = Runtime(opener, dlq_url=DLQ)
    seen: list[tuple[asyncio.AbstractEventLoop, FakeDeps]] = []

    async def handle(envelope: Envelope[Any], got: FakeDeps) -> None:
        seen.append((asyncio.get_running_loop(), got))

    # WHEN three batches are processed
    for n in range(3):
        rt.process_sqs_batch(
            sqs_event(record(f"m{n}", body_of(ingested()))), handle, accepted=ACCEPTED
        )
    rt.close()

    # THEN deps were opened once, on the loop every handler ran on, and closed once at the end
    assert opener.opened == 1
    assert opener.closed == 1
    assert len(seen) == 3
    assert {id(loop) for loop, _ in seen} == {id(opener.loops[0])}
    assert all(got is deps for _, got in seen)


def test_runtime_deps_fail_to_open_fails_whole_batch_then_recovers(deps: FakeDeps) -> None:
    opener = Opener(deps, fail_times=1)
    rt: Runtime[FakeDeps] = Runtime(opener, dlq_url=DLQ)
    handler = Handler()
    event = sqs_event(record("m1", body_of(ingested())))
    try:
        with pytest.raises(TransientError, match="cannot reach"):
            rt.process_sqs_batch(event, handler, accepted=ACCEPTED)
        assert handler.seen == []

        response = rt.process_sqs_batch(event, handler, accepted=ACCEPTED)
    finally:
        rt.close()

    assert failures(response) == []
    assert opener.opened == 1


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"Records": [{"body": "{}"}]},
        {"Records": [{"messageId": "", "body": "{}"}]},
        {"Records": [{"messageId": "m1", "body": "{}"}, {"messageId": "m1", "body": "{}"}]},
    ],
    ids=["no-records", "no-message-id", "empty-message-id", "duplicate-message-id"],
)
def test_process_sqs_batch_malformed_event_raises_instead_of_bad_identifiers(
    runtime: Runtime[FakeDeps], event: dict[str, Any]
) -> None:
    with pytest.raises(MalformedBatchError):
        runtime.process_sqs_batch(event, Handler(), accepted=ACCEPTED)


def test_process_sqs_batch_fifo_failure_fails_the_rest_unprocessed(
    runtime: Runtime[FakeDeps],
) -> None:
    fifo = {"attributes": {"MessageGroupId": "g1", "ApproximateReceiveCount": "1"}}
    handler = Handler(None, TransientError("blip"))
    event = sqs_event(*(record(f"m{i}", body_of(ingested(str(i) * 32)), **fifo) for i in range(4)))

    response = runtime.process_sqs_batch(event, handler, accepted=ACCEPTED)

    assert failures(response) == ["m1", "m2", "m3"]
    assert len(handler.seen) == 2  # m2 and m3 were never handed to the handler


def test_process_sqs_batch_logs_carry_each_records_correlation_id(
    runtime: Runtime[FakeDeps], log_stream: io.StringIO
) -> None:
    first, second = ingested("a" * 32), ingested("b" * 32)
    event = sqs_event(record("m1", body_of(first)), record("m2", body_of(second)))

    runtime.process_sqs_batch(event, Handler(None, TransientError("blip")), accepted=ACCEPTED)

    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    by_message = {line["message_id"]: line for line in lines if "message_id" in line}
    assert by_message["m1"]["correlation_id"] == "a" * 32
    assert by_message["m1"]["message"] == "record processed"
    assert by_message["m2"]["correlation_id"] == "b" * 32
    assert by_message["m2"]["level"] == "WARNING"


def test_runtime_run_with_deps_returns_the_result(deps: FakeDeps) -> None:
    rt: Runtime[FakeDeps] = Runtime(Opener(deps))

    async def count_objects(got: FakeDeps) -> int:
        return len(got.objects.objects)

    deps.objects.put("b", "k", b"x")
    try:
        assert rt.run_with_deps(count_objects) == 1
    finally:
        rt.close()


# ------------------------------------------------------------------- concurrency within a batch


def sized(file_id: str, size_bytes: int) -> Envelope[FileIngestedV1]:
    envelope = ingested(file_id)
    return Envelope.wrap(
        envelope.data.model_copy(update={"size_bytes": size_bytes}), correlationid=file_id
    )


class InFlight:
    """A handle_one that yields to the loop while 'waiting for I/O' and records which records
    were running at the same time."""

    def __init__(self, fail: dict[str, BaseException] | None = None) -> None:
        self.running: set[str] = set()
        self.peak = 0
        self.company: dict[str, set[str]] = {}
        self.fail = fail or {}

    async def __call__(self, envelope: Envelope[Any], deps: FakeDeps) -> None:
        me = envelope.data.file_id
        self.running.add(me)
        self.peak = max(self.peak, len(self.running))
        try:
            for _ in range(3):
                self.company.setdefault(me, set()).update(self.running - {me})
                await asyncio.sleep(0.001)
            if me in self.fail:
                raise self.fail[me]
        finally:
            self.running.discard(me)


def concurrent_runtime(
    deps: FakeDeps, log_stream: io.StringIO, concurrency: Concurrency
) -> Runtime[FakeDeps]:
    logger = Logger(service=f"test-runtime-{uuid.uuid4().hex}", stream=log_stream)
    return Runtime(Opener(deps), dlq_url=DLQ, logger=logger, concurrency=concurrency)


def run_small_batch(rt: Runtime[FakeDeps]) -> tuple[dict[str, Any], InFlight]:
    """A full batch (BatchSize 10) of small files through `rt` (closed afterwards): the batch
    response and the handler that counted how many ran at once."""
    handler = InFlight()
    event = sqs_event(*(record(f"m{i}", body_of(ingested(f"{i:032x}"))) for i in range(10)))
    try:
        return rt.process_sqs_batch(event, handler, accepted=ACCEPTED), handler
    finally:
        rt.close()


def test_process_sqs_batch_small_records_run_concurrently_up_to_the_limit(
    deps: FakeDeps, log_stream: io.StringIO
) -> None:
    rt = concurrent_runtime(deps, log_stream, Concurrency(limit=3))
    response, handler = run_small_batch(rt)

    assert failures(response) == []
    assert handler.peak == 3
    assert len(handler.company) == 10


def test_process_sqs_batch_default_concurrency_runs_a_batch_of_small_files_at_once(
    deps: FakeDeps, log_stream: io.StringIO
) -> None:
    # GIVEN the defaults (no SLUICE_* variables) and a full batch (BatchSize 10) of small files
    rt = concurrent_runtime(deps, log_stream, Concurrency.from_env({}))
    response, handler = run_small_batch(rt)

    # THEN all ten wait for their endpoints together: one round of waiting, not three
    assert failures(response) == []
    assert handler.peak == 10


def test_process_sqs_batch_running_inputs_stay_within_the_budget(
    deps: FakeDeps, log_stream: io.StringIO
) -> None:
    # GIVEN ten seats but room for the inputs of three 600-byte files at a time
    rt = concurrent_runtime(
        deps, log_stream, Concurrency(limit=10, max_bytes=1000, budget_bytes=2000)
    )
    handler = InFlight()
    event = sqs_event(*(record(f"m{i}", body_of(sized(f"{i:032x}", 600))) for i in range(8)))
    try:
        response = rt.process_sqs_batch(event, handler, accepted=ACCEPTED)
    finally:
        rt.close()

    assert failures(response) == []
    assert handler.peak == 3
    assert len(handler.company) == 8


def test_process_sqs_batch_large_record_runs_alone(deps: FakeDeps, log_stream: io.StringIO) -> None:
    rt = concurrent_runtime(deps, log_stream, Concurrency(limit=4, max_bytes=1000))
    handler = InFlight()
    sizes = [10, 10, 5000, 10, 10]
    ids = [f"{i:032x}" for i in range(len(sizes))]
    event = sqs_event(
        *(record(f"m{i}", body_of(sized(ids[i], size))) for i, size in enumerate(sizes))
    )
    try:
        response = rt.process_sqs_batch(event, handler, accepted=ACCEPTED)
    finally:
        rt.close()

    assert failures(response) == []
    large = ids[2]
    assert handler.company[large] == set()
    assert all(large not in others for others in handler.company.values())
    assert handler.company[ids[0]] == {ids[1]}  # the small ones before it did share
    assert handler.company[ids[3]] == {ids[4]}


def test_process_sqs_batch_concurrent_outcomes_reported_per_record_in_order(
    deps: FakeDeps, log_stream: io.StringIO
) -> None:
    rt = concurrent_runtime(deps, log_stream, Concurrency(limit=4))
    ids = [f"{i:032x}" for i in range(6)]
    handler = InFlight(
        fail={ids[1]: TransientError("blip"), ids[3]: PoisonInputError("bad"), ids[4]: KeyError()}
    )
    records = [record(f"m{i}", body_of(ingested(file_id))) for i, file_id in enumerate(ids)]
    records.insert(2, record("garbage", "{not json"))
    try:
        response = rt.process_sqs_batch(sqs_event(*records), handler, accepted=ACCEPTED)
    finally:
        rt.close()

    assert failures(response) == ["m1", "m4"]
    parked = [message.body for message in deps.parker.parked]
    assert sorted(parked) == sorted(["{not json", records[4]["body"]])
    assert handler.peak > 1


def test_process_sqs_batch_fifo_runs_in_order_whatever_the_concurrency(
    deps: FakeDeps, log_stream: io.StringIO
) -> None:
    rt = concurrent_runtime(deps, log_stream, Concurrency(limit=4))
    handler = InFlight(fail={"1" * 32: TransientError("blip")})
    fifo = {"attributes": {"MessageGroupId": "g1", "ApproximateReceiveCount": "1"}}
    event = sqs_event(*(record(f"m{i}", body_of(ingested(str(i) * 32)), **fifo) for i in range(4)))
    try:
        response = rt.process_sqs_batch(event, handler, accepted=ACCEPTED)
    finally:
        rt.close()

    assert failures(response) == ["m1", "m2", "m3"]
    assert handler.peak == 1
    assert set(handler.company) == {"0" * 32, "1" * 32}


def test_process_sqs_batch_concurrent_logs_carry_each_records_correlation_id(
    deps: FakeDeps, log_stream: io.StringIO
) -> None:
    rt = concurrent_runtime(deps, log_stream, Concurrency(limit=4))
    ids = [f"{i:032x}" for i in range(4)]
    logger = rt._logger

    async def chatty(envelope: Envelope[Any], got: FakeDeps) -> None:
        for step in range(3):
            logger.info("step", extra={"file": envelope.data.file_id, "step": step})
            await asyncio.sleep(0.001)

    event = sqs_event(*(record(f"m{i}", body_of(ingested(f))) for i, f in enumerate(ids)))
    try:
        rt.process_sqs_batch(event, chatty, accepted=ACCEPTED)
    finally:
        rt.close()

    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    steps = [line for line in lines if line["message"] == "step"]
    assert len(steps) == 12
    assert [s["file"] for s in steps[:4]] == ids  # they did interleave
    assert all(s["correlation_id"] == s["file"] for s in steps)
    assert "correlation_id" not in json.loads(_after_batch_line(logger, log_stream))


def _after_batch_line(logger: Logger, stream: io.StringIO) -> str:
    logger.info("after the batch")
    return stream.getvalue().splitlines()[-1]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {},
            Concurrency(
                limit=10,
                max_bytes=16 * 2**20,
                max_rows=200_000,
                budget_bytes=64 * 2**20,
                budget_rows=800_000,
            ),
        ),
        (
            {
                "SLUICE_RECORD_CONCURRENCY": "1",
                "SLUICE_CONCURRENT_RECORD_MAX_BYTES": "1024",
                "SLUICE_CONCURRENT_RECORD_MAX_ROWS": "10",
                "SLUICE_CONCURRENT_INPUT_BYTES": "4096",
                "SLUICE_CONCURRENT_INPUT_ROWS": "40",
            },
            Concurrency(limit=1, max_bytes=1024, max_rows=10, budget_bytes=4096, budget_rows=40),
        ),
    ],
)
def test_concurrency_from_env_reads_defaults_and_overrides(
    env: dict[str, str], expected: Concurrency
) -> None:
    assert Concurrency.from_env(env) == expected


@pytest.mark.parametrize("value", ["0", "-2", "four"])
def test_concurrency_from_env_not_a_positive_integer_raises(value: str) -> None:
    with pytest.raises(ValueError, match="SLUICE_RECORD_CONCURRENCY"):
        Concurrency.from_env({"SLUICE_RECORD_CONCURRENCY": value})


def test_concurrency_is_small_by_bytes_then_rows_unknown_is_large() -> None:
    limits = Concurrency(limit=4, max_bytes=100, max_rows=5)
    validated = FileValidatedV1(
        file_id=FILE_ID,
        dataset=DatasetRef(name="orders", version=1),
        bucket="sluice-raw",
        key="orders/a.csv",
        staged_prefix="s3://sluice-work/stage/x/validated/",
        bucket_count=1,
        rows_in=1_000_000,
        rows_valid=1_000_000,
        rows_quarantined=0,
        bytes_in=50,
        object_created_at=datetime(2024, 1, 15, tzinfo=UTC),
    )

    assert limits.is_small(sized(FILE_ID, 100))
    assert not limits.is_small(sized(FILE_ID, 101))
    assert limits.is_small(Envelope.wrap(validated, correlationid=FILE_ID))  # bytes win
    no_size = cast("Envelope[Any]", SimpleNamespace(data=SimpleNamespace(file_id=FILE_ID)))
    assert not limits.is_small(no_size)
    metadata_only = Concurrency(limit=4, max_bytes=100, metadata_only=True)
    assert metadata_only.is_small(sized(FILE_ID, 10**9))
    assert metadata_only.is_small(no_size)


def test_concurrency_weight_is_the_share_of_the_budget_whole_for_large_or_unknown() -> None:
    limits = Concurrency(limit=10, max_bytes=100, max_rows=5, budget_bytes=400, budget_rows=20)
    no_size = cast("Envelope[Any]", SimpleNamespace(data=SimpleNamespace(file_id=FILE_ID)))

    assert limits.weight(sized(FILE_ID, 100)) == 250_000
    assert limits.weight(sized(FILE_ID, 1)) == 2_500
    assert limits.weight(sized(FILE_ID, 0)) == 0
    assert limits.weight(sized(FILE_ID, 101)) == WEIGHT_UNITS
    assert limits.weight(no_size) == WEIGHT_UNITS
    assert (
        Concurrency(limit=4, max_bytes=100, metadata_only=True).weight(sized(FILE_ID, 10**9)) == 0
    )


class WorkerDied(BaseException):
    """Like a killed worker: nothing after it runs, no response is returned."""


def test_process_sqs_batch_concurrent_escaping_exception_fails_whole_batch_unwrapped(
    deps: FakeDeps, log_stream: io.StringIO
) -> None:
    rt = concurrent_runtime(deps, log_stream, Concurrency(limit=4))
    ids = [f"{i:032x}" for i in range(4)]
    handler = InFlight(fail={ids[2]: WorkerDied("killed")})
    event = sqs_event(*(record(f"m{i}", body_of(ingested(f))) for i, f in enumerate(ids)))
    try:
        with pytest.raises(WorkerDied, match="killed"):
            rt.process_sqs_batch(event, handler, accepted=ACCEPTED)
    finally:
        rt.close()


class Clock:
    """A Lambda context whose remaining time drops by `per_record_ms` each time a record runs."""

    def __init__(self, remaining_ms: int, per_record_ms: int) -> None:
        self.remaining = remaining_ms
        self.per_record_ms = per_record_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining

    async def handle(self, envelope: Envelope[Any], deps: FakeDeps) -> None:
        self.remaining -= self.per_record_ms


@pytest.mark.parametrize("limit", [1, 4])
def test_process_sqs_batch_near_the_timeout_starts_no_further_record(
    deps: FakeDeps, log_stream: io.StringIO, limit: int
) -> None:
    # GIVEN 5,000 ms left, a threshold of 2,000 ms, and records taking 2,000 ms each
    logger = Logger(service=f"test-runtime-{uuid.uuid4().hex}", stream=log_stream)
    rt: Runtime[FakeDeps] = Runtime(
        Opener(deps),
        dlq_url=DLQ,
        logger=logger,
        concurrency=Concurrency(limit=limit),
        min_remaining_ms=2000,
    )
    clock = Clock(5000, 2000)
    event = sqs_event(*(record(f"m{i}", body_of(ingested(f"{i:032x}"))) for i in range(4)))
    # WHEN a batch of four runs (in order, or admitted through the concurrent path)
    try:
        response = rt.process_sqs_batch(event, clock.handle, accepted=ACCEPTED, context=clock)
    finally:
        rt.close()
    # THEN two ran (they started with 5,000 and 3,000 ms left), the rest were not started and
    # are left for redelivery
    assert failures(response) == ["m2", "m3"]
    assert clock.remaining == 1000
    assert "too little time left" in log_stream.getvalue()


def test_process_sqs_batch_first_record_always_starts_even_at_zero_ms(
    runtime: Runtime[FakeDeps],
) -> None:
    clock = Clock(0, 0)
    event = sqs_event(record("m1", body_of(ingested())), record("m2", body_of(ingested("1" * 32))))
    response = runtime.process_sqs_batch(event, clock.handle, accepted=ACCEPTED, context=clock)
    assert failures(response) == ["m2"]
