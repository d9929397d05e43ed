"""The moto corrections, against moto in-process (`mock_aws`: no server, no network)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import moto.core.utils as moto_core_utils
import moto.sqs.models as moto_sqs_models
import pytest
from moto import mock_aws
from moto.sqs.models import sqs_backends

from sluice.local import moto_patches
from sluice.local.targets import TargetDispatcher


class RecordingHooks:
    def __init__(self) -> None:
        self.invoked: list[tuple[str, bytes]] = []
        self.started: list[tuple[str, str]] = []

    def invoke(self, arn: str, payload: bytes) -> None:
        self.invoked.append((arn, payload))

    def start(self, arn: str, payload: str) -> None:
        self.started.append((arn, payload))


@pytest.fixture
def hooks() -> Iterator[RecordingHooks]:
    recorded = RecordingHooks()
    with mock_aws():
        undo = moto_patches.apply()
        moto_patches.set_dispatcher(
            TargetDispatcher(recorded.invoke, recorded.start, "123456789012", "us-east-1")
        )
        try:
            yield recorded
        finally:
            moto_patches.set_dispatcher(None)
            undo()


def _queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _bodies(sqs: Any, url: str) -> list[Any]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


# ---------------------------------------------------------------- SQS receive cost


class SqsClock:
    """moto's SQS clock, held still and moved by the test: visibility, delay and retention are
    decided by the clock's readings, never by how fast the machine happens to run. It counts its
    readings too, which is what the scan patch saves."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now_s = 1_700_000_000.0
        self.readings = 0
        self.tick_s = 0.0  # how far each reading moves the clock on (time passing mid-request)
        for module in (moto_core_utils, moto_sqs_models):
            monkeypatch.setattr(module, "unix_time", self._unix_time)
            monkeypatch.setattr(module, "unix_time_millis", self._unix_time_millis)

    def _unix_time(self, dt: Any = None) -> float:
        self.readings += 1
        self.now_s += self.tick_s
        return self.now_s

    def _unix_time_millis(self, dt: Any = None) -> float:
        return self._unix_time(dt) * 1000

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SqsClock:
    return SqsClock(monkeypatch)


def test_receive_at_depth_reads_the_clock_per_scan_not_per_message(
    hooks: RecordingHooks, clock: SqsClock
) -> None:
    # GIVEN 1,000 visible messages (moto unpatched reads the clock for every message of the
    # queue on every send and receive: quadratic filling, ≈ 1 s per receive at this depth)
    depth = 1000
    sqs = boto3.client("sqs", region_name="us-east-1")
    url, _ = _queue(sqs, "deep", VisibilityTimeout="300")
    clock.readings = 0
    for start in range(0, depth, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)],
        )
    # THEN filling read the clock a few times per message sent, not once per message queued
    assert clock.readings <= 10 * depth
    # WHEN 10 batches of 10 are received
    clock.readings = 0
    received = 0
    for _ in range(10):
        received += len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"])
    # THEN all 100 came back, each receive reading the clock a few times per message it
    # returned, not once per message of the queue (unpatched: ≥ depth readings per receive)
    assert received == 100
    assert clock.readings <= 10 * received
    assert clock.readings < depth


def test_receive_keeps_visibility_and_redrive_semantics(
    hooks: RecordingHooks, clock: SqsClock
) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq_url, dlq_arn = _queue(sqs, "dlq")
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url, _ = _queue(sqs, "work", VisibilityTimeout="30", RedrivePolicy=policy)
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    assert len(sqs.receive_message(QueueUrl=url)["Messages"]) == 1
    # in flight: invisible until the visibility timeout passes, however late we look
    clock.advance(29.9)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    clock.advance(0.2)
    assert len(sqs.receive_message(QueueUrl=url)["Messages"]) == 1
    clock.advance(30.1)
    # received maxReceiveCount times: the next receive moves it to the DLQ
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=dlq_url)["Messages"]] == ["poison"]


