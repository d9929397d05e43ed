"""Per-request cost of local IAM enforcement: request mapping + principal + decision, in process.

    .venv/bin/python bench/local_iam.py [--n 20000]

A role with a stage-like identity policy (8 statements, conditions included) and the TLS-only
bucket policy; requests shaped as botocore sends them. Prints microseconds per request for each
shape (the endpoint's `_authorize` does exactly this work before dispatch).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from sluice.local.iam.enforcer import Enforcer
from sluice.local.iam.ports import PolicyDocument, Principal
from sluice.local.iam.requests import HttpRequest, RequestMapper

ACCT = "123456789012"
REGION = "us-east-1"
KEY = "ASIABENCHROLE0000001"
AUTH = (
    f"AWS4-HMAC-SHA256 Credential={KEY}/20260101/{REGION}/{{service}}/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
)
BUCKET = f"sluice-dev-work-{ACCT}-{REGION}"
BUS = f"arn:aws:events:{REGION}:{ACCT}:event-bus/sluice-dev"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCT}:table/sluice-dev-ledger"
QUEUE = f"arn:aws:sqs:{REGION}:{ACCT}:sluice-dev-transform"

IDENTITY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": f"arn:aws:s3:::{BUCKET}/staging/*",
        },
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{BUCKET}",
            "Condition": {"StringLike": {"s3:prefix": ["staging/*", "processed/*"]}},
        },
        {
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": f"arn:aws:s3:::{BUCKET}/processed/*",
        },
        {
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            "Resource": QUEUE,
        },
        {
            "Effect": "Allow",
            "Action": "events:PutEvents",
            "Resource": BUS,
            "Condition": {"StringEquals": {"events:source": "sluice.transform"}},
        },
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:ConditionCheckItem",
            ],
            "Resource": TABLE,
        },
        {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"arn:aws:logs:{REGION}:{ACCT}:log-group:/aws/lambda/transform:*",
        },
    ],
}
TLS_ONLY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ],
}
ROLE = Principal(
    arn=f"arn:aws:sts::{ACCT}:assumed-role/Transform/fn",
    account=ACCT,
    kind="role",
    role_arn=f"arn:aws:iam::{ACCT}:role/Transform",
    identity_policies=(IDENTITY,),
)


class Principals:
    def resolve(self, access_key_id: str | None) -> Principal:
        return ROLE


class Resources:
    def policy_for(self, resource_arn: str) -> PolicyDocument | None:
        return TLS_ONLY if resource_arn.startswith(f"arn:aws:s3:::{BUCKET}") else None


def _json(service: str, target: str, body: dict[str, Any]) -> HttpRequest:
    headers = {
        "Authorization": AUTH.format(service=service),
        "X-Amz-Target": target,
        "Content-Type": "application/x-amz-json-1.0",
    }
    return HttpRequest("POST", "127.0.0.1:4566", "/", "", headers, json.dumps(body).encode())


SHAPES = {
    "s3 GetObject": HttpRequest(
        "GET",
        "127.0.0.1:4566",
        f"/{BUCKET}/staging/orders/f1/part-0.parquet",
        "",
        {"Authorization": AUTH.format(service="s3")},
    ),
    "sqs DeleteMessage": _json(
        "sqs",
        "AmazonSQS.DeleteMessage",
        {"QueueUrl": f"http://127.0.0.1:4566/{ACCT}/sluice-dev-transform", "ReceiptHandle": "r"},
    ),
    "events PutEvents": _json(
        "events",
        "AWSEvents.PutEvents",
        {
            "Entries": [
                {
                    "Source": "sluice.transform",
                    "DetailType": "file.transformed",
                    "Detail": "{}",
                    "EventBusName": "sluice-dev",
                }
            ]
        },
    ),
    "dynamodb TransactWriteItems": _json(
        "dynamodb",
        "DynamoDB_20120810.TransactWriteItems",
        {
            "TransactItems": [
                {
                    "Update": {
                        "TableName": "sluice-dev-ledger",
                        "Key": {"pk": {"S": "f1"}},
                        "UpdateExpression": "SET s = :s",
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": "sluice-dev-ledger",
                        "Key": {"pk": {"S": "f2"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        },
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    enforcer = Enforcer(Principals(), Resources(), account=ACCT, region=REGION)
    mapper = RequestMapper(ACCT, REGION)
    for label, request in SHAPES.items():

        def once(request: HttpRequest = request) -> bool:
            mapped = mapper.map(request)
            principal = enforcer.principals.resolve(mapped.access_key_id)
            return all(enforcer.decide(principal, a).allowed for a in mapped.accesses)

        assert once(), f"{label} should be allowed"
        start = time.perf_counter()
        for _ in range(args.n):
            once()
        per = (time.perf_counter() - start) / args.n * 1e6
        print(f"{label:<30} {per:6.1f} us/request")


if __name__ == "__main__":
    main()
