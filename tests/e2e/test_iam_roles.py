"""The service roles' grants at work on the local runtime (`sluice local up`, IAM enforced): each
test drives one path a role's statements exist for and fails when a grant it needs is missing.

`make iam-proof` (tools/iam_proof.py) runs these tests against copies of the templates with one
statement removed at a time. Set `SLUICE_IAM_PROOF_PORT` to run them against a runtime that is
already up (the proof re-provisions one runtime per statement); otherwise the module brings up
its own from `deploy/` (or from `SLUICE_DEPLOY_DIR`, which the runtime honours).

Functions are invoked directly where a path needs one exact message (a duplicate after
COMPLETED, a notification for a missing key): the function still runs in its worker with its
own role, and the response says whether the record failed, so a missing grant shows at once
instead of after a visibility timeout.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest

from tests.processes import free_port, run_sluice

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "orders" / "orders-2024-03-01.csv"
PORT_ENV = "SLUICE_IAM_PROOF_PORT"
ACCOUNT = "123456789012"
# A 2 MB batch threshold and 1 MiB partitions, so a 3.5 MB file takes the batch path (the same
# parameters `make iam-proof` starts its runtime with).
RUNTIME_PARAMS = (
    "BatchThresholdBytes=2000000",
    "BatchPartitionBytes=1048576",
    "BatchMaxConcurrency=2",
)
ROLE_NAME_PREFIX = "sluice-dev-us-east-1-"
SERVICES = ("ingest", "validate", "transform", "output")
BATCH_ROLES = (
    "ingest",
    "batch-plan",
    "batch-run-partition",
    "batch-run-bucket",
    "batch-reconcile",
    "batch-workflow",
)


class Runtime:
    """Clients of a running local runtime, as the account root (unknown credentials)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"

    def client(self, service: str) -> Any:
        factory: Any = boto3.client
        return factory(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def name(self, suffix: str) -> str:
        parameter = self.client("ssm").get_parameter(Name=f"/sluice/dev/{suffix}")
        return str(parameter["Parameter"]["Value"])

    def file_by_key(self, key: str) -> dict[str, Any] | None:
        table = self.name("ledger-table-name")
        for page in self.client("dynamodb").get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                record = {k: next(iter(v.values())) for k, v in item.items()}
                if record.get("SK") == "META" and record.get("key") == key:
                    return record
        return None

    def denials_since(self, since: str, roles: tuple[str, ...]) -> list[dict[str, Any]]:
        """The runtime's recent denials (its last 50) at or after `since` (ISO time, UTC) to
        sessions of the Sluice roles `roles` (names without the `sluice-dev-us-east-1-`
        prefix)."""
        with urllib.request.urlopen(f"{self.endpoint}/_sluice/state", timeout=30) as response:
            state = orjson.loads(response.read())
        found = []
        for denial in state.get("iam", {}).get("recent_denials", []):
            # A session ARN: arn:aws:sts::<account>:assumed-role/<role name>/<session>
            parts = str(denial.get("principal", "")).split("/")
            role = parts[1].removeprefix(ROLE_NAME_PREFIX) if len(parts) > 2 else ""
            if role in roles and str(denial.get("time", "")) >= since:
                found.append(denial)
        return found

    def wait_terminal(
        self, key: str, timeout: float = 120, *, denied_roles: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """The file's ledger record once terminal. Fails at once when one of `denied_roles`
        (role names without the `sluice-dev-us-east-1-` prefix) is denied a call meanwhile: the
        file would only reach the DLQ or a failed run, minutes later."""
        since = datetime.now(UTC).isoformat(timespec="milliseconds")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.file_by_key(key)
            if record and record["status"] in {"COMPLETED", "FAILED", "QUARANTINED"}:
                return record
            if denied_roles:
                denied = self.denials_since(since, denied_roles)
                assert not denied, f"{key}: denied while in flight: {denied[:3]}"
            time.sleep(0.5)
        raise TimeoutError(f"{key} not terminal after {timeout}s: {self.file_by_key(key)}")

    def invoke_with_message(self, function: str, queue: str, body: str) -> tuple[Any, str]:
        """Invoke `function` with an SQS batch of one message `body`, as its trigger would.

        Returns:
            (the decoded response payload, the log tail).
        """
        queue_arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{queue}"
        record = {
            "messageId": str(uuid.uuid4()),
            "receiptHandle": "direct-invoke",
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": str(int(time.time() * 1000)),
            },
            "messageAttributes": {},
            "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": "us-east-1",
        }
        response = self.client("lambda").invoke(
            FunctionName=function,
            Payload=orjson.dumps({"Records": [record]}),
            LogType="Tail",
        )
        payload = orjson.loads(response["Payload"].read() or b"null")
        tail = base64.b64decode(response.get("LogResult", "")).decode("utf-8", "replace")
        assert "FunctionError" not in response, (payload, tail)
        return payload, tail


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """The runtime named by SLUICE_IAM_PROOF_PORT, or one of our own for this module."""
    attached = os.environ.get(PORT_ENV)
    if attached:
        yield Runtime(int(attached))
        return
    with detached_runtime(tmp_path_factory.mktemp("iam-roles")) as started:
        yield started


@contextmanager
def detached_runtime(state: Path) -> Iterator[Runtime]:
    """`sluice local up --detach` on a free port with the test parameters (no schedules, no
    prewarm), state in `state`; stopped with `local down` afterwards."""
    port = free_port()
    up = run_sluice(
        "local",
        "up",
        "--detach",
        "--no-schedules",
        "--no-prewarm",
        "--port",
        str(port),
        "--state-dir",
        str(state),
        *(arg for param in RUNTIME_PARAMS for arg in ("--param", param)),
        timeout=300,
        cwd=REPO,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield Runtime(port)
    finally:
        run_sluice("local", "down", "--port", str(port), timeout=120, cwd=REPO)


class Capture:
    """A queue that receives the bus's events matching a pattern (a rule of the test's own)."""

    def __init__(self, runtime: Runtime, pattern: dict[str, Any]) -> None:
        self.runtime = runtime
        suffix = uuid.uuid4().hex[:8]
        self.sqs, self.events = runtime.client("sqs"), runtime.client("events")
        self.bus = runtime.name("event-bus-name")
        self.rule = f"iam-roles-capture-{suffix}"
        self.url = self.sqs.create_queue(QueueName=f"iam-roles-capture-{suffix}")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        rule_arn = self.events.put_rule(
            Name=self.rule, EventBusName=self.bus, EventPattern=orjson.dumps(pattern).decode()
        )["RuleArn"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
        self.sqs.set_queue_attributes(
            QueueUrl=self.url, Attributes={"Policy": orjson.dumps(policy).decode()}
        )
        self.events.put_targets(
            Rule=self.rule, EventBusName=self.bus, Targets=[{"Id": "capture", "Arn": queue_arn}]
        )
        self.seen: list[dict[str, Any]] = []

    def wait_for(
        self, detail_type: str, file_id: str, count: int = 1, timeout: float = 60
    ) -> list[dict[str, Any]]:
        """The first `count` captured events of `detail_type` for `file_id` (raw bodies)."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                self.seen.append(orjson.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            found = [
                e
                for e in self.seen
                if e["detail-type"] == detail_type and _file_id_of(e) == file_id
            ]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {count} {detail_type} for {file_id}")

    def close(self) -> None:
        self.events.remove_targets(Rule=self.rule, EventBusName=self.bus, Ids=["capture"])
        self.events.delete_rule(Name=self.rule, EventBusName=self.bus)
        self.sqs.delete_queue(QueueUrl=self.url)


def _file_id_of(event: dict[str, Any]) -> str | None:
    detail = event.get("detail", {})
    data = detail.get("data", detail)
    return data.get("file_id") if isinstance(data, dict) else None


def upload_sample(runtime: Runtime, key: str) -> None:
    """Put the orders sample at `key` of the raw bucket."""
    runtime.client("s3").put_object(
        Bucket=runtime.name("raw-bucket-name"), Key=key, Body=SAMPLE.read_bytes()
    )


def test_realtime_file_completes_through_every_service_role(runtime: Runtime) -> None:
    # GIVEN an orders file landing in the raw bucket
    key = f"orders/iam-roles/{uuid.uuid4().hex}.csv"
    upload_sample(runtime, key)
    # WHEN ingest, validate, transform and output each run with their own role
    record = runtime.wait_terminal(key, denied_roles=SERVICES)
    # THEN the file completes, its rows balance and its manifest is in the processed bucket
    assert record["status"] == "COMPLETED", record
    assert int(record["rows_in"]) == int(record["rows_out"]) + int(record["rows_quarantined"])
    manifest = f"_manifests/dataset=orders/{record['file_id']}.json"
    body = runtime.client("s3").get_object(
        Bucket=runtime.name("processed-bucket-name"), Key=manifest
    )
    assert orjson.loads(body["Body"].read())["file_id"] == record["file_id"]


def test_staged_file_completes_through_every_service_role(runtime: Runtime, tmp_path: Path) -> None:
    from sluice.generate import generate

    # GIVEN a 250 kB orders file: real time (below the 2 MB batch threshold) but its rows too
    # many to travel in the facts (64 KiB of Arrow IPC at most), so each stage stages them
    src = tmp_path / "staged.csv"
    generate("orders", src, rows=3_000, bad_ratio=0.02, duplicate_ratio=0.01, seed=11)
    capture = Capture(
        runtime,
        {"detail-type": ["sluice.file.validated.v3", "sluice.file.transformed.v3"]},
    )
    try:
        key = f"orders/iam-roles/staged-{uuid.uuid4().hex}.csv"
        runtime.client("s3").put_object(
            Bucket=runtime.name("raw-bucket-name"), Key=key, Body=src.read_bytes()
        )
        # WHEN validate writes the staged rows, transform reads them and writes its own,
        # output reads those, each with its own role
        record = runtime.wait_terminal(key, denied_roles=SERVICES)
        # THEN the file completes with every row accounted for
        assert record["status"] == "COMPLETED", record
        assert int(record["rows_in"]) == int(record["rows_out"]) + int(record["rows_quarantined"])
        # AND its facts named staged objects, not inline rows
        file_id = str(record["file_id"])
        (validated,) = capture.wait_for("sluice.file.validated.v3", file_id)
        (transformed,) = capture.wait_for("sluice.file.transformed.v3", file_id)
        assert _data(validated)["staged_prefix"], _data(validated)
        assert _data(validated).get("inline") is None
        assert _data(transformed)["transformed_prefix"], _data(transformed)
        assert _data(transformed).get("inline") is None
    finally:
        capture.close()


def start_cold(runtime: Runtime) -> None:
    """Re-provision (idempotent) and recycle every function's workers, so validate and
    transform look at the bus's rules afresh (a warm one keeps its answer for a minute)."""
    request = urllib.request.Request(
        f"{runtime.endpoint}/_sluice/provision", data=b'{"recycle": true}', method="POST"
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read()


def _small_file_facts(
    runtime: Runtime, capture: Capture, tag: str, major: str
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Upload the sample to cold stages, see it COMPLETED with every role's denials checked,
    and return its file id and the `major` file.validated and file.transformed `capture` got."""
    start_cold(runtime)
    key = f"orders/iam-roles/{tag}-{uuid.uuid4().hex}.csv"
    upload_sample(runtime, key)
    record = runtime.wait_terminal(key, denied_roles=SERVICES)
    assert record["status"] == "COMPLETED", record
    file_id = str(record["file_id"])
    (validated,) = capture.wait_for(f"sluice.file.validated.{major}", file_id)
    (transformed,) = capture.wait_for(f"sluice.file.transformed.{major}", file_id)
    return file_id, validated, transformed


def test_small_file_travels_inline_past_a_pattern_rule_through_the_stage_roles(
    runtime: Runtime,
) -> None:
    # GIVEN a rule on the bus that receives every major of both facts with a pattern only
    # EventBridge can judge (a prefix: not an older-major subscriber), and cold stages
    capture = Capture(runtime, {"detail-type": [{"prefix": "sluice.file."}]})
    try:
        # WHEN validate and transform list the bus's rules and have the pattern tested, each
        # with its own role
        file_id, validated, transformed = _small_file_facts(runtime, capture, "inline", "v3")
        # THEN the small file's rows travelled in the v3 facts, which went out in v3 alone
        assert _data(validated).get("inline"), _data(validated)
        assert _data(transformed).get("inline"), _data(transformed)
        seen = {e["detail-type"] for e in capture.seen if _file_id_of(e) == file_id}
        assert not seen & {"sluice.file.validated.v1", "sluice.file.transformed.v1"}, seen
    finally:
        capture.close()


def test_older_major_pattern_subscriber_receives_a_small_files_v1_facts(runtime: Runtime) -> None:
    # GIVEN a team's rule written before v3, matching the v1 facts with prefixes, and cold stages
    capture = Capture(
        runtime,
        {
            "detail-type": [
                {"prefix": "sluice.file.validated.v1"},
                {"prefix": "sluice.file.transformed.v1"},
            ]
        },
    )
    try:
        # WHEN the small file goes through the pipeline
        _, validated, transformed = _small_file_facts(runtime, capture, "older", "v1")
        # THEN the team received both v1 facts, naming staged rows
        assert _data(validated)["staged_prefix"], _data(validated)
        assert _data(transformed)["transformed_prefix"], _data(transformed)
    finally:
        # Warm stages keep this rule's answer for a minute: later files are staged and
        # published in every major meanwhile, which no other test here forbids (the inline
        # test starts the stages cold).
        capture.close()


def test_duplicate_transformed_after_completed_republishes_processed(runtime: Runtime) -> None:
    # GIVEN a completed file, its file.transformed and file.processed captured from the bus
    capture = Capture(
        runtime,
        {"detail-type": ["sluice.file.transformed.v3", "sluice.file.processed.v1"]},
    )
    try:
        key = f"orders/iam-roles/{uuid.uuid4().hex}.csv"
        upload_sample(runtime, key)
        record = runtime.wait_terminal(key, denied_roles=SERVICES)
        assert record["status"] == "COMPLETED", record
        file_id = str(record["file_id"])
        (transformed,) = capture.wait_for("sluice.file.transformed.v3", file_id)
        (first,) = capture.wait_for("sluice.file.processed.v1", file_id)
        # WHEN the same file.transformed reaches output again (a duplicate, a DLQ redrive)
        payload, tail = runtime.invoke_with_message(
            "sluice-dev-output", "sluice-dev-output-queue", orjson.dumps(transformed).decode()
        )
        # THEN output re-reads the file's manifest and publishes file.processed again
        assert payload == {"batchItemFailures": []}, tail
        second = capture.wait_for("sluice.file.processed.v1", file_id, count=2)[1]
        assert _data(second)["manifest_uri"] == _data(first)["manifest_uri"]
        assert _data(second)["rows_out"] == _data(first)["rows_out"]
    finally:
        capture.close()


def _data(event: dict[str, Any]) -> dict[str, Any]:
    detail: dict[str, Any] = event["detail"]
    data: dict[str, Any] = detail.get("data", detail)
    return data


def test_notification_for_a_missing_key_is_missing_not_denied(runtime: Runtime) -> None:
    # GIVEN an S3 "Object Created" notification for a key that is not (or no longer) there
    raw = runtime.name("raw-bucket-name")
    key = f"orders/iam-roles/gone-{uuid.uuid4().hex}.csv"
    notification = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{raw}"],
        "detail": {
            "version": "0",
            "bucket": {"name": raw},
            "object": {"key": key, "size": 10, "etag": "0" * 32, "sequencer": "01"},
            "reason": "PutObject",
        },
    }
    # WHEN ingest handles it
    payload, tail = runtime.invoke_with_message(
        "sluice-dev-ingest", "sluice-dev-ingest-queue", orjson.dumps(notification).decode()
    )
    # THEN S3 answered 404 (ingest holds s3:ListBucket on the raw bucket): the record is done
    # with the outcome "missing", not retried as a permission error (403 without ListBucket)
    assert payload == {"batchItemFailures": []}, tail
    outcomes = [line.get("outcome") for line in _json_lines(tail) if line.get("key", key) == key]
    assert "missing" in outcomes, tail
    assert runtime.file_by_key(key) is None


def _json_lines(tail: str) -> list[dict[str, Any]]:
    lines = []
    for text in tail.splitlines():
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            lines.append(parsed)
    return lines


@pytest.mark.parametrize("service", SERVICES)
def test_malformed_message_is_parked_in_the_service_dlq(runtime: Runtime, service: str) -> None:
    # GIVEN a message that is not an event at all
    body = f"not an event {uuid.uuid4().hex}"
    # WHEN the service's function receives it
    payload, tail = runtime.invoke_with_message(
        f"sluice-dev-{service}", f"sluice-dev-{service}-queue", body
    )
    # THEN the function parks it in its DLQ itself (its role may send there) and reports the
    # record done; a refused SendMessage would hand it back for retries instead
    assert payload == {"batchItemFailures": []}, tail
    sqs = runtime.client("sqs")
    dlq = sqs.get_queue_url(QueueName=f"sluice-dev-{service}-dlq")["QueueUrl"]
    # Other messages may wait in the DLQ: each one received stays hidden for a while, so the
    # receives walk the whole queue.
    deadline = time.monotonic() + 30
    seen = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60
        ).get("Messages", [])
        seen += len(messages)
        ours = [m for m in messages if m["Body"] == body]
        if ours:
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=ours[0]["ReceiptHandle"])
            break
        assert time.monotonic() < deadline, f"{body!r} not among the {seen} DLQ messages"


def _register(runtime: Runtime, record: Any) -> None:
    import aioboto3

    from sluice_shared.aws.dynamodb import DynamoDbLedger

    async def register() -> None:
        session = aioboto3.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
        )
        async with session.client("dynamodb", endpoint_url=runtime.endpoint) as client:
            await DynamoDbLedger(client, runtime.name("ledger-table-name")).register_file(record)

    asyncio.run(register())


def test_raw_version_gone_before_validate_is_parked_not_denied(runtime: Runtime) -> None:
    from contracts.datasets import load_contract
    from contracts.envelope import Envelope, to_eventbridge_entry
    from contracts.events.file_ingested.v1.model import FileIngestedV1
    from contracts.types import DatasetRef
    from sluice_shared.keys import file_id_for
    from sluice_shared.ports import FileRecord
    from sluice_shared.stages import event_id

    # GIVEN a file ingest registered, whose raw version was deleted before validate ran (the
    # ingest rule is off while the object exists: the running pipeline would otherwise ingest
    # and park the file itself before this test's own invocation)
    raw = runtime.name("raw-bucket-name")
    s3, events = runtime.client("s3"), runtime.client("events")
    key = f"orders/iam-roles/version-gone-{uuid.uuid4().hex}.csv"
    body = SAMPLE.read_bytes()
    events.disable_rule(Name="sluice-dev-ingest", EventBusName="default")
    try:
        put = s3.put_object(Bucket=raw, Key=key, Body=body)
        version, etag = put["VersionId"], put["ETag"].strip('"')
        s3.delete_object(Bucket=raw, Key=key, VersionId=version)
    finally:
        events.enable_rule(Name="sluice-dev-ingest", EventBusName="default")
    file_id = file_id_for(raw, key, version, etag)
    dataset = DatasetRef(name="orders", version=load_contract("orders").version)
    _register(
        runtime,
        FileRecord(
            file_id=file_id,
            dataset=dataset.name,
            dataset_version=dataset.version,
            bucket=raw,
            key=key,
            version_id=version,
            etag=etag,
            size_bytes=len(body),
            correlation_id=file_id,
        ),
    )
    ingested = FileIngestedV1(
        file_id=file_id,
        dataset=dataset,
        bucket=raw,
        key=key,
        version_id=version,
        etag=etag,
        size_bytes=len(body),
        object_created_at=datetime.now(UTC),
        path="realtime",
    )
    envelope = Envelope.wrap(
        ingested, correlationid=file_id, id=event_id(file_id, FileIngestedV1.TYPE)
    )
    entry = to_eventbridge_entry(envelope, runtime.name("event-bus-name"))
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": ACCOUNT,
        "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "region": "us-east-1",
        "resources": [],
        "detail": orjson.loads(entry["Detail"]),
    }
    # WHEN validate handles its file.ingested
    payload, tail = runtime.invoke_with_message(
        "sluice-dev-validate", "sluice-dev-validate-queue", orjson.dumps(event).decode()
    )
    # THEN S3 answered 404 (validate holds s3:ListBucket on the raw bucket): the record is
    # parked as object_not_found, not retried as a permission error (403 without ListBucket)
    assert payload == {"batchItemFailures": []}, tail
    assert "object_not_found" in tail, tail
    # AND the ledger records the file FAILED for that reason
    record = runtime.file_by_key(key)
    assert record is not None
    assert record["status"] == "FAILED", record
    assert record["error_code"] == "object_not_found", record


def test_large_file_completes_through_the_batch_roles(runtime: Runtime, tmp_path: Path) -> None:
    from sluice.generate import generate

    # GIVEN a 3.5 MB orders file, above the 2 MB batch threshold
    src = tmp_path / "large.csv"
    generate("orders", src, rows=42_000, bad_ratio=0.02, duplicate_ratio=0.01, seed=7)
    key = f"orders/iam-roles/large-{uuid.uuid4().hex}.csv"
    runtime.client("s3").put_object(
        Bucket=runtime.name("raw-bucket-name"), Key=key, Body=src.read_bytes()
    )
    # WHEN ingest starts the batch workflow: plan, run_partition, run_bucket and reconcile each
    # with their own role, the state machine with its own
    record = runtime.wait_terminal(key, timeout=240, denied_roles=BATCH_ROLES)
    # THEN the run succeeds and completes the file with every row accounted for
    assert record["status"] == "COMPLETED", record
    assert int(record["rows_in"]) == int(record["rows_out"]) + int(record["rows_quarantined"])
    # (reconcile completes the file a few states before the execution ends)
    machine = runtime.name("batch-state-machine-arn")
    arn = f"{machine.replace(':stateMachine:', ':execution:')}:file-{record['file_id']}"
    sfn = runtime.client("stepfunctions")
    deadline = time.monotonic() + 60
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, execution
        time.sleep(0.5)
    assert execution["status"] == "SUCCEEDED", execution


def _put_probe(client: Any, bus: str, source: str, marker: str) -> str:
    """PutEvents one probe entry; "accepted", or the error code the bus answered."""
    from botocore.exceptions import ClientError

    detail = orjson.dumps({"marker": marker}).decode()
    entry = {"Source": source, "DetailType": "iam-roles.probe", "Detail": detail}
    try:
        response = client.put_events(Entries=[{**entry, "EventBusName": bus}])
    except ClientError as refused:
        return str(refused.response["Error"]["Code"])
    if response["FailedEntryCount"]:
        return str(response["Entries"][0].get("ErrorCode"))
    return "accepted"


def test_bus_takes_a_stage_source_only_from_its_role_and_a_team_source_from_the_account(
    runtime: Runtime,
) -> None:
    bus = runtime.name("event-bus-name")
    marker = uuid.uuid4().hex
    capture = Capture(runtime, {"source": ["acme.orders"], "detail-type": ["iam-roles.probe"]})
    try:
        # GIVEN the root (any unknown access key, as the AWS CLI's dummy keys) and the
        # validate function's own credentials
        root = runtime.client("events")
        with urllib.request.urlopen(
            f"{runtime.endpoint}/_sluice/credentials?name=sluice-dev-validate", timeout=30
        ) as response:
            creds = orjson.loads(response.read())
        factory: Any = boto3.client
        as_validate = factory(
            "events",
            endpoint_url=runtime.endpoint,
            region_name="us-east-1",
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        # THEN only the validate role may put sluice.validate; nobody may put another sluice.*
        assert "AccessDenied" in _put_probe(root, bus, "sluice.validate", marker)
        assert _put_probe(as_validate, bus, "sluice.validate", marker) == "accepted"
        assert "AccessDenied" in _put_probe(as_validate, bus, "sluice.ingest", marker)
        assert "AccessDenied" in _put_probe(root, bus, "sluice.attacker", marker)
        # AND a team's own source is accepted from the account and delivered to its rules
        assert _put_probe(root, bus, "acme.orders", marker) == "accepted"
        deadline = time.monotonic() + 30
        while not any(e.get("detail", {}).get("marker") == marker for e in capture.seen):
            assert time.monotonic() < deadline, capture.seen[-3:]
            for message in capture.sqs.receive_message(
                QueueUrl=capture.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                capture.seen.append(orjson.loads(message["Body"]))
    finally:
        capture.close()


def _contracts_with(tmp: Path, *extra: str) -> Path:
    """The checkout's data contracts plus a copy of `orders` under each name of `extra`."""
    from contracts.datasets.loader import DATASETS_DIR

    root = tmp / "datasets"
    for name in ("orders", "sensor_readings"):
        shutil.copytree(DATASETS_DIR / name, root / name)
    for name in extra:
        text = (DATASETS_DIR / "orders/v1.yaml").read_text("utf-8")
        (root / name / "lookups").mkdir(parents=True)
        (root / name / "v1.yaml").write_text(text.replace("name: orders", f"name: {name}"))
        shutil.copy(DATASETS_DIR / "orders/lookups/countries.csv", root / name / "lookups")
    return root


def test_dataset_published_while_running_completes_without_a_redeploy(
    runtime: Runtime, tmp_path: Path
) -> None:
    # GIVEN the runtime running with warm functions (a first orders file went through)
    orders_key = f"orders/iam-roles/{uuid.uuid4().hex}.csv"
    upload_sample(runtime, orders_key)
    orders = runtime.wait_terminal(orders_key, denied_roles=SERVICES)
    assert orders["status"] == "COMPLETED", orders
    # WHEN a new dataset's contract is published, functions left as they are
    name = f"returns_{uuid.uuid4().hex[:6]}"
    published = run_sluice(
        "--endpoint-url",
        runtime.endpoint,
        "contracts",
        "publish",
        "--datasets",
        "--datasets-dir",
        str(_contracts_with(tmp_path, name)),
        timeout=120,
        cwd=REPO,
    )
    assert published.returncode == 0, published.stdout + published.stderr
    assert name in published.stdout
    # ... and a file of that dataset lands at once
    key = f"{name}/iam-roles/{uuid.uuid4().hex}.csv"
    upload_sample(runtime, key)
    record = runtime.wait_terminal(key, denied_roles=SERVICES)
    # THEN every role reads the published contract: the file completes as the same rows did
    # under orders, and its output is the new dataset's
    assert record["status"] == "COMPLETED", record
    assert record["dataset"] == name
    assert (record["rows_out"], record["rows_quarantined"]) == (
        orders["rows_out"],
        orders["rows_quarantined"],
    )
    manifest = f"_manifests/dataset={name}/{record['file_id']}.json"
    body = runtime.client("s3").get_object(
        Bucket=runtime.name("processed-bucket-name"), Key=manifest
    )
    assert orjson.loads(body["Body"].read())["file_id"] == record["file_id"]


def test_tampered_published_contract_quarantines_the_file_as_contract_invalid(
    runtime: Runtime, tmp_path: Path
) -> None:
    from sluice_shared.published_contracts import publish_plan, sha256_hex

    # GIVEN contracts published with one file whose bytes differ from the manifest's sha256
    name = f"tampered_{uuid.uuid4().hex[:6]}"
    files, puts = publish_plan(_contracts_with(tmp_path, name))
    bad_key = f"_contracts/objects/{files[f'{name}/v1.yaml']}"
    s3, bucket = runtime.client("s3"), runtime.name("processed-bucket-name")
    for key, body in puts:
        if key == bad_key:
            body = body.replace(b"max_bad_ratio: ", b"max_bad_ratio:  ")
            assert sha256_hex(body) != files[f"{name}/v1.yaml"]
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    # WHEN a file of that dataset lands
    key = f"{name}/iam-roles/{uuid.uuid4().hex}.csv"
    upload_sample(runtime, key)
    # THEN it is refused, not retried: QUARANTINED contract_invalid naming the file
    record = runtime.wait_terminal(key, denied_roles=SERVICES)
    assert record["status"] == "QUARANTINED", record
    assert record["error_code"] == "contract_invalid", record
    assert f"{name}/v1.yaml: sha256" in str(record["error"]), record