def test_receive_skips_delayed_and_expired_messages(hooks: RecordingHooks, clock: SqsClock) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url, _ = _queue(sqs, "delays", MessageRetentionPeriod="60")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=5)
    clock.advance(4.9)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    clock.advance(0.2)
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["later"]
    # a message past the queue's retention period is never delivered again
    sqs.send_message(QueueUrl=url, MessageBody="stale")
    clock.advance(61)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_queue_counts_of_one_answer_are_of_one_instant(
    hooks: RecordingHooks, clock: SqsClock
) -> None:
    # GIVEN a message in flight whose visibility timeout runs out while GetQueueAttributes is
    # answered (the clock moves 1 ms per reading; moto reads it once per count it rebuilds)
    sqs = boto3.client("sqs", region_name="us-east-1")
    url, _ = _queue(sqs, "expiring")
    sqs.send_message(QueueUrl=url, MessageBody="m")
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)
    (message,) = sqs_backends["123456789012"]["us-east-1"].queues["expiring"]._messages
    names: Any = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    clock.tick_s = 0.001
    seen = []
    for before_ms in range(40, -2, -1):
        clock.now_s = (message.visible_at - before_ms) / 1000
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        seen.append(tuple(int(counts[name]) for name in names))
    # THEN every answer counts the message exactly once: in flight, then visible, never neither
    # (unpatched: both counts 0 for the answers whose readings straddle the expiry)
    assert all(sum(pair) == 1 for pair in seen), seen
    assert seen[0] == (0, 1)
    assert seen[-1] == (1, 0)


# ---------------------------------------------------------------- S3 -> EventBridge


