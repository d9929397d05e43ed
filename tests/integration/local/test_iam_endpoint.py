"""boto3 → the local endpoint (real socket, moto in process) → allowed or denied by the enforcer.

The principal and resource-policy stores are small in-test implementations of the ports: a
role's access key resolves to its session with the role's policies, any other key to root."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from sluice.local.endpoint import Endpoint
from sluice.local.iam.enforcer import Enforcer
from sluice.local.iam.ports import PolicyDocument, Principal
from sluice.local.runner import FunctionRunner
from tests.processes import free_port

ACCT = "123456789012"
REGION = "us-east-1"
ROLE_KEY = "ASIAOUTPUTROLE000001"
ROLE_ARN = f"arn:aws:iam::{ACCT}:role/Output"
SESSION_ARN = f"arn:aws:sts::{ACCT}:assumed-role/Output/sluice-dev-output"
ROOT = Principal(arn=f"arn:aws:iam::{ACCT}:root", account=ACCT, kind="root")


class Principals:
    def __init__(self) -> None:
        self.policies: list[dict[str, Any]] = []
        self.unsigned: Principal = ROOT

    def resolve(self, access_key_id: str | None) -> Principal:
        if access_key_id == ROLE_KEY:
            return Principal(SESSION_ARN, ACCT, "role", ROLE_ARN, tuple(self.policies))
        if access_key_id is None:
            return self.unsigned
        return ROOT


class ResourcePolicies:
    def __init__(self) -> None:
        self.by_arn: dict[str, PolicyDocument] = {}

    def policy_for(self, resource_arn: str) -> PolicyDocument | None:
        if resource_arn.startswith("arn:aws:s3:::"):
            resource_arn = resource_arn.split("/", 1)[0]
        return self.by_arn.get(resource_arn)


class Running:
    def __init__(self, tmp: Path, enforce: bool) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.principals = Principals()
        self.resources = ResourcePolicies()
        self.enforcer = Enforcer(self.principals, self.resources, account=ACCT, region=REGION)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.runner = FunctionRunner(tmp, self.url)

        async def sfn(target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            return 200, {"executionArn": f"{body.get('stateMachineArn')}:x", "startDate": 0}

        async def health(request: web.Request) -> web.StreamResponse:
            return web.json_response({"ok": True})

        self.endpoint = Endpoint(
            DomainDispatcherApplication(create_backend_app),
            self.runner,
            sfn,
            {"health": health},
            "127.0.0.1",
            self.port,
            enforcer=self.enforcer if enforce else None,
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.endpoint.start(), self.loop).result()

    def client(self, service: str, key: str = "AKIAUNKNOWNKEY000001") -> Any:
        factory: Any = boto3.client
        return factory(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key,
            aws_secret_access_key="secret",
            config=Config(retries={"max_attempts": 1}),
        )

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.close(), self.loop).result()
        asyncio.run_coroutine_threadsafe(self.endpoint.stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Running]:
    running = Running(tmp_path, enforce=True)
    try:
        yield running
    finally:
        running.close()


def grant(local: Running, *statements: dict[str, Any]) -> None:
    local.principals.policies = [{"Version": "2012-10-17", "Statement": list(statements)}]


def allow(action: Any, resource: Any = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def denied(call: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    return (
        error["Error"]["Code"],
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"]["Message"],
    )


def name() -> str:
    return f"iam-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- S3


def test_s3_role_outside_its_grant_is_denied_like_aws(local: Running) -> None:
    # GIVEN a bucket made by root and a role that may only write to it
    bucket = name()
    local.client("s3").create_bucket(Bucket=bucket)
    grant(local, allow(["s3:PutObject", "s3:AbortMultipartUpload"], f"arn:aws:s3:::{bucket}/*"))
    s3 = local.client("s3", ROLE_KEY)
    # WHEN it writes THEN allowed; WHEN it reads THEN AccessDenied 403 naming everything
    s3.put_object(Bucket=bucket, Key="processed/_manifests/f.json", Body=b"{}")
    code, status, message = denied(
        lambda: s3.get_object(Bucket=bucket, Key="processed/_manifests/f.json")
    )
    assert (code, status) == ("AccessDenied", 403)
    assert message == (
        f"User: {SESSION_ARN} is not authorized to perform: s3:GetObject on resource: "
        f'"arn:aws:s3:::{bucket}/processed/_manifests/f.json" because no identity-based '
        "policy allows the s3:GetObject action"
    )
    # AND root (any unknown key) still reads
    body = local.client("s3").get_object(Bucket=bucket, Key="processed/_manifests/f.json")
    assert body["Body"].read() == b"{}"


def test_s3_list_needs_list_bucket_with_prefix_condition(local: Running) -> None:
    bucket = name()
    local.client("s3").create_bucket(Bucket=bucket)
    grant(
        local,
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": "orders/*"}},
        },
    )
    s3 = local.client("s3", ROLE_KEY)
    assert s3.list_objects_v2(Bucket=bucket, Prefix="orders/x")["KeyCount"] == 0
    code, status, _ = denied(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="other/"))
    assert (code, status) == ("AccessDenied", 403)


def test_s3_delete_objects_checks_every_key(local: Running) -> None:
    bucket = name()
    local.client("s3").create_bucket(Bucket=bucket)
    grant(local, allow("s3:DeleteObject", f"arn:aws:s3:::{bucket}/tmp/*"))
    s3 = local.client("s3", ROLE_KEY)
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "tmp/a"}]})
    code, _, message = denied(
        lambda: s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": "tmp/a"}, {"Key": "keep/b"}]}
        )
    )
    assert code == "AccessDenied"
    assert f'"arn:aws:s3:::{bucket}/keep/b"' in message


def test_missing_key_is_403_without_list_bucket_and_404_with_it(local: Running) -> None:
    # GIVEN a role that may read objects but not list the bucket
    bucket = name()
    local.client("s3").create_bucket(Bucket=bucket)
    grant(local, allow("s3:GetObject", f"arn:aws:s3:::{bucket}/*"))
    s3 = local.client("s3", ROLE_KEY)
    # WHEN it reads a missing key THEN S3's answer is AccessDenied, as on AWS
    code, status, message = denied(lambda: s3.get_object(Bucket=bucket, Key="missing.csv"))
    assert (code, status) == ("AccessDenied", 403)
    assert f'perform: s3:ListBucket on resource: "arn:aws:s3:::{bucket}"' in message
    assert denied(lambda: s3.head_object(Bucket=bucket, Key="missing.csv"))[1] == 403
    # WHEN it may also list THEN the missing key is a 404
    grant(
        local,
        allow("s3:GetObject", f"arn:aws:s3:::{bucket}/*"),
        allow("s3:ListBucket", f"arn:aws:s3:::{bucket}"),
    )
    assert denied(lambda: s3.get_object(Bucket=bucket, Key="missing.csv"))[:2] == ("NoSuchKey", 404)
    assert denied(lambda: s3.head_object(Bucket=bucket, Key="missing.csv"))[1] == 404
    # AND root always sees the 404
    root = local.client("s3")
    assert denied(lambda: root.get_object(Bucket=bucket, Key="missing.csv"))[0] == "NoSuchKey"


def test_tls_only_bucket_policy_lets_endpoint_requests_through(local: Running) -> None:
    # GIVEN the templates' DenyInsecureTransport policy on a bucket
    bucket = name()
    local.client("s3").create_bucket(Bucket=bucket)
    local.resources.by_arn[f"arn:aws:s3:::{bucket}"] = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    # THEN the endpoint (standing in for AWS's TLS front) lets root and granted roles in
    local.client("s3").put_object(Bucket=bucket, Key="k", Body=b"x")
    grant(local, allow("s3:GetObject", f"arn:aws:s3:::{bucket}/*"))
    assert local.client("s3", ROLE_KEY).get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_s3_resource_policy_deny_answers_with_its_reason(local: Running) -> None:
    bucket = name()
    local.client("s3").create_bucket(Bucket=bucket)
    local.resources.by_arn[f"arn:aws:s3:::{bucket}"] = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "*"}
        ],
    }
    _, _, message = denied(lambda: local.client("s3").put_object(Bucket=bucket, Key="k", Body=b""))
    assert message.endswith("with an explicit deny in a resource-based policy")
    assert message.startswith(f"User: arn:aws:iam::{ACCT}:root is not authorized")


# ---------------------------------------------------------------- JSON protocols


def test_dynamodb_denial_is_access_denied_exception_400(local: Running) -> None:
    code, status, message = denied(
        lambda: local.client("dynamodb", ROLE_KEY).get_item(
            TableName="ledger", Key={"pk": {"S": "a"}}
        )
    )
    assert (code, status) == ("AccessDeniedException", 400)
    table = f"arn:aws:dynamodb:{REGION}:{ACCT}:table/ledger"
    assert f'perform: dynamodb:GetItem on resource: "{table}"' in message


@pytest.mark.parametrize(
    ("service", "call", "action"),
    [
        (
            "events",
            lambda c: c.put_events(
                Entries=[{"Source": "sluice.validate", "DetailType": "d", "Detail": "{}"}]
            ),
            "events:PutEvents",
        ),
        ("ssm", lambda c: c.get_parameter(Name="/sluice/dev/x"), "ssm:GetParameter"),
        ("kms", lambda c: c.describe_key(KeyId="alias/data"), "kms:DescribeKey"),
        ("logs", lambda c: c.create_log_group(logGroupName="/g"), "logs:CreateLogGroup"),
        (
            "stepfunctions",
            lambda c: c.start_execution(
                stateMachineArn=f"arn:aws:states:{REGION}:{ACCT}:stateMachine:batch"
            ),
            "states:StartExecution",
        ),
    ],
)
def test_json_services_deny_with_access_denied_exception(
    local: Running, service: str, call: Any, action: str
) -> None:
    code, status, message = denied(lambda: call(local.client(service, ROLE_KEY)))
    assert (code, status) == ("AccessDeniedException", 400)
    assert f"User: {SESSION_ARN} is not authorized to perform: {action}" in message


def test_step_functions_allowed_reaches_the_engine(local: Running) -> None:
    machine = f"arn:aws:states:{REGION}:{ACCT}:stateMachine:batch"
    grant(local, allow("states:StartExecution", machine))
    answer = local.client("stepfunctions", ROLE_KEY).start_execution(stateMachineArn=machine)
    assert answer["executionArn"] == f"{machine}:x"


def test_sqs_json_protocol_denial_is_access_denied(local: Running) -> None:
    queue = name()
    url = local.client("sqs").create_queue(QueueName=queue)["QueueUrl"]
    grant(local, allow("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCT}:{queue}"))
    sqs = local.client("sqs", ROLE_KEY)
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []
    code, status, message = denied(lambda: sqs.send_message(QueueUrl=url, MessageBody="x"))
    assert (code, status) == ("AccessDenied", 403)
    assert f'sqs:SendMessage on resource: "arn:aws:sqs:{REGION}:{ACCT}:{queue}"' in message


def test_sqs_query_protocol_denial_is_xml_access_denied(local: Running) -> None:
    queue = name()
    url = local.client("sqs").create_queue(QueueName=queue)["QueueUrl"]
    body = f"Action=SendMessage&Version=2012-11-05&QueueUrl={url}&MessageBody=x"
    request = AWSRequest(
        method="POST",
        url=local.url + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    SigV4Auth(Credentials(ROLE_KEY, "secret"), "sqs", REGION).add_auth(request)
    prepared = request.prepare()
    http = urllib.request.Request(
        prepared.url, data=body.encode(), headers=dict(prepared.headers), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(http, timeout=10)
    assert caught.value.code == 403
    xml = caught.value.read().decode()
    assert "<Code>AccessDenied</Code>" in xml
    assert "sqs:SendMessage" in xml


# ---------------------------------------------------------------- query XML and Lambda


def test_sts_iam_sns_denials(local: Running) -> None:
    sts = local.client("sts", ROLE_KEY)
    code, status, message = denied(
        lambda: sts.assume_role(RoleArn=f"arn:aws:iam::{ACCT}:role/Validate", RoleSessionName="s1")
    )
    assert (code, status) == ("AccessDenied", 403)
    assert "because no resource-based policy allows the sts:AssumeRole action" in message
    assert sts.get_caller_identity()["Account"] == ACCT  # always allowed
    code, status, _ = denied(lambda: local.client("iam", ROLE_KEY).get_role(RoleName="Output"))
    assert (code, status) == ("AccessDenied", 403)
    topic = f"arn:aws:sns:{REGION}:{ACCT}:alerts"
    code, status, message = denied(
        lambda: local.client("sns", ROLE_KEY).publish(TopicArn=topic, Message="m")
    )
    assert (code, status) == ("AuthorizationError", 403)
    assert f'sns:Publish on resource: "{topic}"' in message


def test_lambda_invoke_denial_and_pass_through(local: Running) -> None:
    function = f"arn:aws:lambda:{REGION}:{ACCT}:function:sluice-dev-validate"
    lam = local.client("lambda", ROLE_KEY)
    code, status, message = denied(lambda: lam.invoke(FunctionName="sluice-dev-validate"))
    assert (code, status) == ("AccessDeniedException", 403)
    assert f'lambda:InvokeFunction on resource: "{function}"' in message
    # allowed: the runner answers (no such function here)
    grant(local, allow("lambda:InvokeFunction", function))
    code, status, _ = denied(lambda: lam.invoke(FunctionName="sluice-dev-validate"))
    assert (code, status) == ("ResourceNotFoundException", 404)


# ---------------------------------------------------------------- routing and switches


def test_control_routes_are_not_authorized(local: Running) -> None:
    # GIVEN unsigned requests resolve to a principal with no permissions
    local.principals.unsigned = Principal(SESSION_ARN, ACCT, "role", ROLE_ARN)
    with urllib.request.urlopen(f"{local.url}/_sluice/health", timeout=10) as answer:
        assert json.loads(answer.read()) == {"ok": True}
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{local.url}/some-bucket/key", timeout=10)
    assert caught.value.code == 403


def test_denials_are_counted(local: Running) -> None:
    s3 = local.client("s3", ROLE_KEY)
    for _ in range(2):
        denied(lambda: s3.get_object(Bucket="b", Key="k"))
    state = local.enforcer.describe()
    assert state["denials"] == 2
    assert state["denials_by"] == [{"principal": ROLE_ARN, "action": "s3:GetObject", "count": 2}]


def test_disabled_enforcer_dispatches_everything(local: Running) -> None:
    bucket = name()
    local.client("s3").create_bucket(Bucket=bucket)
    local.enforcer.enabled = False
    local.client("s3", ROLE_KEY).put_object(Bucket=bucket, Key="k", Body=b"x")
    assert local.client("s3", ROLE_KEY).get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_without_enforcer_the_endpoint_checks_nothing(tmp_path: Path) -> None:
    running = Running(tmp_path, enforce=False)
    try:
        bucket = name()
        running.client("s3").create_bucket(Bucket=bucket)
        running.client("s3", ROLE_KEY).put_object(Bucket=bucket, Key="k", Body=b"x")
        assert running.client("s3", ROLE_KEY).get_object(Bucket=bucket, Key="k")["Body"].read()
        assert running.enforcer.describe()["decisions"] == 0
    finally:
        running.close()


def test_requests_are_counted_per_caller_role_or_root(local: Running) -> None:
    # GIVEN a bucket made by root and a role that may write to it
    bucket = name()
    local.client("s3").create_bucket(Bucket=bucket)
    grant(local, allow("s3:PutObject", f"arn:aws:s3:::{bucket}/*"))
    s3 = local.client("s3", ROLE_KEY)
    # WHEN the role writes twice and is denied a read, and root writes once
    s3.put_object(Bucket=bucket, Key="a", Body=b"1")
    s3.put_object(Bucket=bucket, Key="b", Body=b"2")
    denied(lambda: s3.get_object(Bucket=bucket, Key="a"))
    local.client("s3").put_object(Bucket=bucket, Key="c", Body=b"3")
    # THEN each request is counted under its caller: the role by name, the account's keys as root
    # (a denied request was still made)
    callers = local.endpoint.requests_by_caller
    assert callers["Output"] == {"s3.PUT": 2, "s3.GET": 1}
    assert callers["root"] == {"s3.PUT": 2}  # create_bucket and the upload


def test_requests_are_not_attributed_when_iam_is_not_enforced(tmp_path: Path) -> None:
    running = Running(tmp_path, enforce=False)
    try:
        bucket = name()
        running.client("s3", ROLE_KEY).create_bucket(Bucket=bucket)
        assert running.endpoint.requests_by_caller == {"-": {"s3.PUT": 1}}
    finally:
        running.close()
