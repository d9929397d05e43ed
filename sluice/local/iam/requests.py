"""An HTTP request to the local endpoint → the accesses (action, resource, condition keys) it
needs, the caller's access key, and AWS's denial shape for its protocol.

Covered, by protocol:

- S3 (REST-XML; path-style and virtual-host `<bucket>.localhost` / `<bucket>.s3.<...>`): every
  object and bucket operation the project calls and the common ones (List* with `s3:prefix`,
  `s3:delimiter`, `s3:max-keys`; `versionId` → the `...Version` actions; HeadObject →
  `s3:GetObject`; multipart → `s3:PutObject`, `s3:AbortMultipartUpload`,
  `s3:ListMultipartUploadParts`; CopyObject/UploadPartCopy → `s3:PutObject` on the target and
  `s3:GetObject(Version)` on the source; DeleteObjects → `s3:DeleteObject(Version)` per key of
  the XML body; bucket sub-resources `?policy`, `?versioning`, `?notification`, ...).
- JSON protocols (`X-Amz-Target`): SQS (`AmazonSQS.*`, QueueUrl → queue ARN), DynamoDB (table
  and index ARNs; batch and transaction operations → the action on each table, per item for
  transactions), EventBridge (PutEvents → `events:PutEvents` on each entry's bus with
  `events:source` and `events:detail-type`; rule and target operations on rule ARNs; ListRules
  and TestEventPattern on `*`), SSM,
  KMS (the key from `KeyId` or, for Decrypt without one, from the local ciphertext blob), Logs,
  Step Functions (`AWSStepFunctions.*`; SendTask* on `*`).
- Query protocol (`Action=`): SQS, SNS, STS (AssumeRole → `sts:AssumeRole` on the role ARN, whose
  trust policy is its resource policy), IAM.
- Lambda (REST-JSON): Invoke → `lambda:InvokeFunction` on the function ARN, GetFunction,
  ListFunctions and the other function routes.

Anything not understood maps to `<service>:<Operation>` on `*`: a role is allowed it only by a
grant of `*` or `<service>:*`, never silently.

The caller is the access key id of the SigV4 `Authorization` header (or the `X-Amz-Credential`
of a presigned URL; SigV2 forms too). Signatures are not verified: the local endpoint trusts the
key id it is given (an unknown key acts as the account root, so verifying would protect
nothing); enforcement proves what a role's credentials may do, it does not authenticate.

Not modelled: condition keys that need the resource's state (`dynamodb:LeadingKeys` needs the
table's key schema, `s3:ExistingObjectTag/*`), KMS alias → key resolution (a request naming an
alias is authorized on the alias ARN, with `kms:RequestAlias`), SSE-KMS calls S3 makes on the
caller's behalf.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import unescape
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from sluice.local.iam.ports import Access, ContextValue

Protocol = Literal["rest-xml", "json", "query", "rest-json"]

_CREDENTIAL = re.compile(
    r"Credential=(?P<key>[^/,\s]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request"
)
_SIGV2 = re.compile(r"^AWS (?P<key>[^:\s]+):")
_IP = re.compile(r"^(\d{1,3}\.){3}\d{1,3}$|^\[.*\]$")


@dataclass(frozen=True)
class HttpRequest:
    """The parts of an HTTP request the mapping reads.

    Attributes:
        method: `GET`, `PUT`, ...
        host: the Host header (`127.0.0.1:4566`, `bucket.localhost:4566`).
        path: the raw (percent-encoded) path.
        query: the raw query string, without `?`.
        headers: a case-insensitive mapping of the headers.
        body: the request body.
    """

    method: str
    host: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(slots=True)
class MappedRequest:
    """What one request asks for.

    Attributes:
        service: the signing name (`s3`, `sqs`, `dynamodb`, `events`, `states`, `lambda`, ...).
        operation: the API operation (`GetObject`, `SendMessage`, ...).
        protocol: the wire protocol, which decides the shape of a denial.
        access_key_id: the caller's key, None for an unsigned request.
        accesses: every access the request needs, all of which must be allowed.
        json_version: `1.0` or `1.1` for the JSON protocols.
    """

    service: str
    operation: str
    protocol: Protocol
    access_key_id: str | None
    accesses: tuple[Access, ...]
    json_version: str = "1.1"
    region: str = ""
    """The request's region (its signature's, else the mapper's)."""


_JSON_TARGETS: dict[str, tuple[str, str]] = {
    "DynamoDB_20120810": ("dynamodb", "1.0"),
    "DynamoDBStreams_20120810": ("dynamodb", "1.0"),
    "AmazonSQS": ("sqs", "1.0"),
    "AWSEvents": ("events", "1.1"),
    "AmazonSSM": ("ssm", "1.1"),
    "TrentService": ("kms", "1.1"),
    "Logs_20140328": ("logs", "1.1"),
    "AWSStepFunctions": ("states", "1.0"),
}