def test_s3_event_reaches_default_bus_only_with_aws_fields(hooks: RecordingHooks) -> None:
    # GIVEN a versioned bucket with EventBridge notifications and S3 rules on two buses
    s3 = boto3.client("s3", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    events = boto3.client("events", region_name="us-east-1")
    default_url, default_arn = _queue(sqs, "default-target")
    custom_url, custom_arn = _queue(sqs, "custom-target")
    events.create_event_bus(Name="custom")
    pattern = json.dumps({"source": ["aws.s3"]})
    for bus, arn in (("default", default_arn), ("custom", custom_arn)):
        events.put_rule(Name=f"s3-{bus}", EventBusName=bus, EventPattern=pattern)
        events.put_targets(Rule=f"s3-{bus}", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    s3.create_bucket(Bucket="raw")
    s3.put_bucket_versioning(Bucket="raw", VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket="raw", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    # WHEN two objects are put
    first = s3.put_object(Bucket="raw", Key="orders/a.csv", Body=b"abc")
    s3.put_object(Bucket="raw", Key="orders/b.csv", Body=b"def")
    # THEN only the default bus's rule saw them, shaped as AWS sends them
    got = _bodies(sqs, default_url)
    assert _bodies(sqs, custom_url) == []
    assert len(got) == 2
    event = next(e for e in got if e["detail"]["object"]["key"] == "orders/a.csv")
    assert event["detail-type"] == "Object Created"
    assert event["account"] == "123456789012"
    assert event["detail"]["reason"] == "PutObject"
    obj = event["detail"]["object"]
    assert obj["etag"] == first["ETag"].strip('"')
    assert obj["version-id"] == first["VersionId"]
    assert obj["size"] == 3
    sequencers = sorted(e["detail"]["object"]["sequencer"] for e in got)
    assert sequencers[0] != sequencers[1]


# ---------------------------------------------------------------- rule targets


def test_put_events_honours_state_input_and_non_sqs_targets(hooks: RecordingHooks) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    events = boto3.client("events", region_name="us-east-1")
    path_url, path_arn = _queue(sqs, "path")
    const_url, const_arn = _queue(sqs, "const")
    tx_url, tx_arn = _queue(sqs, "tx")
    off_url, off_arn = _queue(sqs, "off")
    tick_url, tick_arn = _queue(sqs, "tick")
    pattern = json.dumps({"source": ["app"]})
    events.put_rule(Name="on", EventPattern=pattern)
    events.put_targets(
        Rule="on",
        Targets=[
            {"Id": "path", "Arn": path_arn, "InputPath": "$.detail.order"},
            {"Id": "const", "Arn": const_arn, "Input": '{"fixed": true}'},
            {
                "Id": "tx",
                "Arn": tx_arn,
                "InputTransformer": {
                    "InputPathsMap": {"id": "$.detail.order.id", "src": "$.source"},
                    "InputTemplate": '{"order": "<id>", "from": "<src>"}',
                },
            },
            {"Id": "fn", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:f"},
            {"Id": "sm", "Arn": "arn:aws:states:us-east-1:123456789012:stateMachine:s"},
        ],
    )
    events.put_rule(Name="off", EventPattern=pattern, State="DISABLED")
    events.put_targets(Rule="off", Targets=[{"Id": "q", "Arn": off_arn}])
    events.put_rule(Name="tick", ScheduleExpression="rate(1 hour)")
    events.put_targets(Rule="tick", Targets=[{"Id": "q", "Arn": tick_arn}])

    response = events.put_events(
        Entries=[{"Source": "app", "DetailType": "t", "Detail": '{"order": {"id": "o1"}}'}]
    )

    assert response["FailedEntryCount"] == 0
    assert _bodies(sqs, path_url) == [{"id": "o1"}]
    assert _bodies(sqs, const_url) == [{"fixed": True}]
    assert _bodies(sqs, tx_url) == [{"order": "o1", "from": "app"}]
    assert _bodies(sqs, off_url) == []
    assert _bodies(sqs, tick_url) == []
    ((fn_arn, fn_payload),) = hooks.invoked
    assert fn_arn.endswith(":function:f")
    assert json.loads(fn_payload)["detail"] == {"order": {"id": "o1"}}
    ((sm_arn, sm_input),) = hooks.started
    assert sm_arn.endswith(":stateMachine:s")
    assert json.loads(sm_input)["account"] == "123456789012"


def test_failed_target_goes_to_its_dead_letter_queue(hooks: RecordingHooks) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    events = boto3.client("events", region_name="us-east-1")
    dlq_url, dlq_arn = _queue(sqs, "rule-dlq")
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["app"]}))
    missing = "arn:aws:sqs:us-east-1:123456789012:does-not-exist"
    events.put_targets(
        Rule="r", Targets=[{"Id": "q", "Arn": missing, "DeadLetterConfig": {"Arn": dlq_arn}}]
    )
    events.put_events(Entries=[{"Source": "app", "DetailType": "t", "Detail": "{}"}])
    messages = sqs.receive_message(QueueUrl=dlq_url, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(messages[0]["Body"])["source"] == "app"
    assert messages[0]["MessageAttributes"]["TARGET_ARN"]["StringValue"] == missing


# ---------------------------------------------------------------- DynamoDB serializer

_RICH_ITEM: dict[str, Any] = {
    "PK": {"S": "FILE#x"},
    "SK": {"S": "META"},
    "empty_s": {"S": ""},
    "n": {"N": "12.5"},
    "b": {"B": b"\x00\xffbin"},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2"]},
    "bs": {"BS": [b"x", b"\x00"]},
    "m": {
        "M": {
            "k": {"S": "v"},
            "deep": {"M": {"l": {"L": [{"N": "1"}, {"NULL": True}, {"BOOL": False}, {"M": {}}]}}},
        }
    },
    "l": {"L": []},
    "t": {"BOOL": True},
    "f": {"BOOL": False},
    "z": {"NULL": True},
    "em": {"M": {}},
}


def _dynamodb_reads(ddb: Any) -> list[Any]:
    key = {"PK": {"S": "FILE#x"}, "SK": {"S": "META"}}
    answers: list[Any] = [
        ddb.get_item(TableName="t", Key=key),
        ddb.query(
            TableName="t",
            KeyConditionExpression="PK = :p",
            ExpressionAttributeValues={":p": {"S": "FILE#x"}},
        ),
        ddb.scan(TableName="t"),
        ddb.batch_get_item(RequestItems={"t": {"Keys": [key]}}),
        ddb.transact_get_items(TransactItems=[{"Get": {"TableName": "t", "Key": key}}]),
        ddb.update_item(
            TableName="t",
            Key=key,
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "12.5"}},
            ReturnValues="ALL_NEW",
        ),
        ddb.describe_table(TableName="t")["Table"]["KeySchema"],
    ]
    for answer in answers:
        if isinstance(answer, dict):
            answer.pop("ResponseMetadata", None)
    return answers


def test_dynamodb_items_of_every_type_read_the_same_as_unpatched_moto() -> None:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        _fresh_table(ddb)
        ddb.put_item(TableName="t", Item=_RICH_ITEM)
        undo = moto_patches.apply()
        try:
            patched = _dynamodb_reads(ddb)
        finally:
            undo()
        unpatched = _dynamodb_reads(ddb)
    assert patched == unpatched
    assert patched[0]["Item"] == _RICH_ITEM


