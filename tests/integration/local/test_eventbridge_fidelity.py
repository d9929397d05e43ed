"""EventBridge as AWS documents it, through boto3 against the moto server with the local
runtime's corrections (`sluice.local.moto_patches`, `sluice.local.events_patches`) and its rule
target dispatcher (`sluice.local.targets`). Each test names the AWS page it follows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sluice.local import moto_patches
from sluice.local.targets import TargetDispatcher, TargetThrottled

ACCOUNT = "123456789012"
REGION = "us-east-1"


class Hooks:
    """The dispatcher's Lambda and Step Functions hands: record, or refuse `throttle` times
    as Lambda's Invoke API does when throttled (429), which EventBridge retries."""

    def __init__(self) -> None:
        self.invoked: list[tuple[str, bytes]] = []
        self.started: list[tuple[str, str]] = []
        self.throttle = 0
        self.calls = 0

    def invoke(self, arn: str, payload: bytes) -> None:
        self.calls += 1
        if self.calls <= self.throttle:
            raise TargetThrottled("Rate Exceeded. (TooManyRequestsException)")
        self.invoked.append((arn, payload))

    def start(self, arn: str, payload: str) -> None:
        self.started.append((arn, payload))


class Aws:
    def __init__(self, endpoint: str) -> None:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        self.events: Any = session.client("events", endpoint_url=endpoint)
        self.sqs: Any = session.client("sqs", endpoint_url=endpoint)
        self.s3: Any = session.client("s3", endpoint_url=endpoint)

    def queue(self, name: str) -> tuple[str, str]:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        return url, arn

    def messages(self, url: str, wait_s: float = 0.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + wait_s
        while True:
            got = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if got or time.monotonic() >= deadline:
                return list(got)
            time.sleep(0.1)

    def bodies(self, url: str) -> list[str]:
        return [m["Body"] for m in self.messages(url)]


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
def aws(moto_endpoint: str, hooks: Hooks) -> Iterator[Aws]:
    undo = moto_patches.apply()
    dispatcher = TargetDispatcher(hooks.invoke, hooks.start, ACCOUNT, REGION)
    moto_patches.set_dispatcher(dispatcher)
    try:
        yield Aws(moto_endpoint)
    finally:
        moto_patches.set_dispatcher(None)
        dispatcher.close()
        undo()


# ---------------------------------------------------------------- InputTransformer

EC2_DETAIL = {"instance-id": "i-0123456789", "state": "RUNNING", "note": 'said "hi"\nthen left'}
PATHS = {
    "instance": "$.detail.instance-id",
    "state": "$.detail.state",
    "note": "$.detail.note",
    "missing": "$.detail.nothing",
}
TEMPLATES = {
    "simple-string": '"instance <instance> is in <state>"',
    "escaped-quotes": '"instance \\"<instance>\\" is in <state>"',
    "simple-json": '{"instance" : <instance>, "state": <state>}',
    "json-strings": '{"instance" : <instance>, "state": "<state>", '
    '"instanceStatus": "instance \\"<instance>\\" is in <state>"}',
    "json-mix": '{"instance" : <instance>, "state": [ 9, <state>, true ], "Transformed" : "Yes"}',
    "reserved": '{"ruleArn": <aws.events.rule-arn>, "ruleName": <aws.events.rule-name>, '
    '"event": <aws.events.event>, "full": <aws.events.event.json>, '
    '"at": <aws.events.event.ingestion-time>}',
    "reserved-string": '"<aws.events.rule-name> triggered"',
    "escaping": '{"note": <note>, "quoted": "note: <note>", "missing": <missing>}',
    "plain-text": "instance <instance> is in <state>",
}


def test_input_transformer_fills_templates_as_aws_documents(aws: Aws) -> None:
    # Follows https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
    # (the examples table and the predefined variables, with the doc's EC2 event).
    # GIVEN one rule whose targets are queues, one per documented template
    urls = {}
    targets = []
    for name, template in TEMPLATES.items():
        urls[name], queue_arn = aws.queue(f"tx-{name}")
        targets.append(
            {
                "Id": name,
                "Arn": queue_arn,
                "InputTransformer": {"InputPathsMap": PATHS, "InputTemplate": template},
            }
        )
    rule_arn = aws.events.put_rule(
        Name="example", EventPattern=json.dumps({"source": ["aws.ec2"]})
    )["RuleArn"]
    aws.events.put_targets(Rule="example", Targets=targets)
    # WHEN the EC2 state-change event is put
    before = datetime.now(UTC).replace(microsecond=0)
    aws.events.put_events(
        Entries=[
            {
                "Source": "aws.ec2",
                "DetailType": "EC2 Instance State-change Notification",
                "Resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
                "Detail": json.dumps(EC2_DETAIL),
            }
        ]
    )
    got = {name: aws.bodies(url)[0] for name, url in urls.items()}
    # THEN each output is the documented one: JSON templates stay valid JSON
    assert json.loads(got["simple-string"]) == "instance i-0123456789 is in RUNNING"
    assert json.loads(got["escaped-quotes"]) == 'instance "i-0123456789" is in RUNNING'
    assert json.loads(got["simple-json"]) == {"instance": "i-0123456789", "state": "RUNNING"}
    assert json.loads(got["json-strings"]) == {
        "instance": "i-0123456789",
        "state": "RUNNING",
        "instanceStatus": 'instance "i-0123456789" is in RUNNING',
    }
    assert json.loads(got["json-mix"]) == {
        "instance": "i-0123456789",
        "state": [9, "RUNNING", True],
        "Transformed": "Yes",
    }
    assert json.loads(got["reserved-string"]) == "example triggered"
    # quotes and newlines of a value are escaped, inside a string or not; a path that matched
    # nothing leaves the JSON valid
    assert json.loads(got["escaping"]) == {
        "note": EC2_DETAIL["note"],
        "quoted": f"note: {EC2_DETAIL['note']}",
        "missing": None,
    }
    assert got["plain-text"] == "instance i-0123456789 is in RUNNING"
    # the predefined variables: the rule's ARN and name, the event without `detail`, the whole
    # event, and the ISO 8601 time EventBridge received it
    reserved = json.loads(got["reserved"])
    assert reserved["ruleArn"] == rule_arn
    assert reserved["ruleName"] == "example"
    assert "detail" not in reserved["event"]
    assert reserved["event"]["detail-type"] == "EC2 Instance State-change Notification"
    assert reserved["full"]["detail"] == EC2_DETAIL
    assert {k: v for k, v in reserved["full"].items() if k != "detail"} == reserved["event"]
    received = datetime.strptime(reserved["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= received <= datetime.now(UTC)


# ---------------------------------------------------------------- PutEvents limits


def test_put_events_refuses_oversized_requests_and_non_object_detail(aws: Aws) -> None:
    # Follows https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html
    # (256 KB per entry, computed as eb-putevent-size.html says) and
    # API_PutEventsResultEntry.html (MalformedDetail).
    url, queue_arn = aws.queue("limits")
    aws.events.put_rule(Name="all", EventPattern=json.dumps({"source": ["app"]}))
    aws.events.put_targets(Rule="all", Targets=[{"Id": "q", "Arn": queue_arn}])
    big = json.dumps({"blob": "x" * 270_000})
    with pytest.raises(ClientError) as refused:
        aws.events.put_events(Entries=[{"Source": "app", "DetailType": "t", "Detail": big}])
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "over the limit" in refused.value.response["Error"]["Message"]
    # a Detail that is JSON but not an object is refused per entry; the others go through
    answer = aws.events.put_events(
        Entries=[
            {"Source": "app", "DetailType": "t", "Detail": "[1,2]"},
            {"Source": "app", "DetailType": "t", "Detail": '"text"'},
            {"Source": "app", "DetailType": "t", "Detail": '{"small": true}'},
        ]
    )
    assert answer["FailedEntryCount"] == 2
    first, second, third = answer["Entries"]
    assert first == {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
    assert second["ErrorCode"] == "MalformedDetail"
    assert "EventId" in third
    assert [json.loads(b)["detail"] for b in aws.bodies(url)] == [{"small": True}]
    # exactly at the limit is accepted: Source (3) + DetailType (1) + Detail = 262,144 bytes
    at_limit = json.dumps({"b": "x" * (262_144 - 4 - len(json.dumps({"b": ""})))})
    answer = aws.events.put_events(
        Entries=[{"Source": "app", "DetailType": "t", "Detail": at_limit}]
    )
    assert answer["FailedEntryCount"] == 0
    (delivered,) = aws.bodies(url)
    assert len(json.loads(delivered)["detail"]["b"]) > 262_000


# ---------------------------------------------------------------- TestEventPattern


def test_test_event_pattern_answers_as_a_rule_routes_and_refuses_an_incomplete_event(
    aws: Aws,
) -> None:
    # Follows https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_TestEventPattern.html
    # GIVEN a rule on a bus and an event of the documented shape
    aws.events.create_event_bus(Name="fidelity")
    url, arn = aws.queue("tep-routed")
    pattern = json.dumps(
        {"detail-type": [{"prefix": "order."}], "detail": {"n": [{"numeric": [">", 1]}]}}
    )
    aws.events.put_rule(Name="r", EventBusName="fidelity", EventPattern=pattern)
    aws.events.put_targets(Rule="r", EventBusName="fidelity", Targets=[{"Id": "q", "Arn": arn}])
    event = {
        "id": "1",
        "account": ACCOUNT,
        "source": "shop",
        "time": "2024-01-01T00:00:00Z",
        "region": REGION,
        "resources": [],
        "detail-type": "order.placed",
        "detail": {"n": 2},
    }
    # THEN TestEventPattern answers what routing does, for a match and a miss
    for n, routed in ((2, True), (1, False)):
        event["detail"] = {"n": n}
        answer = aws.events.test_event_pattern(EventPattern=pattern, Event=json.dumps(event))
        aws.events.put_events(
            Entries=[
                {
                    "Source": "shop",
                    "DetailType": "order.placed",
                    "Detail": json.dumps({"n": n}),
                    "EventBusName": "fidelity",
                }
            ]
        )
        assert answer["Result"] is routed
        assert bool(aws.messages(url, wait_s=1.0 if routed else 0.3)) is routed
    # AND an event without a required field, or a pattern that is not one, is refused
    incomplete = {k: v for k, v in event.items() if k != "account"}
    with pytest.raises(ClientError) as refused:
        aws.events.test_event_pattern(EventPattern=pattern, Event=json.dumps(incomplete))
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as invalid:
        aws.events.test_event_pattern(EventPattern='{"source": "x"}', Event=json.dumps(event))
    assert invalid.value.response["Error"]["Code"] == "InvalidEventPatternException"


# ---------------------------------------------------------------- S3 Object Deleted


def test_s3_object_deleted_names_reason_and_deletion_type(aws: Aws) -> None:
    # Follows https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventBridge.html
    # (Object Deleted: reason DeleteObject; deletion-type Permanently Deleted for an
    # unversioned object or a version deleted by id, Delete Marker Created otherwise).
    url, queue_arn = aws.queue("deleted")
    aws.events.put_rule(
        Name="deleted",
        EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Deleted"]}),
    )
    aws.events.put_targets(Rule="deleted", Targets=[{"Id": "q", "Arn": queue_arn}])
    for bucket in ("plain", "versioned"):
        aws.s3.create_bucket(Bucket=bucket)
        aws.s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
    aws.s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    aws.s3.put_object(Bucket="plain", Key="a.csv", Body=b"a")
    first = aws.s3.put_object(Bucket="versioned", Key="v.csv", Body=b"one")
    aws.s3.put_object(Bucket="versioned", Key="v.csv", Body=b"two")

    aws.s3.delete_object(Bucket="plain", Key="a.csv")
    marker = aws.s3.delete_object(Bucket="versioned", Key="v.csv")
    aws.s3.delete_object(Bucket="versioned", Key="v.csv", VersionId=first["VersionId"])

    events = [json.loads(body) for body in aws.bodies(url)]
    by_bucket: dict[tuple[str, str], dict[str, Any]] = {
        (e["detail"]["bucket"]["name"], e["detail"]["deletion-type"]): e["detail"] for e in events
    }
    assert len(events) == 3
    assert {d["reason"] for d in by_bucket.values()} == {"DeleteObject"}
    plain = by_bucket[("plain", "Permanently Deleted")]
    assert plain["object"]["key"] == "a.csv"
    assert "version-id" not in plain["object"]
    assert "size" not in plain["object"]
    created = by_bucket[("versioned", "Delete Marker Created")]
    assert created["object"]["version-id"] == marker["VersionId"]
    gone = by_bucket[("versioned", "Permanently Deleted")]
    assert gone["object"]["version-id"] == first["VersionId"]


def test_s3_multipart_upload_sends_one_object_created_with_its_reason(aws: Aws) -> None:
    # Follows https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventBridge.html (Object
    # Created: reason PutObject, POST Object, CopyObject or CompleteMultipartUpload): one
    # upload, one event, with the API that created the object.
    url, queue_arn = aws.queue("created")
    aws.events.put_rule(
        Name="created",
        EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"]}),
    )
    aws.events.put_targets(Rule="created", Targets=[{"Id": "q", "Arn": queue_arn}])
    aws.s3.create_bucket(Bucket="uploads")
    aws.s3.put_bucket_notification_configuration(
        Bucket="uploads", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    upload = aws.s3.create_multipart_upload(Bucket="uploads", Key="big.csv")
    part = aws.s3.upload_part(
        Bucket="uploads", Key="big.csv", UploadId=upload["UploadId"], PartNumber=1, Body=b"a,b\n"
    )
    aws.s3.complete_multipart_upload(
        Bucket="uploads",
        Key="big.csv",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    aws.s3.put_object(Bucket="uploads", Key="after.csv", Body=b"a")  # delivered after big.csv's

    details = [json.loads(body)["detail"] for body in aws.bodies(url)]
    assert [(d["object"]["key"], d["reason"]) for d in details] == [
        ("big.csv", "CompleteMultipartUpload"),
        ("after.csv", "PutObject"),
    ]


# ---------------------------------------------------------------- archive and replay


def test_archive_then_replay_delivers_the_window_to_the_bus_rules(aws: Aws) -> None:
    # Follows https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-archive.html and
    # eb-replay-archived-event.html: archived events between EventStartTime and EventEndTime
    # go back to the bus's rules (to FilterArns only, when given), marked with replay-name.
    url, queue_arn = aws.queue("replayed")
    other_url, other_arn = aws.queue("not-filtered")
    bus_arn = aws.events.create_event_bus(Name="orders")["EventBusArn"]
    for name, arn in (("to-queue", queue_arn), ("other", other_arn)):
        aws.events.put_rule(
            Name=name, EventBusName="orders", EventPattern=json.dumps({"source": ["shop"]})
        )
        aws.events.put_targets(Rule=name, EventBusName="orders", Targets=[{"Id": "q", "Arn": arn}])
    archive = aws.events.create_archive(ArchiveName="orders-archive", EventSourceArn=bus_arn)
    now = datetime.now(UTC)
    aws.events.put_events(
        Entries=[
            {
                "Source": "shop",
                "DetailType": "order",
                "Detail": json.dumps({"n": n}),
                "EventBusName": "orders",
                "Time": when,
            }
            for n, when in ((1, now - timedelta(hours=2)), (2, now), (3, now))
        ]
    )
    assert sorted(json.loads(b)["detail"]["n"] for b in aws.bodies(url)) == [1, 2, 3]
    aws.bodies(other_url)
    assert aws.events.describe_archive(ArchiveName="orders-archive")["EventCount"] == 3

    rule_arn = aws.events.describe_rule(Name="to-queue", EventBusName="orders")["Arn"]
    aws.events.start_replay(
        ReplayName="last-hour",
        EventSourceArn=archive["ArchiveArn"],
        EventStartTime=now - timedelta(hours=1),
        EventEndTime=now + timedelta(minutes=1),
        Destination={"Arn": bus_arn, "FilterArns": [rule_arn]},
    )

    replayed = [json.loads(b) for b in aws.bodies(url)]
    assert sorted(e["detail"]["n"] for e in replayed) == [2, 3]
    assert {e["replay-name"] for e in replayed} == {"last-hour"}
    assert aws.bodies(other_url) == []
    assert aws.events.describe_replay(ReplayName="last-hour")["State"] == "COMPLETED"
    # replayed events are not archived again
    assert aws.events.describe_archive(ArchiveName="orders-archive")["EventCount"] == 3


# ---------------------------------------------------------------- retries and DLQ


def _dlq_rule(aws: Aws, name: str, target_arn: str, retry: dict[str, int]) -> tuple[str, str]:
    dlq_url, dlq_arn = aws.queue(f"{name}-dlq")
    rule_arn = aws.events.put_rule(Name=name, EventPattern=json.dumps({"source": [name]}))[
        "RuleArn"
    ]
    aws.events.put_targets(
        Rule=name,
        Targets=[
            {
                "Id": "t",
                "Arn": target_arn,
                "RetryPolicy": retry,
                "DeadLetterConfig": {"Arn": dlq_arn},
            }
        ],
    )
    aws.events.put_events(Entries=[{"Source": name, "DetailType": "t", "Detail": '{"k": 1}'}])
    return dlq_url, rule_arn


def _attributes(message: dict[str, Any]) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}


FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f"


def test_throttled_target_is_retried_then_dead_lettered_after_maximum_retry_attempts(
    aws: Aws, hooks: Hooks
) -> None:
    # Follows https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html:
    # retried per RetryPolicy, then sent to the DLQ with RULE_ARN, TARGET_ARN, ERROR_CODE,
    # ERROR_MESSAGE, EXHAUSTED_RETRY_CONDITION and RETRY_ATTEMPTS.
    hooks.throttle = 100
    dlq_url, rule_arn = _dlq_rule(
        aws, "three", FUNCTION, {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}
    )
    (message,) = aws.messages(dlq_url, wait_s=20)
    assert hooks.calls == 3  # the first attempt and two retries
    assert json.loads(message["Body"])["detail"] == {"k": 1}
    assert _attributes(message) == {
        "RULE_ARN": rule_arn,
        "TARGET_ARN": FUNCTION,
        "ERROR_CODE": "THROTTLING",
        "ERROR_MESSAGE": "Rate Exceeded. (TooManyRequestsException)",
        "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
        "RETRY_ATTEMPTS": "2",
    }


def test_retries_stop_at_maximum_event_age_and_a_recovered_target_gets_the_event(
    aws: Aws, hooks: Hooks
) -> None:
    # Same page: MaximumEventAgeInSeconds bounds the retries (60 s of event age is one local
    # second: sluice.local.targets.TIME_SCALE); a target that recovers within the policy gets
    # the event once.
    hooks.throttle = 1_000
    dlq_url, _ = _dlq_rule(
        aws, "aged", FUNCTION, {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 60}
    )
    (message,) = aws.messages(dlq_url, wait_s=20)
    attributes = _attributes(message)
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumEventAgeInSeconds"
    assert 1 <= int(attributes["RETRY_ATTEMPTS"]) < 185
    assert hooks.invoked == []

    hooks.calls, hooks.throttle = 0, 2
    recovered_dlq, _ = _dlq_rule(aws, "recovers", FUNCTION, {"MaximumRetryAttempts": 5})
    deadline = time.monotonic() + 20
    while not hooks.invoked and time.monotonic() < deadline:
        time.sleep(0.05)
    ((arn, payload),) = hooks.invoked
    assert arn == FUNCTION
    assert json.loads(payload)["source"] == "recovers"
    assert aws.bodies(recovered_dlq) == []


def test_missing_target_is_dead_lettered_at_once_without_retries(aws: Aws, hooks: Hooks) -> None:
    # Same page: a target resource that no longer exists is not retried.
    missing = f"arn:aws:sqs:{REGION}:{ACCOUNT}:gone"
    dlq_url, _ = _dlq_rule(aws, "gone", missing, {"MaximumRetryAttempts": 185})
    (message,) = aws.messages(dlq_url)
    attributes = _attributes(message)
    assert attributes["ERROR_CODE"] == "RESOURCE_NOT_FOUND"
    assert attributes["RETRY_ATTEMPTS"] == "0"
    assert "EXHAUSTED_RETRY_CONDITION" not in attributes