class RequestMapper:
    """Maps requests for one account.

    Args:
        account: the account whose resources the endpoint holds.
        region: the region of requests that name none.
    """

    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region

    def map(self, request: HttpRequest) -> MappedRequest:
        """The accesses `request` needs (see the module docstring). Never raises on a malformed
        body: what cannot be read maps to the operation on `*`."""
        headers = request.headers
        key, region, service = _credentials(request)
        region = region or self.region
        target = headers.get("X-Amz-Target") or headers.get("x-amz-target") or ""
        if target:
            prefix, _, operation = target.partition(".")
            known = _JSON_TARGETS.get(prefix)
            if known is not None:
                service = known[0]
            content_type = headers.get("Content-Type") or headers.get("content-type") or ""
            version = "1.0" if content_type.endswith("1.0") else "1.1"
            if known is not None and not content_type:
                version = known[1]
            body = _json(request.body)
            handler = _JSON_HANDLERS.get(service or "")
            ctx = _Ctx(self.account, region, request)
            accesses = handler(ctx, operation, body) if handler else None
            if accesses is None:
                accesses = [Access(f"{service or prefix}:{operation}", "*")]
            return MappedRequest(
                service or prefix, operation, "json", key, _dedupe(accesses), version, region
            )
        path = request.path
        if service == "lambda" or path.startswith(("/2015-03-31/functions", "/2014-11-13/")):
            ctx = _Ctx(self.account, region, request)
            operation, accesses = _lambda(ctx)
            return MappedRequest(
                "lambda", operation, "rest-json", key, _dedupe(accesses), region=region
            )
        if service != "s3":
            params = _query_params(request)
            action = params.get("Action")
            if action is not None:
                service = service or "unknown"
                ctx = _Ctx(self.account, region, request)
                handler = _QUERY_HANDLERS.get(service)
                accesses = handler(ctx, action, params) if handler else None
                if accesses is None:
                    accesses = [Access(f"{service}:{action}", "*")]
                return MappedRequest(
                    service, action, "query", key, _dedupe(accesses), region=region
                )
        if service == "schemas":
            operation, accesses = _schemas(_Ctx(self.account, region, request))
            return MappedRequest(
                "schemas", operation, "rest-json", key, _dedupe(accesses), region=region
            )
        if service in (None, "s3"):
            ctx = _Ctx(self.account, region, request)
            operation, accesses = _s3(ctx, dict(parse_qsl(request.query, keep_blank_values=True)))
            return MappedRequest("s3", operation, "rest-xml", key, _dedupe(accesses), region=region)
        operation = f"{request.method}{unquote(path)}"
        return MappedRequest(
            service,
            operation,
            "rest-json",
            key,
            (Access(f"{service}:{operation}", "*"),),
            region=region,
        )


# --------------------------------------------------------------------------- helpers


@dataclass(slots=True)
class _Ctx:
    account: str
    region: str
    request: HttpRequest

    def arn(self, service: str, resource: str, *, account: str | None = None) -> str:
        return f"arn:aws:{service}:{self.region}:{account or self.account}:{resource}"


def _credentials(request: HttpRequest) -> tuple[str | None, str | None, str | None]:
    """(access key id, region, service) from the signature, or Nones."""
    auth = request.headers.get("Authorization") or request.headers.get("authorization") or ""
    found = _CREDENTIAL.search(auth)
    if found is None and "X-Amz-Credential=" in request.query:
        found = _CREDENTIAL.search(
            "Credential=" + unquote(request.query.split("X-Amz-Credential=", 1)[1].split("&", 1)[0])
        )
    if found is not None:
        return found.group("key"), found.group("region"), found.group("service")
    sigv2 = _SIGV2.match(auth)
    if sigv2 is not None:
        return sigv2.group("key"), None, None
    if "AWSAccessKeyId=" in request.query:
        value = request.query.split("AWSAccessKeyId=", 1)[1].split("&", 1)[0]
        return unquote(value), None, None
    return None, None, None


