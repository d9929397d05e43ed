"""Scenarios of time: a queue visibility timeout shorter than the processing (the message
reappears while the first attempt still runs), a key overwritten while its first version is
processed, and workers whose clocks disagree. Each ends reconciled: nothing lost, nothing
doubled, every file terminal (docs/guarantees.md, "Timing")."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow.parquet as pq
import pytest

from sluice_shared import clock
from sluice_shared.aws.s3 import S3ObjectStore
from sluice_shared.keys import StageKeys
from tests.e2e.harness import FakeContext, ledger_items, sqs_event
from tests.reliability.scenario import Rig, assert_reconciled

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sluice.generate import GroundTruth

KEY = "orders/2024/03/01/a.csv"
# The status a stage's claim moves a file into.
STEP = {"validate": "VALIDATING", "transform": "TRANSFORMING", "output": "WRITING"}


def history(rig: Rig, file_id: str) -> list[dict[str, Any]]:
    """The file's history steps in the ledger's own order (by sort key: time)."""
    items = rig.stack.client("dynamodb").query(
        TableName=rig.stack.table,
        KeyConditionExpression="PK = :pk AND begins_with(SK, :step)",
        ExpressionAttributeValues={":pk": {"S": f"FILE#{file_id}"}, ":step": {"S": "STEP#"}},
        ConsistentRead=True,
    )["Items"]
    return [
        {
            "sk": i["SK"]["S"],
            "at": i["at"]["S"],
            "to": i["to_status"]["S"],
            "from": i.get("from_status", {}).get("S"),
            "version": int(i["version"]["N"]),
        }
        for i in sorted(items, key=lambda i: i["SK"]["S"])
    ]


def waiting(rig: Rig, service: str) -> int:
    attrs = rig.stack.client("sqs").get_queue_attributes(
        QueueUrl=rig.stack.queues[service], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


def manifest(rig: Rig, file_id: str, dataset: str = "orders") -> dict[str, Any]:
    body = rig.stack.client("s3").get_object(
        Bucket=rig.stack.processed, Key=StageKeys(file_id, dataset).manifest
    )["Body"]
    loaded: dict[str, Any] = orjson.loads(body.read())
    return loaded


def order_ids(rig: Rig, file_id: str) -> list[str]:
    """The primary keys of every row a file wrote, from its manifest's Parquet objects."""
    s3, ids = rig.stack.client("s3"), []
    for obj in manifest(rig, file_id)["objects"]:
        data = s3.get_object(Bucket=rig.stack.processed, Key=obj["key"])["Body"].read()
        ids.extend(pq.read_table(io.BytesIO(data)).column("order_id").to_pylist())
    return sorted(map(str, ids))


# ------------------------------------------------------------- visibility timeout < processing


@dataclass
class Gate:
    """Holds one thread at its first S3 upload (after its claim, before any staged or output
    object) until released."""

    thread: threading.Thread | None = None
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    held: int = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = S3ObjectStore.upload_file
        gate = self

        async def upload_file(store: S3ObjectStore, *args: Any, **kwargs: Any) -> None:
            if threading.current_thread() is gate.thread and not gate.held:
                gate.held += 1
                gate.reached.set()
                await asyncio.to_thread(gate.release.wait, 120)
            await original(store, *args, **kwargs)

        monkeypatch.setattr(S3ObjectStore, "upload_file", upload_file)


def second_environment(rig: Rig, service: str) -> Any:
    """Another execution environment of `service` (its own module instance, runtime, loop and
    clients), as a second Lambda instance; the rig's own stays the pump's."""
    for name, value in rig.stack.env(service).items():
        rig.monkeypatch.setenv(name, value)
    spec = importlib.util.find_spec(f"sluice_{service}.handler")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("service", ["validate", "transform", "output"])
