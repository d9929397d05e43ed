"""Request → accesses, from requests a real botocore client signs and sends: a `before-send`
hook captures each request and answers a canned response, so nothing leaves the process."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config
from multidict import CIMultiDict

from sluice.local.iam.ports import Access
from sluice.local.iam.requests import HttpRequest, MappedRequest, RequestMapper

ACCT = "123456789012"
REGION = "us-east-1"
KEY = "ASIAROLEKEY000000001"
MAPPER = RequestMapper(ACCT, REGION)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def to_http(prepared: AWSPreparedRequest) -> HttpRequest:
    url = urlsplit(prepared.url)
    body: Any = prepared.body
    if hasattr(body, "read"):
        position = body.tell()
        raw = body.read()
        body.seek(position)
    else:
        raw = body or b""
    if isinstance(raw, str):
        raw = raw.encode()
    headers = CIMultiDict[str]()
    for name, value in prepared.headers.items():
        headers[name] = value.decode() if isinstance(value, bytes) else value
    return HttpRequest(
        method=prepared.method,
        host=url.netloc,
        path=url.path or "/",
        query=url.query,
        headers=headers,
        body=raw,
    )


_SESSION = botocore.session.get_session()
_CLIENTS: dict[tuple[str, str], Any] = {}
_SENT: list[AWSPreparedRequest] = []


def _before_send(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
    _SENT.append(request)
    body = b"{}" if "json" in str(request.headers.get("Content-Type", "")) else b""
    return AWSResponse(request.url, 200, {}, _Raw(body))  # type: ignore[arg-type]


def _client(service: str, style: str) -> Any:
    client = _CLIENTS.get((service, style))
    if client is None:
        s3_config: Any = {"addressing_style": style}
        client = _SESSION.create_client(
            service,
            region_name=REGION,
            endpoint_url="http://127.0.0.1:4566" if style == "path" else "http://localhost:4566",
            aws_access_key_id=KEY,
            aws_secret_access_key="secret",
            config=Config(retries={"max_attempts": 1}, s3=s3_config),
        )
        client.meta.events.register("before-send", _before_send)  # type: ignore[arg-type]
        _CLIENTS[(service, style)] = client
    return client


def capture(service: str, call: Callable[[Any], Any], *, style: str = "path") -> HttpRequest:
    """The request `call(client)` sends, signed by a real botocore client with `KEY`."""
    _SENT.clear()
    # The canned answer need not parse: the request is what counts.
    with contextlib.suppress(Exception):
        call(_client(service, style))
    assert _SENT, "the client sent nothing"
    return to_http(_SENT[0])


def mapped(service: str, call: Callable[[Any], Any], **kwargs: Any) -> MappedRequest:
    result = MAPPER.map(capture(service, call, **kwargs))
    assert result.access_key_id == KEY
    return result


def pairs(result: MappedRequest) -> list[tuple[str, str]]:
    return [(a.action, a.resource) for a in result.accesses]


def only(result: MappedRequest) -> Access:
    assert len(result.accesses) == 1, result.accesses
    return result.accesses[0]


# ---------------------------------------------------------------- S3

B = "sluice-dev-raw"


@pytest.mark.parametrize("style", ["path", "virtual"])
def test_s3_get_object_both_addressing_styles(style: str) -> None:
    request = capture("s3", lambda c: c.get_object(Bucket=B, Key="orders/a b.csv"), style=style)
    assert request.host.startswith(B) is (style == "virtual")
    result = MAPPER.map(request)
    assert result.protocol == "rest-xml"
    assert pairs(result) == [("s3:GetObject", f"arn:aws:s3:::{B}/orders/a b.csv")]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda c: c.head_object(Bucket=B, Key="k"), ("s3:GetObject", f"arn:aws:s3:::{B}/k")),
        (
            lambda c: c.get_object(Bucket=B, Key="k", VersionId="v1"),
            ("s3:GetObjectVersion", f"arn:aws:s3:::{B}/k"),
        ),
        (
            lambda c: c.put_object(Bucket=B, Key="k", Body=b"x"),
            ("s3:PutObject", f"arn:aws:s3:::{B}/k"),
        ),
        (lambda c: c.delete_object(Bucket=B, Key="k"), ("s3:DeleteObject", f"arn:aws:s3:::{B}/k")),
        (
            lambda c: c.delete_object(Bucket=B, Key="k", VersionId="v"),
            ("s3:DeleteObjectVersion", f"arn:aws:s3:::{B}/k"),
        ),
        (
            lambda c: c.create_multipart_upload(Bucket=B, Key="k"),
            ("s3:PutObject", f"arn:aws:s3:::{B}/k"),
        ),
        (
            lambda c: c.upload_part(Bucket=B, Key="k", UploadId="u", PartNumber=1, Body=b"x"),
            ("s3:PutObject", f"arn:aws:s3:::{B}/k"),
        ),
        (
            lambda c: c.complete_multipart_upload(
                Bucket=B,
                Key="k",
                UploadId="u",
                MultipartUpload={"Parts": [{"ETag": "e", "PartNumber": 1}]},
            ),
            ("s3:PutObject", f"arn:aws:s3:::{B}/k"),
        ),
        (
            lambda c: c.abort_multipart_upload(Bucket=B, Key="k", UploadId="u"),
            ("s3:AbortMultipartUpload", f"arn:aws:s3:::{B}/k"),
        ),
        (
            lambda c: c.list_parts(Bucket=B, Key="k", UploadId="u"),
            ("s3:ListMultipartUploadParts", f"arn:aws:s3:::{B}/k"),
        ),
        (
            lambda c: c.get_object_tagging(Bucket=B, Key="k"),
            ("s3:GetObjectTagging", f"arn:aws:s3:::{B}/k"),
        ),
        (
            lambda c: c.put_object_tagging(
                Bucket=B, Key="k", VersionId="v", Tagging={"TagSet": []}
            ),
            ("s3:PutObjectVersionTagging", f"arn:aws:s3:::{B}/k"),
        ),
        (lambda c: c.head_bucket(Bucket=B), ("s3:ListBucket", f"arn:aws:s3:::{B}")),
        (lambda c: c.create_bucket(Bucket=B), ("s3:CreateBucket", f"arn:aws:s3:::{B}")),
        (lambda c: c.delete_bucket(Bucket=B), ("s3:DeleteBucket", f"arn:aws:s3:::{B}")),
        (lambda c: c.list_buckets(), ("s3:ListAllMyBuckets", "*")),
        (lambda c: c.get_bucket_policy(Bucket=B), ("s3:GetBucketPolicy", f"arn:aws:s3:::{B}")),
        (
            lambda c: c.put_bucket_policy(Bucket=B, Policy="{}"),
            ("s3:PutBucketPolicy", f"arn:aws:s3:::{B}"),
        ),
        (
            lambda c: c.delete_bucket_policy(Bucket=B),
            ("s3:DeleteBucketPolicy", f"arn:aws:s3:::{B}"),
        ),
        (
            lambda c: c.get_bucket_versioning(Bucket=B),
            ("s3:GetBucketVersioning", f"arn:aws:s3:::{B}"),
        ),
        (
            lambda c: c.put_bucket_versioning(
                Bucket=B, VersioningConfiguration={"Status": "Enabled"}
            ),
            ("s3:PutBucketVersioning", f"arn:aws:s3:::{B}"),
        ),
        (
            lambda c: c.get_bucket_notification_configuration(Bucket=B),
            ("s3:GetBucketNotification", f"arn:aws:s3:::{B}"),
        ),
        (
            lambda c: c.put_bucket_notification_configuration(
                Bucket=B, NotificationConfiguration={"EventBridgeConfiguration": {}}
            ),
            ("s3:PutBucketNotification", f"arn:aws:s3:::{B}"),
        ),
        (
            lambda c: c.get_bucket_location(Bucket=B),
            ("s3:GetBucketLocation", f"arn:aws:s3:::{B}"),
        ),
        (
            lambda c: c.list_multipart_uploads(Bucket=B),
            ("s3:ListBucketMultipartUploads", f"arn:aws:s3:::{B}"),
        ),
        (
            lambda c: c.get_bucket_encryption(Bucket=B),
            ("s3:GetEncryptionConfiguration", f"arn:aws:s3:::{B}"),
        ),
    ],
)
def test_s3_operation_maps_to_iam_action(
    call: Callable[[Any], Any], expected: tuple[str, str]
) -> None:
    assert pairs(mapped("s3", call)) == [expected]


def test_s3_list_objects_v2_carries_prefix_delimiter_max_keys() -> None:
    result = mapped(
        "s3", lambda c: c.list_objects_v2(Bucket=B, Prefix="orders/", Delimiter="/", MaxKeys=5)
    )
    access = only(result)
    assert (access.action, access.resource) == ("s3:ListBucket", f"arn:aws:s3:::{B}")
    assert access.context == {"s3:prefix": "orders/", "s3:delimiter": "/", "s3:max-keys": "5"}
    assert result.operation == "ListObjectsV2"


def test_s3_list_prefix_key_present_only_when_the_request_names_one() -> None:
    assert only(mapped("s3", lambda c: c.list_objects(Bucket=B))).context == {}
    empty = MAPPER.map(HttpRequest("GET", "127.0.0.1:4566", f"/{B}", "prefix=", {}))
    assert only(empty).context == {"s3:prefix": ""}


def test_s3_list_object_versions() -> None:
    access = only(mapped("s3", lambda c: c.list_object_versions(Bucket=B, Prefix="p/")))
    assert (access.action, access.context["s3:prefix"]) == ("s3:ListBucketVersions", "p/")


def test_s3_copy_object_needs_put_on_target_and_get_on_source() -> None:
    result = mapped(
        "s3",
        lambda c: c.copy_object(
            Bucket="dst",
            Key="to/k",
            CopySource={"Bucket": "src", "Key": "from/k", "VersionId": "v"},
        ),
    )
    assert pairs(result) == [
        ("s3:PutObject", "arn:aws:s3:::dst/to/k"),
        ("s3:GetObjectVersion", "arn:aws:s3:::src/from/k"),
    ]


def test_s3_upload_part_copy_reads_source() -> None:
    result = mapped(
        "s3",
        lambda c: c.upload_part_copy(
            Bucket="dst", Key="k", UploadId="u", PartNumber=1, CopySource="src/a&b.csv"
        ),
    )
    assert pairs(result) == [
        ("s3:PutObject", "arn:aws:s3:::dst/k"),
        ("s3:GetObject", "arn:aws:s3:::src/a&b.csv"),
    ]


def test_s3_delete_objects_needs_delete_per_key() -> None:
    result = mapped(
        "s3",
        lambda c: c.delete_objects(
            Bucket=B,
            Delete={"Objects": [{"Key": "a<&>.csv"}, {"Key": "b", "VersionId": "v2"}]},
        ),
    )
    assert pairs(result) == [
        ("s3:DeleteObject", f"arn:aws:s3:::{B}/a<&>.csv"),
        ("s3:DeleteObjectVersion", f"arn:aws:s3:::{B}/b"),
    ]


def test_s3_put_object_carries_encryption_header_keys() -> None:
    access = only(
        mapped(
            "s3",
            lambda c: c.put_object(Bucket=B, Key="k", Body=b"x", ServerSideEncryption="aws:kms"),
        )
    )
    assert access.context["s3:x-amz-server-side-encryption"] == "aws:kms"


def test_s3_presigned_url_names_the_key() -> None:
    client = _client("s3", "path")
    url = urlsplit(client.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "k"}))
    result = MAPPER.map(HttpRequest("GET", url.netloc, url.path, url.query, {}))
    assert result.access_key_id == KEY
    assert pairs(result) == [("s3:GetObject", f"arn:aws:s3:::{B}/k")]


def test_unsigned_request_has_no_key() -> None:
    result = MAPPER.map(HttpRequest("GET", "127.0.0.1:4566", f"/{B}/k", "", {}))
    assert result.access_key_id is None
    assert pairs(result) == [("s3:GetObject", f"arn:aws:s3:::{B}/k")]


# ---------------------------------------------------------------- SQS

QURL = f"http://127.0.0.1:4566/{ACCT}/sluice-dev-validate"
QARN = f"arn:aws:sqs:{REGION}:{ACCT}:sluice-dev-validate"


@pytest.mark.parametrize(
    ("call", "action"),
    [
        (lambda c: c.send_message(QueueUrl=QURL, MessageBody="x"), "sqs:SendMessage"),
        (
            lambda c: c.send_message_batch(
                QueueUrl=QURL, Entries=[{"Id": "1", "MessageBody": "x"}]
            ),
            "sqs:SendMessage",
        ),
        (lambda c: c.receive_message(QueueUrl=QURL), "sqs:ReceiveMessage"),
        (lambda c: c.delete_message(QueueUrl=QURL, ReceiptHandle="r"), "sqs:DeleteMessage"),
        (
            lambda c: c.delete_message_batch(
                QueueUrl=QURL, Entries=[{"Id": "1", "ReceiptHandle": "r"}]
            ),
            "sqs:DeleteMessage",
        ),
        (
            lambda c: c.change_message_visibility(
                QueueUrl=QURL, ReceiptHandle="r", VisibilityTimeout=0
            ),
            "sqs:ChangeMessageVisibility",
        ),
        (lambda c: c.get_queue_attributes(QueueUrl=QURL), "sqs:GetQueueAttributes"),
        (lambda c: c.purge_queue(QueueUrl=QURL), "sqs:PurgeQueue"),
    ],
)
def test_sqs_json_protocol_maps_queue_url_to_arn(call: Callable[[Any], Any], action: str) -> None:
    result = mapped("sqs", call)
    assert result.protocol == "json"
    assert pairs(result) == [(action, QARN)]


def test_sqs_queue_url_with_region_host() -> None:
    url = f"https://sqs.eu-west-1.amazonaws.com/{ACCT}/q"
    result = mapped("sqs", lambda c: c.send_message(QueueUrl=url, MessageBody="x"))
    assert pairs(result) == [("sqs:SendMessage", f"arn:aws:sqs:eu-west-1:{ACCT}:q")]


def test_sqs_name_operations_and_list() -> None:
    assert pairs(mapped("sqs", lambda c: c.get_queue_url(QueueName="q"))) == [
        ("sqs:GetQueueUrl", f"arn:aws:sqs:{REGION}:{ACCT}:q")
    ]
    assert pairs(mapped("sqs", lambda c: c.create_queue(QueueName="q"))) == [
        ("sqs:CreateQueue", f"arn:aws:sqs:{REGION}:{ACCT}:q")
    ]
    assert pairs(mapped("sqs", lambda c: c.list_queues())) == [("sqs:ListQueues", "*")]


def test_sqs_query_protocol() -> None:
    body = f"Action=SendMessage&Version=2012-11-05&QueueUrl={QURL}&MessageBody=x"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={KEY}/20260101/{REGION}/sqs/aws4_request, "
        "SignedHeaders=host, Signature=00",
    }
    result = MAPPER.map(HttpRequest("POST", "127.0.0.1:4566", "/", "", headers, body.encode()))
    assert result.protocol == "query"
    assert pairs(result) == [("sqs:SendMessage", QARN)]
    by_path = MAPPER.map(
        HttpRequest(
            "POST",
            "127.0.0.1:4566",
            f"/{ACCT}/sluice-dev-validate",
            "",
            headers,
            b"Action=ReceiveMessage",
        )
    )
    assert pairs(by_path) == [("sqs:ReceiveMessage", QARN)]


# ---------------------------------------------------------------- DynamoDB

T = f"arn:aws:dynamodb:{REGION}:{ACCT}:table/ledger"


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda c: c.get_item(TableName="ledger", Key={"pk": {"S": "a"}}), ("dynamodb:GetItem", T)),
        (
            lambda c: c.put_item(TableName="ledger", Item={"pk": {"S": "a"}}),
            ("dynamodb:PutItem", T),
        ),
        (
            lambda c: c.update_item(TableName="ledger", Key={"pk": {"S": "a"}}),
            ("dynamodb:UpdateItem", T),
        ),
        (
            lambda c: c.delete_item(TableName="ledger", Key={"pk": {"S": "a"}}),
            ("dynamodb:DeleteItem", T),
        ),
        (
            lambda c: c.query(
                TableName="ledger",
                IndexName="by-status",
                KeyConditionExpression="s = :s",
                ExpressionAttributeValues={":s": {"S": "x"}},
            ),
            ("dynamodb:Query", f"{T}/index/by-status"),
        ),
        (lambda c: c.scan(TableName="ledger"), ("dynamodb:Scan", T)),
        (lambda c: c.describe_table(TableName="ledger"), ("dynamodb:DescribeTable", T)),
        (lambda c: c.list_tables(), ("dynamodb:ListTables", "*")),
    ],
)
def test_dynamodb_table_and_index_arns(
    call: Callable[[Any], Any], expected: tuple[str, str]
) -> None:
    assert pairs(mapped("dynamodb", call)) == [expected]


def test_dynamodb_transact_write_needs_each_item_action() -> None:
    other = f"arn:aws:dynamodb:{REGION}:{ACCT}:table/other"
    result = mapped(
        "dynamodb",
        lambda c: c.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "ledger", "Item": {"pk": {"S": "a"}}}},
                {
                    "Update": {
                        "TableName": "ledger",
                        "Key": {"pk": {"S": "a"}},
                        "UpdateExpression": "SET a = :a",
                        "ExpressionAttributeValues": {":a": {"S": "1"}},
                    }
                },
                {"Delete": {"TableName": "other", "Key": {"pk": {"S": "b"}}}},
                {
                    "ConditionCheck": {
                        "TableName": "other",
                        "Key": {"pk": {"S": "c"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        ),
    )
    assert pairs(result) == [
        ("dynamodb:PutItem", T),
        ("dynamodb:UpdateItem", T),
        ("dynamodb:DeleteItem", other),
        ("dynamodb:ConditionCheckItem", other),
    ]


def test_dynamodb_transact_get_and_batches_per_table() -> None:
    result = mapped(
        "dynamodb",
        lambda c: c.transact_get_items(
            TransactItems=[{"Get": {"TableName": "ledger", "Key": {"pk": {"S": "a"}}}}]
        ),
    )
    assert pairs(result) == [("dynamodb:GetItem", T)]
    batch = mapped(
        "dynamodb",
        lambda c: c.batch_write_item(
            RequestItems={
                "ledger": [{"PutRequest": {"Item": {"pk": {"S": "a"}}}}],
                "other": [{"DeleteRequest": {"Key": {"pk": {"S": "b"}}}}],
            }
        ),
    )
    assert pairs(batch) == [
        ("dynamodb:BatchWriteItem", T),
        ("dynamodb:BatchWriteItem", f"arn:aws:dynamodb:{REGION}:{ACCT}:table/other"),
    ]
    get = mapped(
        "dynamodb",
        lambda c: c.batch_get_item(RequestItems={"ledger": {"Keys": [{"pk": {"S": "a"}}]}}),
    )
    assert pairs(get) == [("dynamodb:BatchGetItem", T)]


# ---------------------------------------------------------------- EventBridge

BUS = f"arn:aws:events:{REGION}:{ACCT}:event-bus"


def test_put_events_one_access_per_entry_bus_with_source_and_detail_type() -> None:
    result = mapped(
        "events",
        lambda c: c.put_events(
            Entries=[
                {
                    "Source": "sluice.validate",
                    "DetailType": "d1",
                    "Detail": "{}",
                    "EventBusName": "sluice-dev",
                },
                {"Source": "acme.orders", "DetailType": "d2", "Detail": "{}"},
                {"Source": "s", "DetailType": "d", "Detail": "{}", "EventBusName": f"{BUS}/other"},
            ]
        ),
    )
    assert result.protocol == "json"
    assert [(a.action, a.resource, dict(a.context)) for a in result.accesses] == [
        (
            "events:PutEvents",
            f"{BUS}/sluice-dev",
            {"events:source": "sluice.validate", "events:detail-type": "d1"},
        ),
        (
            "events:PutEvents",
            f"{BUS}/default",
            {"events:source": "acme.orders", "events:detail-type": "d2"},
        ),
        ("events:PutEvents", f"{BUS}/other", {"events:source": "s", "events:detail-type": "d"}),
    ]


def test_events_rule_operations_on_rule_arns() -> None:
    rule = f"arn:aws:events:{REGION}:{ACCT}:rule"
    assert pairs(
        mapped("events", lambda c: c.put_rule(Name="r", EventBusName="bus", EventPattern="{}"))
    ) == [("events:PutRule", f"{rule}/bus/r")]
    assert pairs(mapped("events", lambda c: c.describe_rule(Name="r"))) == [
        ("events:DescribeRule", f"{rule}/r")
    ]
    targets = mapped(
        "events",
        lambda c: c.put_targets(Rule="r", EventBusName="bus", Targets=[{"Id": "1", "Arn": QARN}]),
    )
    access = only(targets)
    assert (access.action, access.resource) == ("events:PutTargets", f"{rule}/bus/r")
    assert access.context == {"events:TargetArn": [QARN]}
    assert pairs(mapped("events", lambda c: c.describe_event_bus(Name="bus"))) == [
        ("events:DescribeEventBus", f"{BUS}/bus")
    ]


def test_events_list_rules_and_test_event_pattern_on_nothing() -> None:
    # Neither has resource-level permissions: a grant on a bus's rules does not allow them
    assert pairs(mapped("events", lambda c: c.list_rules(EventBusName="bus"))) == [
        ("events:ListRules", "*")
    ]
    assert pairs(mapped("events", lambda c: c.list_rules())) == [("events:ListRules", "*")]
    event = json.dumps({"id": "1", "detail-type": "d"})
    assert pairs(
        mapped("events", lambda c: c.test_event_pattern(EventPattern="{}", Event=event))
    ) == [("events:TestEventPattern", "*")]


# ---------------------------------------------------------------- SSM, KMS, Logs


def test_ssm_parameter_arns() -> None:
    param = f"arn:aws:ssm:{REGION}:{ACCT}:parameter"
    assert pairs(mapped("ssm", lambda c: c.get_parameter(Name="/sluice/dev/x"))) == [
        ("ssm:GetParameter", f"{param}/sluice/dev/x")
    ]
    assert pairs(mapped("ssm", lambda c: c.get_parameters(Names=["/a", "b:3"]))) == [
        ("ssm:GetParameters", f"{param}/a"),
        ("ssm:GetParameters", f"{param}/b"),
    ]
    assert pairs(mapped("ssm", lambda c: c.get_parameters_by_path(Path="/sluice/dev"))) == [
        ("ssm:GetParametersByPath", f"{param}/sluice/dev")
    ]
    assert pairs(mapped("ssm", lambda c: c.put_parameter(Name="p", Value="v", Type="String"))) == [
        ("ssm:PutParameter", f"{param}/p")
    ]
    assert pairs(mapped("ssm", lambda c: c.describe_parameters())) == [
        ("ssm:DescribeParameters", "*")
    ]


KEY_ID = "0b6e1c2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b"
KARN = f"arn:aws:kms:{REGION}:{ACCT}:key/{KEY_ID}"


def test_kms_key_resources_and_encryption_context() -> None:
    result = mapped(
        "kms",
        lambda c: c.generate_data_key(
            KeyId=KEY_ID, KeySpec="AES_256", EncryptionContext={"f": "1"}
        ),
    )
    access = only(result)
    assert (access.action, access.resource) == ("kms:GenerateDataKey", KARN)
    assert access.context == {"kms:EncryptionContext:f": "1", "kms:EncryptionContextKeys": ["f"]}
    alias = only(mapped("kms", lambda c: c.encrypt(KeyId="alias/data", Plaintext=b"x")))
    assert alias.resource == f"arn:aws:kms:{REGION}:{ACCT}:alias/data"
    assert alias.context["kms:RequestAlias"] == "alias/data"
    assert pairs(mapped("kms", lambda c: c.list_keys())) == [("kms:ListKeys", "*")]


def test_kms_decrypt_without_key_id_reads_the_local_ciphertext_header() -> None:
    blob = KEY_ID.encode() + b"\x00" * 40
    assert pairs(mapped("kms", lambda c: c.decrypt(CiphertextBlob=blob))) == [("kms:Decrypt", KARN)]
    assert pairs(mapped("kms", lambda c: c.decrypt(CiphertextBlob=b"not-a-key-id" * 4))) == [
        ("kms:Decrypt", "*")
    ]
    assert base64  # the blob travels base64-encoded in the JSON body


def test_logs_group_and_stream_arns() -> None:
    group = f"arn:aws:logs:{REGION}:{ACCT}:log-group:/aws/lambda/f"
    result = mapped(
        "logs",
        lambda c: c.put_log_events(
            logGroupName="/aws/lambda/f",
            logStreamName="s",
            logEvents=[{"timestamp": 1, "message": "m"}],
        ),
    )
    assert pairs(result) == [("logs:PutLogEvents", f"{group}:log-stream:s")]
    assert pairs(mapped("logs", lambda c: c.create_log_group(logGroupName="/aws/lambda/f"))) == [
        ("logs:CreateLogGroup", group)
    ]


# ---------------------------------------------------------------- SNS, STS, IAM (query)


def test_sns_publish_on_topic() -> None:
    topic = f"arn:aws:sns:{REGION}:{ACCT}:alerts"
    result = mapped("sns", lambda c: c.publish(TopicArn=topic, Message="m"))
    assert (result.protocol, pairs(result)) == ("query", [("sns:Publish", topic)])
    assert pairs(mapped("sns", lambda c: c.create_topic(Name="alerts"))) == [
        ("sns:CreateTopic", topic)
    ]


def test_sts_assume_role_on_role_arn_and_caller_identity() -> None:
    role = f"arn:aws:iam::{ACCT}:role/Output"
    result = mapped("sts", lambda c: c.assume_role(RoleArn=role, RoleSessionName="s1"))
    access = only(result)
    assert (access.action, access.resource) == ("sts:AssumeRole", role)
    assert access.context == {"sts:RoleSessionName": "s1"}
    assert pairs(mapped("sts", lambda c: c.get_caller_identity())) == [
        ("sts:GetCallerIdentity", "*")
    ]


def test_iam_read_operations() -> None:
    assert pairs(mapped("iam", lambda c: c.get_role(RoleName="Output"))) == [
        ("iam:GetRole", f"arn:aws:iam::{ACCT}:role/Output")
    ]
    assert pairs(mapped("iam", lambda c: c.list_roles())) == [("iam:ListRoles", "*")]


# ---------------------------------------------------------------- Step Functions, Lambda

SM = f"arn:aws:states:{REGION}:{ACCT}:stateMachine:batch"


def test_step_functions_operations() -> None:
    result = mapped("stepfunctions", lambda c: c.start_execution(stateMachineArn=SM, input="{}"))
    assert (result.service, result.protocol, result.json_version) == ("states", "json", "1.0")
    assert pairs(result) == [("states:StartExecution", SM)]
    execution = f"arn:aws:states:{REGION}:{ACCT}:execution:batch:e1"
    assert pairs(
        mapped("stepfunctions", lambda c: c.describe_execution(executionArn=execution))
    ) == [("states:DescribeExecution", execution)]
    assert pairs(
        mapped("stepfunctions", lambda c: c.send_task_success(taskToken="t", output="{}"))
    ) == [("states:SendTaskSuccess", "*")]
    assert pairs(mapped("stepfunctions", lambda c: c.list_state_machines())) == [
        ("states:ListStateMachines", "*")
    ]


FN = f"arn:aws:lambda:{REGION}:{ACCT}:function:sluice-dev-validate"


@pytest.mark.parametrize(
    ("call", "operation", "expected"),
    [
        (
            lambda c: c.invoke(FunctionName="sluice-dev-validate"),
            "Invoke",
            ("lambda:InvokeFunction", FN),
        ),
        (
            lambda c: c.invoke(FunctionName=FN, Qualifier="live"),
            "Invoke",
            ("lambda:InvokeFunction", f"{FN}:live"),
        ),
        (
            lambda c: c.get_function(FunctionName="sluice-dev-validate"),
            "GetFunction",
            ("lambda:GetFunction", FN),
        ),
        (lambda c: c.list_functions(), "ListFunctions", ("lambda:ListFunctions", "*")),
        (
            lambda c: c.update_alias(FunctionName="sluice-dev-validate", Name="live"),
            "UpdateAlias",
            ("lambda:UpdateAlias", FN),
        ),
        (
            lambda c: c.list_aliases(FunctionName="sluice-dev-validate"),
            "ListAliases",
            ("lambda:ListAliases", FN),
        ),
        (
            lambda c: c.get_function_configuration(FunctionName="sluice-dev-validate"),
            "GetFunctionConfiguration",
            ("lambda:GetFunctionConfiguration", FN),
        ),
    ],
)
def test_lambda_routes(
    call: Callable[[Any], Any], operation: str, expected: tuple[str, str]
) -> None:
    result = mapped("lambda", call)
    assert (result.protocol, result.operation) == ("rest-json", operation)
    assert pairs(result) == [expected]


SCHEMA_ARN = f"arn:aws:schemas:{REGION}:{ACCT}:schema/reg/acme.thing.counted.v1"


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda c: c.list_registries(), ("schemas:ListRegistries", "*")),
        (
            lambda c: c.describe_registry(RegistryName="reg"),
            ("schemas:DescribeRegistry", f"arn:aws:schemas:{REGION}:{ACCT}:registry/reg"),
        ),
        (
            lambda c: c.list_schemas(RegistryName="reg"),
            ("schemas:ListSchemas", f"arn:aws:schemas:{REGION}:{ACCT}:registry/reg"),
        ),
        (
            lambda c: c.describe_schema(RegistryName="reg", SchemaName="acme.thing.counted.v1"),
            ("schemas:DescribeSchema", SCHEMA_ARN),
        ),
        (
            lambda c: c.export_schema(
                RegistryName="reg", SchemaName="acme.thing.counted.v1", Type="JSONSchemaDraft4"
            ),
            ("schemas:ExportSchema", SCHEMA_ARN),
        ),
    ],
)
def test_schema_registry_reads_map_to_their_actions_and_arns(
    call: Callable[[Any], Any], expected: tuple[str, str]
) -> None:
    result = mapped("schemas", call)
    assert (result.service, result.protocol) == ("schemas", "rest-json")
    assert pairs(result) == [expected]


# ---------------------------------------------------------------- fallbacks


def test_unknown_json_operation_is_service_operation_on_star() -> None:
    result = mapped("dynamodb", lambda c: c.execute_statement(Statement="SELECT * FROM t"))
    assert pairs(result) == [("dynamodb:ExecuteStatement", "*")]


def test_unknown_service_is_named_not_allowed_silently() -> None:
    result = mapped("cloudformation", lambda c: c.list_stacks())
    assert pairs(result) == [("cloudformation:ListStacks", "*")]
    scheduler = mapped("scheduler", lambda c: c.list_schedules())
    assert scheduler.accesses[0].resource == "*"
    assert scheduler.accesses[0].action.startswith("scheduler:")


def test_malformed_json_body_maps_to_star() -> None:
    headers = {
        "X-Amz-Target": "DynamoDB_20120810.GetItem",
        "Content-Type": "application/x-amz-json-1.0",
    }
    result = MAPPER.map(HttpRequest("POST", "127.0.0.1:4566", "/", "", headers, b"{not json"))
    assert pairs(result) == [("dynamodb:GetItem", "*")]
    assert json  # bodies are JSON for these protocols
    assert io


def test_s3_unknown_bucket_subresource_is_named_not_a_listing() -> None:
    result = MAPPER.map(HttpRequest("GET", "127.0.0.1:4566", f"/{B}", "metadataTable", {}))
    assert pairs(result) == [("s3:GetBucketMetadataTable", f"arn:aws:s3:::{B}")]
    listing = MAPPER.map(HttpRequest("GET", "127.0.0.1:4566", f"/{B}", "prefix=&list-type=2", {}))
    assert only(listing).context == {"s3:prefix": ""}
    assert pairs(listing) == [("s3:ListBucket", f"arn:aws:s3:::{B}")]