def _json(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _query_params(request: HttpRequest) -> dict[str, str]:
    params = dict(parse_qsl(request.query, keep_blank_values=True))
    content_type = request.headers.get("Content-Type") or request.headers.get("content-type") or ""
    if request.body and content_type.startswith("application/x-www-form-urlencoded"):
        with contextlib.suppress(UnicodeDecodeError):
            params.update(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
    return params


def _dedupe(accesses: list[Access]) -> tuple[Access, ...]:
    if len(accesses) == 1:
        return (accesses[0],)
    seen: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
    out: list[Access] = []
    for access in accesses:
        marker = (
            access.action,
            access.resource,
            tuple(sorted((k, repr(v)) for k, v in access.context.items())),
        )
        if marker not in seen:
            seen.add(marker)
            out.append(access)
    return tuple(out)


def _str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------------- S3


_BUCKET_SUBRESOURCES: dict[str, tuple[str | None, str | None, str | None]] = {
    # sub-resource: (GET, PUT, DELETE) actions
    "policy": ("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"),
    "policyStatus": ("GetBucketPolicyStatus", None, None),
    "versioning": ("GetBucketVersioning", "PutBucketVersioning", None),
    "notification": ("GetBucketNotification", "PutBucketNotification", None),
    "acl": ("GetBucketAcl", "PutBucketAcl", None),
    "tagging": ("GetBucketTagging", "PutBucketTagging", "PutBucketTagging"),
    "encryption": (
        "GetEncryptionConfiguration",
        "PutEncryptionConfiguration",
        "PutEncryptionConfiguration",
    ),
    "lifecycle": (
        "GetLifecycleConfiguration",
        "PutLifecycleConfiguration",
        "PutLifecycleConfiguration",
    ),
    "cors": ("GetBucketCORS", "PutBucketCORS", "PutBucketCORS"),
    "publicAccessBlock": (
        "GetBucketPublicAccessBlock",
        "PutBucketPublicAccessBlock",
        "PutBucketPublicAccessBlock",
    ),
    "ownershipControls": (
        "GetBucketOwnershipControls",
        "PutBucketOwnershipControls",
        "PutBucketOwnershipControls",
    ),
    "logging": ("GetBucketLogging", "PutBucketLogging", None),
    "website": ("GetBucketWebsite", "PutBucketWebsite", "DeleteBucketWebsite"),
    "replication": (
        "GetReplicationConfiguration",
        "PutReplicationConfiguration",
        "PutReplicationConfiguration",
    ),
    "object-lock": (
        "GetBucketObjectLockConfiguration",
        "PutBucketObjectLockConfiguration",
        None,
    ),
    "accelerate": ("GetAccelerateConfiguration", "PutAccelerateConfiguration", None),
    "requestPayment": ("GetBucketRequestPayment", "PutBucketRequestPayment", None),
    "location": ("GetBucketLocation", None, None),
    "uploads": ("ListBucketMultipartUploads", None, None),
    "inventory": (
        "GetInventoryConfiguration",
        "PutInventoryConfiguration",
        "PutInventoryConfiguration",
    ),
    "metrics": ("GetMetricsConfiguration", "PutMetricsConfiguration", "PutMetricsConfiguration"),
    "analytics": (
        "GetAnalyticsConfiguration",
        "PutAnalyticsConfiguration",
        "PutAnalyticsConfiguration",
    ),
    "intelligent-tiering": (
        "GetIntelligentTieringConfiguration",
        "PutIntelligentTieringConfiguration",
        "PutIntelligentTieringConfiguration",
    ),
}

_LIST_PARAMS = {
    "prefix",
    "delimiter",
    "max-keys",
    "marker",
    "list-type",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "encoding-type",
    "x-id",
}

_OBJECT_SUBRESOURCES: dict[str, tuple[str | None, str | None, str | None, bool]] = {
    # sub-resource: (GET, PUT, DELETE, has a ...Version form)
    "acl": ("GetObjectAcl", "PutObjectAcl", None, True),
    "tagging": ("GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging", True),
    "attributes": ("GetObjectAttributes", None, None, True),
    "retention": ("GetObjectRetention", "PutObjectRetention", None, False),
    "legal-hold": ("GetObjectLegalHold", "PutObjectLegalHold", None, False),
    "torrent": ("GetObjectTorrent", None, None, True),
}

_PUT_HEADER_KEYS = (
    "x-amz-acl",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-storage-class",
    "x-amz-metadata-directive",
    "x-amz-object-lock-mode",
)
_DELETE_OBJECT = re.compile(r"<Object>(.*?)</Object>", re.DOTALL)
_DELETE_KEY = re.compile(r"<Key>(.*?)</Key>", re.DOTALL)
_DELETE_VERSION = re.compile(r"<VersionId>(.*?)</VersionId>", re.DOTALL)


def _bucket_and_key(request: HttpRequest) -> tuple[str, str]:
    hostname = request.host.rsplit(":", 1)[0] if not request.host.startswith("[") else ""
    hostname = hostname.lower()
    path = unquote(request.path)
    virtual: str | None = None
    if (
        hostname
        and not _IP.match(hostname)
        and hostname != "localhost"
        and not hostname.startswith(("s3.", "s3-"))
    ):
        for marker in (".s3.", ".s3-"):
            if marker in hostname:
                virtual = hostname[: hostname.index(marker)]
                break
        else:
            if hostname.endswith(".localhost"):
                virtual = hostname.removesuffix(".localhost")
    if virtual is not None:
        return virtual, path[1:] if path.startswith("/") else path
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


def _s3_arn(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" if key is None else f"arn:aws:s3:::{bucket}/{key}"


def _s3(ctx: _Ctx, params: Mapping[str, str]) -> tuple[str, list[Access]]:
    request = ctx.request
    method = request.method
    bucket, key = _bucket_and_key(request)
    if not bucket:
        if method == "GET":
            return "ListBuckets", [Access("s3:ListAllMyBuckets", "*")]
        return f"{method}Service", [Access(f"s3:{method}Service", "*")]
    if not key:
        return _s3_bucket(method, bucket, params, request)
    return _s3_object(method, bucket, key, params, request)


def _list_context(params: Mapping[str, str]) -> dict[str, ContextValue]:
    # A key is in the request context only when the request carries the parameter (an empty
    # `prefix=` is the empty string; no `prefix` at all is an absent key, as S3 evaluates it).
    context: dict[str, ContextValue] = {}
    if "prefix" in params:
        context["s3:prefix"] = params["prefix"]
    if "delimiter" in params:
        context["s3:delimiter"] = params["delimiter"]
    if "max-keys" in params:
        context["s3:max-keys"] = params["max-keys"]
    return context


def _s3_bucket(
    method: str, bucket: str, params: Mapping[str, str], request: HttpRequest
) -> tuple[str, list[Access]]:
    arn = _s3_arn(bucket)
    if method == "POST" and "delete" in params:
        accesses: list[Access] = []
        body = request.body.decode("utf-8", "replace")
        for item in _DELETE_OBJECT.findall(body):
            key_match = _DELETE_KEY.search(item)
            if key_match is None:
                continue
            version = _DELETE_VERSION.search(item)
            key = unescape(key_match.group(1))
            if version is not None:
                accesses.append(
                    Access(
                        "s3:DeleteObjectVersion",
                        _s3_arn(bucket, key),
                        {"s3:versionid": unescape(version.group(1))},
                    )
                )
            else:
                accesses.append(Access("s3:DeleteObject", _s3_arn(bucket, key)))
        return "DeleteObjects", accesses or [Access("s3:DeleteObject", _s3_arn(bucket, "*"))]
    if method == "GET" and "versions" in params:
        return "ListObjectVersions", [Access("s3:ListBucketVersions", arn, _list_context(params))]
    for name, actions in _BUCKET_SUBRESOURCES.items():
        if name in params:
            index = {"GET": 0, "PUT": 1, "DELETE": 2}.get(method)
            action = actions[index] if index is not None else None
            if action is None:
                action = f"{method.title()}Bucket{name[0].upper()}{name[1:]}"
            return action, [Access(f"s3:{action}", arn)]
    unknown = [name for name, value in params.items() if not value and name not in _LIST_PARAMS]
    if unknown:
        # A sub-resource this mapping does not know: named, never taken for a listing.
        action = f"{method.title()}Bucket{unknown[0][0].upper()}{unknown[0][1:]}"
        return action, [Access(f"s3:{action}", arn)]
    if method == "GET":
        operation = "ListObjectsV2" if params.get("list-type") == "2" else "ListObjects"
        return operation, [Access("s3:ListBucket", arn, _list_context(params))]
    if method == "HEAD":
        return "HeadBucket", [Access("s3:ListBucket", arn)]
    if method == "PUT":
        return "CreateBucket", [Access("s3:CreateBucket", arn)]
    if method == "DELETE":
        return "DeleteBucket", [Access("s3:DeleteBucket", arn)]
    if method == "POST":
        # A browser-form upload names its key in the form body.
        return "PostObject", [Access("s3:PutObject", _s3_arn(bucket, "*"))]
    return f"{method}Bucket", [Access(f"s3:{method}Bucket", arn)]


def _copy_source(request: HttpRequest) -> Access | None:
    raw = request.headers.get("x-amz-copy-source") or request.headers.get("X-Amz-Copy-Source")
    if not raw:
        return None
    source, _, query = raw.partition("?")
    source = unquote(source).lstrip("/")
    bucket, _, key = source.partition("/")
    version = dict(parse_qsl(query)).get("versionId")
    if version:
        return Access("s3:GetObjectVersion", _s3_arn(bucket, key), {"s3:versionid": version})
    return Access("s3:GetObject", _s3_arn(bucket, key))


def _s3_object(
    method: str, bucket: str, key: str, params: Mapping[str, str], request: HttpRequest
) -> tuple[str, list[Access]]:
    arn = _s3_arn(bucket, key)
    version = params.get("versionId")
    versioned: dict[str, ContextValue] = {"s3:versionid": version} if version else {}
    for name, (get, put, delete, has_version) in _OBJECT_SUBRESOURCES.items():
        if name in params:
            action = {"GET": get, "PUT": put, "DELETE": delete}.get(method)
            if action is None:
                action = f"{method.title()}Object{name.title().replace('-', '')}"
            if version and has_version:
                action = action.replace("Object", "ObjectVersion", 1)
            return action, [Access(f"s3:{action}", arn, versioned)]
    upload = "uploadId" in params
    if method in ("GET", "HEAD"):
        if upload:
            return "ListParts", [Access("s3:ListMultipartUploadParts", arn)]
        operation = "GetObject" if method == "GET" else "HeadObject"
        if version:
            return operation, [Access("s3:GetObjectVersion", arn, versioned)]
        return operation, [Access("s3:GetObject", arn)]
    if method == "DELETE":
        if upload:
            return "AbortMultipartUpload", [Access("s3:AbortMultipartUpload", arn)]
        if version:
            return "DeleteObject", [Access("s3:DeleteObjectVersion", arn, versioned)]
        return "DeleteObject", [Access("s3:DeleteObject", arn)]
    if method == "PUT" or (method == "POST" and ("uploads" in params or upload)):
        context: dict[str, ContextValue] = {}
        for header in _PUT_HEADER_KEYS:
            value = request.headers.get(header)
            if value:
                context[f"s3:{header}"] = value
        source = _copy_source(request)
        if source is not None:
            context["s3:x-amz-copy-source"] = unquote(
                request.headers.get("x-amz-copy-source") or ""
            )
        if method == "POST":
            operation = (
                "CreateMultipartUpload" if "uploads" in params else "CompleteMultipartUpload"
            )
        elif upload:
            operation = "UploadPartCopy" if source is not None else "UploadPart"
        else:
            operation = "CopyObject" if source is not None else "PutObject"
        accesses = [Access("s3:PutObject", arn, context)]
        if source is not None:
            accesses.append(source)
        return operation, accesses
    if method == "POST" and "restore" in params:
        return "RestoreObject", [Access("s3:RestoreObject", arn)]
    if method == "POST" and "select" in params:
        return "SelectObjectContent", [Access("s3:GetObject", arn)]
    return f"{method}Object", [Access(f"s3:{method}Object", arn)]


# --------------------------------------------------------------------------- SQS

_SQS_BATCH = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
_SQS_HOST_REGION = re.compile(r"sqs\.([a-z0-9-]+)\.")


def _queue_arn(ctx: _Ctx, url: str | None, name: str | None = None) -> str:
    if url:
        without_scheme = url.split("://", 1)[-1]
        host, _, path = without_scheme.partition("/")
        parts = [p for p in path.split("/") if p]
        region = ctx.region
        found = _SQS_HOST_REGION.search(host)
        if found:
            region = found.group(1)
        if len(parts) >= 2:
            return f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}"
    if name:
        return ctx.arn("sqs", name)
    return "*"


def _sqs(ctx: _Ctx, operation: str, body: Mapping[str, Any]) -> list[Access]:
    action = f"sqs:{_SQS_BATCH.get(operation, operation)}"
    if operation == "ListQueues":
        return [Access(action, "*")]
    if operation in ("CreateQueue", "GetQueueUrl"):
        owner = _str(body, "QueueOwnerAWSAccountId")
        name = _str(body, "QueueName")
        return [Access(action, ctx.arn("sqs", name, account=owner) if name else "*")]
    if operation in ("StartMessageMoveTask", "ListMessageMoveTasks"):
        source = _str(body, "SourceArn")
        return [Access(action, source or "*")]
    if operation == "CancelMessageMoveTask":
        return [Access(action, "*")]
    url = _str(body, "QueueUrl")
    if url is None:
        path = ctx.request.path
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0].isdigit():
            return [Access(action, ctx.arn("sqs", unquote(parts[1]), account=parts[0]))]
    return [Access(action, _queue_arn(ctx, url))]


# --------------------------------------------------------------------------- DynamoDB

_TRANSACT_WRITE = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _table_arn(ctx: _Ctx, name: str) -> str:
    return name if name.startswith("arn:") else ctx.arn("dynamodb", f"table/{name}")


def _dynamodb(ctx: _Ctx, operation: str, body: Mapping[str, Any]) -> list[Access]:
    action = f"dynamodb:{operation}"
    context: dict[str, ContextValue] = {}
    for name, key in (
        ("ReturnValues", "dynamodb:ReturnValues"),
        ("Select", "dynamodb:Select"),
        ("ReturnConsumedCapacity", "dynamodb:ReturnConsumedCapacity"),
    ):
        value = _str(body, name)
        if value:
            context[key] = value
    if operation in ("BatchGetItem", "BatchWriteItem"):
        items = body.get("RequestItems")
        if isinstance(items, dict) and items:
            return [Access(action, _table_arn(ctx, str(t)), context) for t in items]
        return [Access(action, "*")]
    if operation in ("TransactGetItems", "TransactWriteItems"):
        accesses: list[Access] = []
        items = body.get("TransactItems")
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            for kind, spec in item.items():
                item_action = "GetItem" if kind == "Get" else _TRANSACT_WRITE.get(kind)
                table = _str(spec, "TableName") if isinstance(spec, dict) else None
                if item_action and table:
                    accesses.append(Access(f"dynamodb:{item_action}", _table_arn(ctx, table)))
        return accesses or [Access(action, "*")]
    if operation in ("TagResource", "UntagResource", "ListTagsOfResource"):
        return [Access(action, _str(body, "ResourceArn") or "*")]
    if operation in ("DescribeStream", "GetShardIterator"):
        return [Access(action, _str(body, "StreamArn") or "*")]
    table = _str(body, "TableName")
    if table is None:
        return [Access(action, "*", context)]
    arn = _table_arn(ctx, table)
    index = _str(body, "IndexName")
    if index and operation in ("Query", "Scan"):
        arn = f"{arn}/index/{index}"
    return [Access(action, arn, context)]


# --------------------------------------------------------------------------- EventBridge

_RULE_BY_NAME = {"PutRule", "DeleteRule", "DescribeRule", "EnableRule", "DisableRule"}
_RULE_BY_RULE = {"PutTargets", "RemoveTargets", "ListTargetsByRule"}
_BUS_BY_NAME = {"CreateEventBus", "DeleteEventBus", "DescribeEventBus", "UpdateEventBus"}


def _bus_name(raw: str | None) -> str:
    if not raw:
        return "default"
    if raw.startswith("arn:"):
        return raw.rsplit("/", 1)[-1]
    return raw


def _events(ctx: _Ctx, operation: str, body: Mapping[str, Any]) -> list[Access]:
    action = f"events:{operation}"
    if operation == "PutEvents":
        entries = body.get("Entries")
        accesses: list[Access] = []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            raw_bus = _str(entry, "EventBusName")
            bus = (
                raw_bus
                if raw_bus and raw_bus.startswith("arn:")
                else ctx.arn("events", f"event-bus/{_bus_name(raw_bus)}")
            )
            context: dict[str, ContextValue] = {}
            source = _str(entry, "Source")
            detail_type = _str(entry, "DetailType")
            if source is not None:
                context["events:source"] = source
            if detail_type is not None:
                context["events:detail-type"] = detail_type
            accesses.append(Access(action, bus, context))
        return accesses or [Access(action, ctx.arn("events", "event-bus/default"))]
    if operation in _RULE_BY_NAME or operation in _RULE_BY_RULE:
        name = _str(body, "Name" if operation in _RULE_BY_NAME else "Rule")
        if name is None:
            return [Access(action, "*")]
        bus = _bus_name(_str(body, "EventBusName"))
        rule = f"rule/{name}" if bus == "default" else f"rule/{bus}/{name}"
        context = {}
        if operation == "PutTargets":
            targets = body.get("Targets")
            arns = [
                t["Arn"]
                for t in (targets if isinstance(targets, list) else [])
                if isinstance(t, dict) and isinstance(t.get("Arn"), str)
            ]
            if arns:
                context["events:TargetArn"] = arns
        return [Access(action, ctx.arn("events", rule), context)]
    if operation in ("ListRules", "TestEventPattern"):
        # No resource-level permissions in IAM (no resource type for either): only a grant on
        # "*" allows them, whatever the bus named.
        return [Access(action, "*")]
    if operation in _BUS_BY_NAME:
        return [Access(action, ctx.arn("events", f"event-bus/{_bus_name(_str(body, 'Name'))}"))]
    if operation in ("PutPermission", "RemovePermission"):
        bus = _bus_name(_str(body, "EventBusName"))
        return [Access(action, ctx.arn("events", f"event-bus/{bus}"))]
    if operation in ("TagResource", "UntagResource", "ListTagsForResource"):
        return [Access(action, _str(body, "ResourceARN") or "*")]
    return [Access(action, "*")]


# --------------------------------------------------------------------------- SSM

_SSM_BY_NAME = {
    "GetParameter",
    "PutParameter",
    "DeleteParameter",
    "GetParameterHistory",
    "LabelParameterVersion",
    "UnlabelParameterVersion",
}


def _parameter_arn(ctx: _Ctx, name: str) -> str:
    if name.startswith("arn:"):
        return name
    base = name.split(":", 1)[0]  # `name:3` / `name:label` selects a version
    return ctx.arn("ssm", f"parameter/{base.lstrip('/')}")


def _ssm(ctx: _Ctx, operation: str, body: Mapping[str, Any]) -> list[Access]:
    action = f"ssm:{operation}"
    if operation in _SSM_BY_NAME:
        name = _str(body, "Name")
        return [Access(action, _parameter_arn(ctx, name) if name else "*")]
    if operation in ("GetParameters", "DeleteParameters"):
        names = body.get("Names")
        found = [n for n in (names if isinstance(names, list) else []) if isinstance(n, str)]
        return [Access(action, _parameter_arn(ctx, n)) for n in found] or [Access(action, "*")]
    if operation == "GetParametersByPath":
        path = _str(body, "Path")
        return [Access(action, _parameter_arn(ctx, path) if path else "*")]
    if operation in ("AddTagsToResource", "RemoveTagsFromResource", "ListTagsForResource"):
        resource_id = _str(body, "ResourceId")
        if _str(body, "ResourceType") == "Parameter" and resource_id:
            return [Access(action, _parameter_arn(ctx, resource_id))]
    return [Access(action, "*")]


# --------------------------------------------------------------------------- KMS

_KMS_NO_KEY = {"CreateKey", "ListKeys", "ListAliases", "GenerateRandom", "ListRetirableGrants"}


def _key_arn(ctx: _Ctx, key_id: str) -> str:
    if key_id.startswith("arn:"):
        return key_id
    if key_id.startswith("alias/"):
        return ctx.arn("kms", key_id)
    return ctx.arn("kms", f"key/{key_id}")


def _key_of_ciphertext(blob: str | None) -> str | None:
    """The key id at the head of a local (moto) ciphertext blob: a 36-character UUID."""
    if not blob:
        return None
    try:
        head = base64.b64decode(blob)[:36].decode("ascii")
        return str(uuid.UUID(head))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def _kms(ctx: _Ctx, operation: str, body: Mapping[str, Any]) -> list[Access]:
    action = f"kms:{operation}"
    if operation in _KMS_NO_KEY:
        return [Access(action, "*")]
    context: dict[str, ContextValue] = {}
    encryption_context = body.get("EncryptionContext")
    if isinstance(encryption_context, dict) and encryption_context:
        for name, value in encryption_context.items():
            context[f"kms:EncryptionContext:{name}"] = str(value)
        context["kms:EncryptionContextKeys"] = [str(name) for name in encryption_context]
    if operation == "ReEncrypt":
        source = _str(body, "SourceKeyId") or _key_of_ciphertext(_str(body, "CiphertextBlob"))
        destination = _str(body, "DestinationKeyId")
        return [
            Access("kms:ReEncryptFrom", _key_arn(ctx, source) if source else "*", context),
            Access("kms:ReEncryptTo", _key_arn(ctx, destination) if destination else "*", context),
        ]
    if operation in ("CreateAlias", "UpdateAlias", "DeleteAlias"):
        alias = _str(body, "AliasName")
        accesses = [Access(action, ctx.arn("kms", alias) if alias else "*")]
        target = _str(body, "TargetKeyId")
        if target:
            accesses.append(Access(action, _key_arn(ctx, target)))
        return accesses
    key_id = _str(body, "KeyId")
    if key_id is None and operation == "Decrypt":
        key_id = _key_of_ciphertext(_str(body, "CiphertextBlob"))
    if key_id is None:
        return [Access(action, "*", context)]
    if key_id.startswith("alias/") or ":alias/" in key_id:
        context["kms:RequestAlias"] = key_id.split(":", 5)[-1]
    return [Access(action, _key_arn(ctx, key_id), context)]


# --------------------------------------------------------------------------- Logs


def _logs(ctx: _Ctx, operation: str, body: Mapping[str, Any]) -> list[Access]:
    action = f"logs:{operation}"
    group = _str(body, "logGroupName") or _str(body, "logGroupIdentifier")
    if group is None:
        arn = _str(body, "resourceArn")
        return [Access(action, arn or "*")]
    if group.startswith("arn:"):
        group = group.split(":log-group:", 1)[-1].removesuffix(":*")
    stream = _str(body, "logStreamName")
    resource = f"log-group:{group}"
    if stream is not None:
        resource += f":log-stream:{stream}"
    return [Access(action, ctx.arn("logs", resource))]


# --------------------------------------------------------------------------- Step Functions

_STATES_ARN_FIELDS = (
    "stateMachineArn",
    "executionArn",
    "mapRunArn",
    "resourceArn",
    "activityArn",
    "stateMachineAliasArn",
    "stateMachineVersionArn",
)


def _states(ctx: _Ctx, operation: str, body: Mapping[str, Any]) -> list[Access]:
    action = f"states:{operation}"
    if operation.startswith("SendTask") or operation in ("ListStateMachines", "ListActivities"):
        return [Access(action, "*")]
    if operation == "CreateStateMachine":
        name = _str(body, "name")
        return [Access(action, ctx.arn("states", f"stateMachine:{name}") if name else "*")]
    if operation == "CreateActivity":
        name = _str(body, "name")
        return [Access(action, ctx.arn("states", f"activity:{name}") if name else "*")]
    for name in _STATES_ARN_FIELDS:
        arn = _str(body, name)
        if arn:
            return [Access(action, arn)]
    return [Access(action, "*")]


# --------------------------------------------------------------------------- Lambda

_LAMBDA_ROUTE = re.compile(
    r"^/(?P<version>\d{4}-\d{2}-\d{2})/functions/?(?P<name>[^/]*)/?(?P<rest>.*)$"
)


def _function_arn(ctx: _Ctx, name: str, qualifier: str | None) -> str:
    if name.startswith("arn:"):
        arn = name
    elif ":function:" in name:  # `<account>:function:<name>[:qualifier]`
        account, _, rest = name.partition(":function:")
        arn = ctx.arn("lambda", f"function:{rest}", account=account)
    else:
        arn = ctx.arn("lambda", f"function:{name}")
    if qualifier and arn.count(":") == 6:
        arn = f"{arn}:{qualifier}"
    return arn


_LAMBDA_SUBROUTES: dict[tuple[str, str], str] = {
    ("GET", ""): "GetFunction",
    ("DELETE", ""): "DeleteFunction",
    ("GET", "configuration"): "GetFunctionConfiguration",
    ("PUT", "configuration"): "UpdateFunctionConfiguration",
    ("PUT", "code"): "UpdateFunctionCode",
    ("GET", "policy"): "GetPolicy",
    ("POST", "policy"): "AddPermission",
    ("GET", "versions"): "ListVersionsByFunction",
    ("POST", "versions"): "PublishVersion",
    ("GET", "aliases"): "ListAliases",
    ("POST", "aliases"): "CreateAlias",
    ("GET", "concurrency"): "GetFunctionConcurrency",
    ("PUT", "concurrency"): "PutFunctionConcurrency",
    ("DELETE", "concurrency"): "DeleteFunctionConcurrency",
    ("POST", "invocations"): "InvokeFunction",
    ("POST", "invoke-async"): "InvokeFunction",
}


_SCHEMAS_ROUTE = re.compile(
    r"^/v1/registries(?:/name/(?P<registry>[^/]+)"
    r"(?:(?P<list>/schemas)(?:/name/(?P<schema>[^/]+)(?P<export>/export)?)?)?)?/?$"
)


def _schemas(ctx: _Ctx) -> tuple[str, list[Access]]:
    """The Schema Registry's read operations (the ones the local runtime serves), by route."""
    request = ctx.request
    route = _SCHEMAS_ROUTE.match(request.path)
    if request.method != "GET" or route is None:
        operation = f"{request.method}{unquote(request.path)}"
        return operation, [Access(f"schemas:{operation}", "*")]
    registry, schema = route.group("registry"), route.group("schema")
    if registry is None:
        return "ListRegistries", [Access("schemas:ListRegistries", "*")]
    registry_arn = ctx.arn("schemas", f"registry/{unquote(registry)}")
    if schema is None:
        if route.group("list"):
            return "ListSchemas", [Access("schemas:ListSchemas", registry_arn)]
        return "DescribeRegistry", [Access("schemas:DescribeRegistry", registry_arn)]
    schema_arn = ctx.arn("schemas", f"schema/{unquote(registry)}/{unquote(schema)}")
    operation = "ExportSchema" if route.group("export") else "DescribeSchema"
    return operation, [Access(f"schemas:{operation}", schema_arn)]


def _lambda(ctx: _Ctx) -> tuple[str, list[Access]]:
    request = ctx.request
    method = request.method
    route = _LAMBDA_ROUTE.match(request.path)
    if route is None:
        operation = f"{method}{unquote(request.path)}"
        return operation, [Access(f"lambda:{operation}", "*")]
    name = unquote(route.group("name"))
    rest = route.group("rest").strip("/")
    if not name:
        if method == "GET":
            return "ListFunctions", [Access("lambda:ListFunctions", "*")]
        if method == "POST":
            body = _json(request.body)
            fn = _str(body, "FunctionName")
            resource = _function_arn(ctx, fn, None) if fn else "*"
            return "CreateFunction", [Access("lambda:CreateFunction", resource)]
    qualifier = dict(parse_qsl(request.query)).get("Qualifier")
    sub = rest.split("/", 1)[0]
    action = _LAMBDA_SUBROUTES.get((method, sub))
    if action is None and sub == "policy" and method == "DELETE":
        action = "RemovePermission"
    if action is None and sub == "aliases" and "/" in rest:
        action = {"GET": "GetAlias", "PUT": "UpdateAlias", "DELETE": "DeleteAlias"}.get(method)
    if action is None:
        action = f"{method}{unquote(request.path)}"
        return action, [Access(f"lambda:{action}", "*")]
    operation = "Invoke" if action == "InvokeFunction" else action
    return operation, [Access(f"lambda:{action}", _function_arn(ctx, name, qualifier))]


# --------------------------------------------------------------------------- query protocol


def _sqs_query(ctx: _Ctx, action: str, params: Mapping[str, str]) -> list[Access]:
    return _sqs(ctx, action, params)


def _sns(ctx: _Ctx, action: str, params: Mapping[str, str]) -> list[Access]:
    iam_action = "sns:Publish" if action == "PublishBatch" else f"sns:{action}"
    if action in ("ListTopics", "ListSubscriptions", "CreatePlatformApplication"):
        return [Access(iam_action, "*")]
    if action == "CreateTopic":
        name = params.get("Name")
        return [Access(iam_action, ctx.arn("sns", name) if name else "*")]
    for field_name in ("TopicArn", "TargetArn", "ResourceArn"):
        arn = params.get(field_name)
        if arn:
            return [Access(iam_action, arn)]
    subscription = params.get("SubscriptionArn")
    if subscription and subscription.count(":") >= 6:
        return [Access(iam_action, subscription.rsplit(":", 1)[0])]
    return [Access(iam_action, "*")]


def _sts(ctx: _Ctx, action: str, params: Mapping[str, str]) -> list[Access]:
    iam_action = f"sts:{action}"
    role = params.get("RoleArn")
    if action.startswith("AssumeRole") and role:
        context: dict[str, ContextValue] = {}
        for name, key in (
            ("RoleSessionName", "sts:RoleSessionName"),
            ("ExternalId", "sts:ExternalId"),
            ("SourceIdentity", "sts:SourceIdentity"),
        ):
            if params.get(name):
                context[key] = params[name]
        return [Access(iam_action, role, context)]
    return [Access(iam_action, "*")]


_IAM_NAMES = (
    ("RoleName", "role"),
    ("UserName", "user"),
    ("GroupName", "group"),
    ("InstanceProfileName", "instance-profile"),
)


def _iam(ctx: _Ctx, action: str, params: Mapping[str, str]) -> list[Access]:
    iam_action = f"iam:{action}"
    arn = params.get("PolicyArn")
    if arn and action in ("GetPolicy", "GetPolicyVersion", "ListPolicyVersions", "DeletePolicy"):
        return [Access(iam_action, arn)]
    for name, kind in _IAM_NAMES:
        value = params.get(name)
        if value:
            return [Access(iam_action, f"arn:aws:iam::{ctx.account}:{kind}/{value}")]
    return [Access(iam_action, arn or "*")]


_JsonHandler = Callable[[_Ctx, str, Mapping[str, Any]], list[Access] | None]
_QueryHandler = Callable[[_Ctx, str, Mapping[str, str]], list[Access] | None]

_JSON_HANDLERS: dict[str, _JsonHandler] = {
    "sqs": _sqs,
    "dynamodb": _dynamodb,
    "events": _events,
    "ssm": _ssm,
    "kms": _kms,
    "logs": _logs,
    "states": _states,
}
_QUERY_HANDLERS: dict[str, _QueryHandler] = {
    "sqs": _sqs_query,
    "sns": _sns,
    "sts": _sts,
    "iam": _iam,
}


# --------------------------------------------------------------------------- denials

_QUERY_CODES = {"sns": "AuthorizationError"}
_NAMESPACES = {
    "sqs": "http://queue.amazonaws.com/doc/2012-11-05/",
    "sns": "http://sns.amazonaws.com/doc/2010-03-31/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
}


def _xml_text(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def denial_response(
    mapped: MappedRequest, message: str, request_id: str
) -> tuple[int, dict[str, str], bytes]:
    """AWS's AccessDenied answer for the request's protocol: `(status, headers, body)`.

    S3: 403 `<Error><Code>AccessDenied</Code>` (no body for HEAD). DynamoDB: 400
    `com.amazonaws.dynamodb.v20120810#AccessDeniedException`. Other JSON services: 400
    `AccessDeniedException`; SQS's JSON protocol answers 403 with the query-compatible
    `x-amzn-query-error: AccessDenied;Sender`, so botocore reports `AccessDenied` whichever
    protocol the client speaks. Query services: 403 `<ErrorResponse>` with `AccessDenied` (SNS:
    `AuthorizationError`). Lambda: 403 `AccessDeniedException`.
    """
    if mapped.protocol == "rest-xml":
        headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            f"<Message>{_xml_text(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        return 403, headers, body
    if mapped.protocol == "query":
        code = _QUERY_CODES.get(mapped.service, "AccessDenied")
        namespace = _NAMESPACES.get(mapped.service, "")
        xmlns = f' xmlns="{namespace}"' if namespace else ""
        body = (
            f"<ErrorResponse{xmlns}><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{_xml_text(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        return 403, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body
    if mapped.protocol == "rest-json":
        headers = {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": "AccessDeniedException",
            "x-amzn-RequestId": request_id,
        }
        body = json.dumps({"Type": "User", "message": message}).encode()
        return 403, headers, body
    headers = {
        "Content-Type": f"application/x-amz-json-{mapped.json_version}",
        "x-amzn-RequestId": request_id,
    }
    if mapped.service == "dynamodb":
        code = "com.amazonaws.dynamodb.v20120810#AccessDeniedException"
        status = 400
    elif mapped.service == "sqs":
        code = "com.amazonaws.sqs#AccessDenied"
        headers["x-amzn-query-error"] = "AccessDenied;Sender"
        status = 403
    else:
        code = "AccessDeniedException"
        status = 400
    return status, headers, json.dumps({"__type": code, "message": message}).encode()