def test_scenario_visibility_timeout_shorter_than_processing_reappears_while_first_runs(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    # GIVEN a file waiting in `service`'s queue
    rig.start()
    rig.paused.add(service)
    truth = rig.upload_generated(tmp_path, KEY, seed=3)
    rig.pump(until=lambda: waiting(rig, service) >= 1, timeout=30)
    sqs, url = rig.stack.client("sqs"), rig.stack.queues[service]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    # AND a first environment that takes the message with a 1 s visibility timeout and is held
    # right after claiming the step, before it writes anything
    (message,) = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=1, AttributeNames=["All"]
    )["Messages"]
    slow = second_environment(rig, service)
    gate, answers = Gate(), []

    def first_attempt() -> None:
        try:
            answers.append(slow.lambda_handler(sqs_event([message], arn), FakeContext(service)))
        finally:
            runtime = getattr(slow, "runtime", None) or slow.service.runtime
            runtime.close()

    gate.thread = threading.Thread(target=first_attempt, name=f"slow-{service}")
    gate.install(monkeypatch)
    gate.thread.start()
    assert gate.reached.wait(60), "the first attempt never reached its first write"

    # WHEN the timeout expires while it still runs: the message reappears, another environment
    # takes it and the file completes
    rig.paused.clear()
    rig.settle(1)
    (record,) = ledger_items(rig.stack)
    file_id = str(record["file_id"])
    assert record["status"] == "COMPLETED"
    before = rig.output_snapshot()
    done_manifest = manifest(rig, file_id)
    # AND only then does the first attempt go on
    gate.release.set()
    gate.thread.join(120)
    assert not gate.thread.is_alive()

    # THEN the late attempt lost on the ledger (the file left its step): it reports its record
    # failed, so Lambda deletes nothing with its stale receipt handle; the message was already
    # deleted by the environment that finished, and nothing comes back
    (answer,) = answers
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == [message["MessageId"]]
    rig.settle(1)
    # AND both attempts claimed the step (the message really was processed twice at once)
    claims = [s for s in history(rig, file_id) if s["to"] == STEP[service]]
    assert len(claims) >= 2, claims
    # AND nothing was doubled or changed by the late attempt: one completion, the same Parquet
    # and manifest, every row exactly once
    assert [s["to"] for s in history(rig, file_id)].count("COMPLETED") == 1
    assert rig.output_snapshot() == before
    assert manifest(rig, file_id) == done_manifest
    assert_reconciled(rig.reconcile({KEY: truth}))


# ------------------------------------------------------- the same key overwritten mid-flight


@pytest.mark.parametrize(
    ("versioned", "overwritten_before"),
    [
        pytest.param(True, "validate", id="validate"),
        pytest.param(True, "output", id="output"),
        pytest.param(False, "validate", id="unversioned-validate"),
        pytest.param(False, "output", id="unversioned-output"),
    ],
)
def test_scenario_key_overwritten_while_first_version_processing_each_version_once(
    rig: Rig, tmp_path: Path, versioned: bool, overwritten_before: str
) -> None:
    # GIVEN a raw bucket with versions (as deployed) or without, and the first version of a key
    # on its way, held before `overwritten_before`
    rig.start()
    if versioned:
        rig.stack.client("s3").put_bucket_versioning(
            Bucket=rig.stack.raw, VersioningConfiguration={"Status": "Enabled"}
        )
    rig.paused.add(overwritten_before)
    truths: dict[str, GroundTruth] = {}
    truths["v1"] = rig.upload_generated(tmp_path, KEY, rows=200, seed=1)
    rig.pump(until=lambda: waiting(rig, overwritten_before) >= 1, timeout=30)
    (first,) = ledger_items(rig.stack)
    # WHEN the key is overwritten with other rows while the first version is in flight
    truths["v2"] = rig.upload_generated(tmp_path, KEY, rows=300, seed=2)
    rig.paused.clear()
    by_id = rig.settle(2)
    assert_reconciled(rig.reconcile())
    assert len(by_id) == 2
    older = by_id[str(first["file_id"])]
    newer = next(r for r in by_id.values() if r["file_id"] != first["file_id"])
    # (the two generated files differ, so rows read from the other version would show)
    assert truths["v1"].rows_total != truths["v2"].rows_total

    # THEN the newer version completes from its own bytes
    expected = [(newer, truths["v2"])]
    if versioned or overwritten_before == "output":
        # AND so does the older one, read by its version id (or read before the overwrite):
        # two files, each row of each version once
        expected.append((older, truths["v1"]))
    else:
        # AND without versions, the older version's bytes are gone before validate could read
        # them: the file fails (`object_not_found`) rather than taking the newer bytes, which
        # would have put the newer rows out twice
        assert (older["status"], older.get("error_code")) == ("FAILED", "object_not_found")
    for record, truth in expected:
        assert record["status"] == "COMPLETED"
        assert int(record["rows_in"]) == truth.rows_total
        assert int(record["rows_out"]) == truth.expected_good_keys
        ids = order_ids(rig, str(record["file_id"]))
        assert len(ids) == len(set(ids)) == truth.expected_good_keys


