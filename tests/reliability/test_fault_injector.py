"""The fault injector itself, on real clients against a moto server: each kind of fault does what
it claims (not applied / applied-then-failed / throttled / delayed) and is counted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aioboto3
import boto3
import orjson
import pytest
from botocore.exceptions import ClientError

from sluice_shared.aws.errors import translate
from sluice_shared.errors import ThrottledError, TransientError
from sluice_shared.faults import FaultInjector, FaultRule, active, install_from_env, reset_active


def s3_client(endpoint: str) -> Any:
    factory: Any = boto3.client
    return factory("s3", endpoint_url=endpoint, region_name="us-east-1")


def keys(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_faults_error_before_call_is_not_applied(moto_endpoint: str) -> None:
    # GIVEN an S3 client whose first PutObject fails before it is sent
    client = s3_client(moto_endpoint)
    client.create_bucket(Bucket="bkt")
    injector = FaultInjector([FaultRule("s3", "PutObject", "error", times=1)])
    injector.attach(client)
    # WHEN two puts are made
    with pytest.raises(ClientError) as failed:
        client.put_object(Bucket="bkt", Key="first", Body=b"x")
    client.put_object(Bucket="bkt", Key="second", Body=b"x")
    # THEN the first was never applied, the error is a transient 503, and the fault is counted
    assert keys(client, "bkt") == ["second"]
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert isinstance(translate(failed.value), TransientError)
    assert injector.fired("s3", "PutObject") == 1


def test_faults_phantom_write_is_applied_then_reported_failed(moto_endpoint: str) -> None:
    client = s3_client(moto_endpoint)
    client.create_bucket(Bucket="bkt")
    injector = FaultInjector([FaultRule("s3", "PutObject", "phantom")]).attach(client)
    assert injector is client
    with pytest.raises(ClientError) as failed:
        client.put_object(Bucket="bkt", Key="k", Body=b"x")
    # the caller saw a 5xx, but the object exists: a retry would write it a second time
    assert isinstance(translate(failed.value), TransientError)
    assert keys(s3_client(moto_endpoint), "bkt") == ["k"]


@pytest.mark.parametrize(
    ("service", "operation", "call", "code"),
    [
        ("s3", "ListBuckets", lambda c: c.list_buckets(), "SlowDown"),
        (
            "dynamodb",
            "ListTables",
            lambda c: c.list_tables(),
            "ProvisionedThroughputExceededException",
        ),
        ("sqs", "ListQueues", lambda c: c.list_queues(), "ThrottlingException"),
    ],
)
def test_faults_throttle_answers_the_services_own_code(
    moto_endpoint: str, service: str, operation: str, call: Any, code: str
) -> None:
    factory: Any = boto3.client
    client = factory(service, endpoint_url=moto_endpoint, region_name="us-east-1")
    injector = FaultInjector([FaultRule(service, operation, "throttle", times=1)])
    injector.attach(client)
    with pytest.raises(ClientError) as throttled:
        call(client)
    assert throttled.value.response["Error"]["Code"] == code
    assert isinstance(translate(throttled.value), ThrottledError)
    call(client)  # `times=1`: the next call goes through
    assert injector.fired(service) == 1


def test_faults_fraction_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[bool]:
        injector = FaultInjector([FaultRule("s3", "*", "error", fraction=0.3)], seed=seed)
        return [injector._pick("s3", "PutObject", {"error"}) is not None for _ in range(200)]

    first, again, other = run(1), run(1), run(2)
    assert first == again
    assert first != other
    assert 30 <= sum(first) <= 90  # about 30% of 200


def test_faults_skip_and_times_bound_the_fired_calls() -> None:
    injector = FaultInjector([FaultRule("sqs", "SendMessage", "error", skip=2, times=3)])
    fired = [injector._pick("sqs", "SendMessage", {"error"}) is not None for _ in range(8)]
    assert fired == [False, False, True, True, True, False, False, False]
    assert injector.counters()[0] == {
        "service": "sqs",
        "operation": "SendMessage",
        "kind": "error",
        "seen": 8,
        "fired": 3,
    }


def test_faults_rule_with_bad_fraction_is_rejected() -> None:
    with pytest.raises(ValueError, match="fraction"):
        FaultRule("s3", fraction=1.5)
    with pytest.raises(ValueError, match="kind"):
        FaultInjector.from_spec({"rules": [{"service": "s3", "kind": "explode"}]})


async def test_faults_attach_to_aiobotocore_client_phantom_and_delay(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an aiobotocore client with a delay on ListBuckets and a phantom on PutObject, and
    # every sleep recorded (a slow machine alone cannot fake the delay)
    slept: list[float] = []
    blocked: list[float] = []
    real_sleep, real_async_sleep = time.sleep, asyncio.sleep

    def recording_sleep(delay: float) -> None:
        blocked.append(delay)
        real_sleep(delay)

    async def recording_async_sleep(delay: float, result: Any = None) -> Any:
        slept.append(delay)
        return await real_async_sleep(delay, result)

    monkeypatch.setattr(time, "sleep", recording_sleep)
    monkeypatch.setattr(asyncio, "sleep", recording_async_sleep)
    injector = FaultInjector(
        [
            FaultRule("s3", "ListBuckets", "delay", delay_s=0.2),
            FaultRule("s3", "PutObject", "phantom"),
        ]
    )
    session = aioboto3.Session(region_name="us-east-1")
    async with session.client("s3") as client:
        injector.attach(client)
        await client.create_bucket(Bucket="bkt")
        started = time.monotonic()
        slept.clear()
        await client.list_buckets()
        # the delay awaited (the event loop stayed free for other coroutines), never blocked it
        assert 0.2 in slept
        assert 0.2 not in blocked
        assert time.monotonic() - started >= 0.2
        with pytest.raises(ClientError):
            await client.put_object(Bucket="bkt", Key="k", Body=b"x")
    # THEN the write was applied although the caller saw it fail
    assert keys(s3_client(moto_endpoint), "bkt") == ["k"]
    assert injector.fired("s3", "ListBuckets") == 1
    assert injector.fired("s3", "PutObject") == 1


def test_faults_env_var_builds_one_shared_injector(moto_endpoint: str) -> None:
    reset_active()
    env = {"SLUICE_FAULTS": '{"seed": 3, "rules": [{"service": "s3", "kind": "error"}]}'}
    client = install_from_env(s3_client(moto_endpoint), env)
    with pytest.raises(ClientError):
        client.list_buckets()
    injector = active(env)
    assert injector is not None
    assert injector.fired("s3") == 1
    assert active({}) is None
    reset_active()


def _bus_with_queue(endpoint: str) -> tuple[Any, str]:
    """A custom bus whose every event lands in a queue; returns (sqs client, queue url)."""
    factory: Any = boto3.client
    events = factory("events", endpoint_url=endpoint, region_name="us-east-1")
    sqs = factory("sqs", endpoint_url=endpoint, region_name="us-east-1")
    events.create_event_bus(Name="bus")
    url = sqs.create_queue(QueueName="seen")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="all", EventBusName="bus", EventPattern='{"source": ["t"]}')
    events.put_targets(Rule="all", EventBusName="bus", Targets=[{"Id": "q", "Arn": arn}])
    return sqs, url


def _arrived(sqs: Any, url: str) -> list[str]:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return sorted(orjson.loads(m["Body"])["detail"]["n"] for m in got)


def _entries(count: int) -> list[dict[str, str]]:
    return [
        {"Source": "t", "DetailType": "d", "Detail": f'{{"n": "{n}"}}', "EventBusName": "bus"}
        for n in range(count)
    ]


@pytest.mark.parametrize("drop_all", [False, True])
def test_faults_drop_keeps_entries_off_the_bus_and_reports_them_failed_in_place(
    moto_endpoint: str, drop_all: bool
) -> None:
    # GIVEN a PutEvents client dropping the 2nd and 3rd entry (or every entry)
    sqs, url = _bus_with_queue(moto_endpoint)
    factory: Any = boto3.client
    events = factory("events", endpoint_url=moto_endpoint, region_name="us-east-1")
    rule = (
        FaultRule("events", "PutEvents", "drop")
        if drop_all
        else FaultRule("events", "PutEvents", "drop", skip=1, times=2)
    )
    injector = FaultInjector([rule])
    injector.attach(events)
    # WHEN four entries are put
    answer = events.put_events(Entries=_entries(4))
    # THEN the dropped ones never reached the bus and are reported failed at their positions
    failed = [n for n, e in enumerate(answer["Entries"]) if "ErrorCode" in e]
    expected = [0, 1, 2, 3] if drop_all else [1, 2]
    assert failed == expected
    assert answer["FailedEntryCount"] == len(expected)
    assert _arrived(sqs, url) == sorted({"0", "1", "2", "3"} - {str(n) for n in expected})
    assert [orjson.loads(e["Detail"])["n"] for e in injector.dropped] == [str(n) for n in expected]
    assert all("EventId" in e for n, e in enumerate(answer["Entries"]) if n not in expected)


async def test_faults_drop_on_aiobotocore_client(moto_endpoint: str) -> None:
    sqs, url = _bus_with_queue(moto_endpoint)
    injector = FaultInjector([FaultRule("events", "PutEvents", "drop", times=1)])
    session = aioboto3.Session(region_name="us-east-1")
    async with session.client("events") as client:
        injector.attach(client)
        answer = await client.put_events(Entries=_entries(2))
    assert answer["FailedEntryCount"] == 1
    assert "ErrorCode" in answer["Entries"][0]
    assert _arrived(sqs, url) == ["1"]
