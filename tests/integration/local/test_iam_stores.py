"""The principal and resource-policy stores of the local runtime, over a real moto server: roles
and policies are created through the IAM/STS/S3/SQS APIs and the stores read them back."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from sluice.local.iam.principals import (
    AWS_MANAGED_PREFIX,
    PrincipalRegistry,
    aws_managed_policy,
    ensure_aws_managed_policy,
)
from sluice.local.iam.resources import ResourcePolicyRegistry

ACCOUNT = "123456789012"
REGION = "us-east-1"
BASIC = f"{AWS_MANAGED_PREFIX}service-role/AWSLambdaBasicExecutionRole"
TRUST_LAMBDA = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
READ_RAW = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::raw/*"}],
}


@pytest.fixture
def client(moto_endpoint: str) -> Any:
    def make(service: str, **keys: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=moto_endpoint,
            region_name=REGION,
            aws_access_key_id=keys.get("key", "testing"),
            aws_secret_access_key=keys.get("secret", "testing"),
        )

    return make


def _role(client: Any, name: str = "ingest") -> str:
    iam = client("iam")
    arn = str(
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_LAMBDA))["Role"][
            "Arn"
        ]
    )
    iam.put_role_policy(RoleName=name, PolicyName="read", PolicyDocument=json.dumps(READ_RAW))
    assert ensure_aws_managed_policy(ACCOUNT, BASIC)
    iam.attach_role_policy(RoleName=name, PolicyArn=BASIC)
    return arn


def test_issued_credentials_resolve_to_a_session_of_the_role_with_its_policies(client: Any) -> None:
    # GIVEN a role with an inline policy and the AWS managed basic execution policy
    arn = _role(client)
    registry = PrincipalRegistry(ACCOUNT)
    # WHEN the runtime issues credentials for a function of that role
    creds = registry.issue(arn, "sluice-dev-ingest")
    principal = registry.resolve(creds.access_key_id)
    # THEN they resolve to a session of the role carrying both documents, the managed one real
    assert principal.kind == "role"
    assert principal.role_arn == arn
    assert principal.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/ingest/sluice-dev-ingest"
    assert READ_RAW in principal.identity_policies
    basic = aws_managed_policy(BASIC)
    assert basic is not None
    assert basic in principal.identity_policies
    assert "logs:PutLogEvents" in json.dumps(basic)
    # AND the same pair gets the same keys; the same documents are the same objects
    assert registry.issue(arn, "sluice-dev-ingest") == creds
    again = registry.resolve(creds.access_key_id).identity_policies
    assert all(a is b for a, b in zip(again, principal.identity_policies, strict=True))


def test_a_policy_changed_through_the_api_applies_to_the_next_resolution(client: Any) -> None:
    arn = _role(client)
    registry = PrincipalRegistry(ACCOUNT)
    creds = registry.issue(arn, "fn")
    client("iam").delete_role_policy(RoleName="ingest", PolicyName="read")
    assert READ_RAW not in registry.resolve(creds.access_key_id).identity_policies


def test_unknown_keys_and_no_key_act_as_the_account_root(client: Any) -> None:
    registry = PrincipalRegistry(ACCOUNT)
    for key in (None, "", "testing", "AKIAEXAMPLE"):
        principal = registry.resolve(key)
        assert (principal.kind, principal.arn) == ("root", f"arn:aws:iam::{ACCOUNT}:root")


def test_keys_moto_sts_issued_resolve_to_the_assumed_role(client: Any) -> None:
    arn = _role(client)
    assumed = client("sts").assume_role(RoleArn=arn, RoleSessionName="me")["Credentials"]
    principal = PrincipalRegistry(ACCOUNT).resolve(assumed["AccessKeyId"])
    assert principal.kind == "role"
    assert principal.arn.endswith(":assumed-role/ingest/me")
    assert READ_RAW in principal.identity_policies


def test_a_role_that_does_not_exist_has_no_policies(client: Any) -> None:
    registry = PrincipalRegistry(ACCOUNT)
    creds = registry.issue(f"arn:aws:iam::{ACCOUNT}:role/gone", "fn")
    assert registry.resolve(creds.access_key_id).identity_policies == ()


def test_resource_policies_by_arn(client: Any) -> None:
    # GIVEN a role, a bucket policy and a queue policy set through the APIs
    arn = _role(client)
    s3, sqs = client("s3"), client("sqs")
    s3.create_bucket(Bucket="raw")
    bucket_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::raw", "arn:aws:s3:::raw/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    s3.put_bucket_policy(Bucket="raw", Policy=json.dumps(bucket_policy))
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    queue_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:q",
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(queue_policy)})
    store = ResourcePolicyRegistry(ACCOUNT, REGION, PrincipalRegistry(ACCOUNT))
    bus = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/sluice"
    store.put_bus_statement(bus, "own", {"Effect": "Allow", "Principal": "*", "Action": "x:Y"})
    store.put_bus_statement(bus, "deny", {"Effect": "Deny", "Principal": "*", "Action": "x:Z"})
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tick"
    store.put_function_statement(function, "rule", {"Effect": "Allow", "Action": "lambda:*"})
    # THEN each ARN maps to its policy: objects to the bucket's, roles to their trust policy
    assert store.policy_for("arn:aws:s3:::raw/any/key.csv") == bucket_policy
    assert store.policy_for("arn:aws:s3:::raw") == bucket_policy
    assert store.policy_for("arn:aws:s3:::other/key") is None
    assert store.policy_for(f"arn:aws:sqs:{REGION}:{ACCOUNT}:q") == queue_policy
    assert store.policy_for(arn) == TRUST_LAMBDA
    bus_policy = store.policy_for(bus)
    assert bus_policy is not None
    assert [s["Sid"] for s in bus_policy["Statement"]] == ["own", "deny"]
    assert store.policy_for(f"{function}:live") == store.policy_for(function)
    assert store.policy_for(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:other") is None
    # AND an unchanged policy is the same object (the enforcer's parse cache keys on it)
    assert store.policy_for("arn:aws:s3:::raw/a") is store.policy_for("arn:aws:s3:::raw/b")


def test_issued_credentials_are_known_to_sts(client: Any) -> None:
    # GIVEN credentials the runtime issued for a function's role
    arn = _role(client)
    creds = PrincipalRegistry(ACCOUNT).issue(arn, "sluice-dev-ingest")
    # WHEN the function asks STS who it is THEN it is a session of its role
    sts = client("sts", key=creds.access_key_id, secret=creds.secret_access_key)
    identity = sts.get_caller_identity()
    assert identity["Arn"] == creds.session_arn
    assert identity["Arn"].endswith(":assumed-role/ingest/sluice-dev-ingest")