# ------------------------------------------------------------------------------- clock skew

# Each worker's clock against the true time (which S3 and EventBridge keep): ingest ahead,
# validate and output behind by more than the whole run takes, transform ahead.
SKEW = {
    "ingest": timedelta(minutes=2),
    "validate": timedelta(minutes=-5),
    "transform": timedelta(minutes=1),
    "output": timedelta(minutes=-10),
}


def skewed(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[datetime]]:
    """Give each service's worker its own clock (`sluice_shared.clock.now`, which every time a
    worker writes comes from); returns the times each worker's clock gave."""
    readings: dict[str, list[datetime]] = {service: [] for service in SKEW}
    running: list[str] = []

    def now() -> datetime:
        moment = datetime.now(UTC) + (SKEW[running[-1]] if running else timedelta(0))
        if running:
            readings[running[-1]].append(moment)
        return moment

    def worker(service: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        def run(event: dict[str, Any], context: Any) -> Any:
            running.append(service)
            try:
                return handler(event, context)
            finally:
                running.pop()

        return run

    monkeypatch.setattr(clock, "now", now)
    for service, handler in list(rig.handlers.items()):
        rig.handlers[service] = worker(service, handler)
    return readings


def test_scenario_clock_skew_between_workers_history_in_version_order_no_negative_latency(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN four workers whose clocks disagree by up to 12 minutes
    rig.start()
    readings = skewed(rig, monkeypatch)
    keys = (KEY, "orders/2024/03/02/b.csv")
    truths = {key: rig.upload_generated(tmp_path, key, seed=n) for n, key in enumerate(keys)}
    # WHEN the files go through
    by_id = rig.settle(len(truths))
    assert_reconciled(rig.reconcile(truths))
    # (the clocks really disagreed: ingest's ran ahead of output's by the whole skew)
    assert readings["ingest"]
    assert readings["output"]
    assert min(readings["ingest"]) - max(readings["output"]) > timedelta(minutes=11)

    for file_id, record in by_id.items():
        steps = history(rig, file_id)
        # THEN a file's history in the ledger's time order is its version order, and every
        # step is later than the one before, whichever clock wrote it
        assert [s["version"] for s in steps] == list(range(len(steps))), steps
        assert all(a["at"] < b["at"] for a, b in itertools.pairwise(steps)), steps
        assert steps[-1]["to"] == "COMPLETED"
        assert record["created_at"] <= record["updated_at"]
        # AND the completion is never before the object was created or the file's steps
        # before it: the end-to-end latency is not negative
        done = manifest(rig, file_id)
        created = datetime.fromisoformat(done["object_created_at"])
        completed = datetime.fromisoformat(done["completed_at"])
        assert completed >= created
        assert completed >= datetime.fromisoformat(steps[-2]["at"].replace("Z", "+00:00"))