def test_apply_undo_restores_moto() -> None:
    from moto.core import responses
    from moto.dynamodb import responses as dynamodb_responses
    from moto.events.models import Rule
    from moto.sqs.models import Queue

    listing = responses.method_names_from_class  # type: ignore[attr-defined]
    before = (Queue.__dict__["messages"], Rule.send_to_targets)
    parse = getattr(dynamodb_responses, "create_condition_expression_parser")  # noqa: B009
    undo = moto_patches.apply()
    assert Queue.__dict__["messages"] is not before[0]
    assert getattr(dynamodb_responses, "create_condition_expression_parser") is not parse  # noqa: B009
    # The cached method listing answers what moto's own listing answers.
    from moto.dynamodb.responses import DynamoHandler

    cached = responses.method_names_from_class(DynamoHandler)  # type: ignore[attr-defined]
    assert set(cached) == set(listing(DynamoHandler))
    assert responses.method_names_from_class(DynamoHandler) is cached  # type: ignore[attr-defined]
    undo()
    assert (Queue.__dict__["messages"], Rule.send_to_targets) == before
    assert responses.method_names_from_class is listing  # type: ignore[attr-defined]
    assert getattr(dynamodb_responses, "create_condition_expression_parser") is parse  # noqa: B009


# ---------------------------------------------------------------- DynamoDB parsed conditions


def _conditional_writes(ddb: Any) -> list[Any]:
    """The ledger's conditional writes (version lock, status IN, attribute_not_exists), passing
    and failing, repeated with the same and with other values; and a filtered scan."""
    answers: list[Any] = []
    names = {"#status": "status", "#version": "version"}

    def attempt(call: Any, **kwargs: Any) -> None:
        try:
            answer = call(**kwargs)
            answer.pop("ResponseMetadata", None)
            answers.append(answer)
        except ddb.exceptions.ClientError as exc:
            answers.append(exc.response["Error"])
        except Exception as exc:  # moto's TransactionCanceled, ConditionalCheckFailed, ...
            answers.append(type(exc).__name__)

    for n in range(3):
        item = {"PK": {"S": f"F#{n}"}, "SK": {"S": "META"}, "status": {"S": "NEW"}}
        item["version"] = {"N": "0"}
        for _ in range(2):  # the second registration fails the same condition
            attempt(
                ddb.transact_write_items,
                TransactItems=[
                    {
                        "Put": {
                            "TableName": "t",
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(#pk)",
                            "ExpressionAttributeNames": {"#pk": "PK"},
                        }
                    }
                ],
            )
        for version, wanted in [(0, ["NEW"]), (0, ["NEW"]), (1, ["NEW", "RUNNING"]), (5, ["X"])]:
            values: dict[str, Any] = {":v": {"N": str(version)}}
            values.update({f":s{i}": {"S": s} for i, s in enumerate(wanted)})
            placeholders = ", ".join(f":s{i}" for i in range(len(wanted)))
            moved = dict(item, status={"S": "RUNNING"}, version={"N": str(version + 1)})
            attempt(
                ddb.put_item,
                TableName="t",
                Item=moved,
                ConditionExpression=f"#status IN ({placeholders}) AND #version = :v",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            values[":v"]["N"] = "999"  # the caller's dicts change after the call
    attempt(ddb.put_item, TableName="t", Item=item, ConditionExpression="#nope = :x")
    attempt(
        ddb.put_item,
        TableName="t",
        Item=item,
        ConditionExpression="#status = :x AND",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":x": {"S": "NEW"}},
    )
    for status in ("RUNNING", "NEW", "RUNNING"):
        attempt(
            ddb.scan,
            TableName="t",
            FilterExpression="#status = :x",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":x": {"S": status}},
        )
    attempt(ddb.scan, TableName="t")
    return answers


def _fresh_table(ddb: Any) -> None:
    if "t" in ddb.list_tables()["TableNames"]:
        ddb.delete_table(TableName="t")
    ddb.create_table(
        TableName="t",
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def test_dynamodb_conditional_writes_with_parsed_conditions_kept_answer_as_unpatched_moto() -> None:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        _fresh_table(ddb)
        undo = moto_patches.apply()
        try:
            patched = _conditional_writes(ddb)
        finally:
            undo()
        _fresh_table(ddb)
        unpatched = _conditional_writes(ddb)
    assert patched == unpatched
    # The run did pass and fail conditions (so both outcomes were compared).
    assert any(isinstance(a, dict) and "Code" in a for a in patched)
    assert sum(1 for a in patched if a == {}) >= 6


def test_cached_condition_parser_answers_as_moto_and_parses_same_inputs_once() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    parses: list[str | None] = []

    class CountingParser(ConditionExpressionParser):
        def parse(self) -> Any:
            parses.append(self.condition_expression)
            return super().parse()

    cached = moto_patches._caching_parser_class(CountingParser)
    expr = "#s IN (:a, :b) AND attribute_exists(#v) AND #v = :v"
    names = {"#s": "status", "#v": "version"}
    values: dict[str, Any] = {":a": {"S": "NEW"}, ":b": {"S": "RUNNING"}, ":v": {"N": "1"}}
    moto_parser = ConditionExpressionParser(expr, names, values)
    moto_tree = moto_parser.parse()
    first, again = cached(expr, names, values), cached(expr, dict(names), dict(values))
    trees = first.parse(), again.parse()
    assert trees[0] is trees[1]  # the second parse answered from the cache
    assert repr(trees[0]) == repr(moto_tree)
    for parser in (first, again):
        assert parser.expr_attr_names_found == moto_parser.expr_attr_names_found
        assert parser.expr_attr_values_found == moto_parser.expr_attr_values_found
    other = cached(expr, names, {**values, ":v": {"N": "2"}}).parse()
    assert other is not trees[0]
    binary = {":a": {"B": b"\x00"}, ":b": {"S": "x"}, ":v": {"N": "1"}}
    cached(expr, names, binary).parse()
    cached(expr, names, binary).parse()  # not JSON: moto's parser every time
    assert parses == [expr, expr, expr, expr]
    with pytest.raises(ValueError, match="Bad comparison"):
        cached("#s = ", names, values).parse()


def test_backend_for_host_kept_answers_as_unpatched_moto() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    hosts = [
        None,
        "moto_api",
        "dynamodb",
        "dynamodb.us-east-1.amazonaws.com",
        "events.eu-west-1.amazonaws.com",
        "sqs.us-east-1.amazonaws.com",
        "s3.amazonaws.com",
        "bucket.s3.us-east-1.amazonaws.com",
        "127.0.0.1:4566",
        "nothing.example.org",
    ]
    unpatched_app = DomainDispatcherApplication(create_backend_app)
    unpatched = [unpatched_app.get_backend_for_host(h) for h in hosts]
    undo = moto_patches.apply()
    try:
        app = DomainDispatcherApplication(create_backend_app)
        patched = [app.get_backend_for_host(h) for h in hosts]
        again = [app.get_backend_for_host(h) for h in hosts]
    finally:
        undo()
    assert patched == unpatched == again
    assert "dynamodb" in patched
    assert "s3" in patched


# ---------------------------------------------------------------- DynamoDB item construction


def _item_size_answers(ddb: Any) -> list[Any]:
    """Writes just under, at and over moto's item size limit, and a wide item read back."""
    answers: list[Any] = []
    key = {"PK": {"S": "F#1"}, "SK": {"S": "META"}}
    for pad in (404_987, 404_988, 404_989, 500_000):  # names and values: 12 bytes + pad
        try:
            ddb.put_item(TableName="t", Item={**key, "p": {"S": "x" * pad}})
            answers.append("ok")
        except ddb.exceptions.ClientError as exc:
            answers.append(exc.response["Error"])
    wide = {**key, **{f"a{i}": {"L": [{"M": {"at": {"N": str(i)}}}]} for i in range(120)}}
    ddb.put_item(TableName="t", Item=wide)
    answers.append(ddb.get_item(TableName="t", Key=key)["Item"] == wide)
    return answers


def test_dynamodb_item_size_limit_answers_as_unpatched_moto() -> None:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        _fresh_table(ddb)
        undo = moto_patches.apply()
        try:
            patched = _item_size_answers(ddb)
        finally:
            undo()
        _fresh_table(ddb)
        unpatched = _item_size_answers(ddb)
    assert patched == unpatched
    assert "ok" in patched
    assert any(isinstance(a, dict) and a["Code"] == "ValidationException" for a in patched)


def test_dynamodb_item_is_sized_once_per_attribute_not_per_insert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    sized = {"calls": 0}
    size = DynamoType.size

    def counting(self: Any) -> int:
        sized["calls"] += 1
        return size(self)

    monkeypatch.setattr(DynamoType, "size", counting)
    item = {"PK": {"S": "F#1"}, "SK": {"S": "META"}, **{f"a{i}": {"S": "v"} for i in range(200)}}
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        _fresh_table(ddb)
        undo = moto_patches.apply()
        try:
            sized["calls"] = 0
            ddb.put_item(TableName="t", Item=item)
        finally:
            undo()

    # moto's own check sizes every attribute already present at each insert: ~20,000 calls
    assert sized["calls"] < 2_000
