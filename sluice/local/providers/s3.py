"""`AWS::S3::Bucket` and `AWS::S3::BucketPolicy`, in the embedded moto."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from sluice.local.providers.base import (
    ResourceProvider,
    ResourceRequest,
    as_bool,
    generated_name,
    register,
)
from sluice.local.template import REGION, Outputs

if TYPE_CHECKING:
    from collections.abc import Mapping


@register
class BucketProvider(ResourceProvider):
    """A bucket: versioning, encryption, public-access block, ownership, tags, CORS and
    EventBridge notifications applied; lifecycle and logging only noted."""

    type_name = "AWS::S3::Bucket"
    honoured = frozenset(
        {
            "BucketName",
            "VersioningConfiguration",
            "BucketEncryption",
            "PublicAccessBlockConfiguration",
            "NotificationConfiguration",
            "OwnershipControls",
            "Tags",
            "CorsConfiguration",
        }
    )
    noted: ClassVar[Mapping[str, str]] = {
        "LifecycleConfiguration": "stored, never applied locally",
        "LoggingConfiguration": "no server access logs locally",
        "ObjectLockEnabled": "not enforced locally",
        "ObjectLockConfiguration": "not enforced locally",
        "IntelligentTieringConfigurations": "storage classes have no local meaning",
        "MetricsConfigurations": "no CloudWatch metrics locally",
    }

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props, report = request.props, request.report
        report.note = "; ".join(notes)
        s3 = self.ctx.clients("s3")
        name = str(
            props.get("BucketName") or generated_name(request.stack, request.logical_id, 63).lower()
        )
        existing = {b["Name"] for b in (await s3.list_buckets()).get("Buckets", [])}
        if name in existing:
            report.action = "updated"
        else:
            await s3.create_bucket(Bucket=name)
        if "VersioningConfiguration" in props:
            await s3.put_bucket_versioning(
                Bucket=name,
                VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]},
            )
        if "BucketEncryption" in props:
            rules = []
            for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]:
                # CloudFormation's names differ from the API's.
                api_rule: dict[str, Any] = {
                    "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]
                }
                if "BucketKeyEnabled" in rule:
                    api_rule["BucketKeyEnabled"] = as_bool(rule["BucketKeyEnabled"])
                rules.append(api_rule)
            await s3.put_bucket_encryption(
                Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules}
            )
        if "PublicAccessBlockConfiguration" in props:
            await s3.put_public_access_block(
                Bucket=name,
                PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"],
            )
        if "OwnershipControls" in props:
            await s3.put_bucket_ownership_controls(
                Bucket=name, OwnershipControls=props["OwnershipControls"]
            )
        if "Tags" in props:
            await s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": props["Tags"]})
        if "CorsConfiguration" in props:
            await s3.put_bucket_cors(
                Bucket=name,
                CORSConfiguration={"CORSRules": props["CorsConfiguration"]["CorsRules"]},
            )
        notification = props.get("NotificationConfiguration")
        if notification:
            extra = set(notification) - {"EventBridgeConfiguration"}
            if extra:
                raise request.error(
                    "only EventBridge notifications are emulated locally",
                    prop=f"NotificationConfiguration.{sorted(extra)[0]}",
                )
            bridge = notification.get("EventBridgeConfiguration") or {}
            config: dict[str, Any] = {}
            if str(bridge.get("EventBridgeEnabled", "true")).lower() == "true":
                config["EventBridgeConfiguration"] = {}
            await s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration=config
            )
        return Outputs(
            ref=name,
            attrs={
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
                "DualStackDomainName": f"{name}.s3.dualstack.{REGION}.amazonaws.com",
                "WebsiteURL": f"http://{name}.s3-website-{REGION}.amazonaws.com",
            },
        )


@register
class BucketPolicyProvider(ResourceProvider):
    """A bucket policy, stored in moto (moto's own evaluation of it is switched off: the runtime's
    IAM enforcer decides, see `sluice.local.iam`)."""

    type_name = "AWS::S3::BucketPolicy"
    honoured = frozenset({"Bucket", "PolicyDocument"})

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        bucket = str(request.props["Bucket"])
        document = request.props["PolicyDocument"]
        text = document if isinstance(document, str) else json.dumps(document)
        await self.ctx.clients("s3").put_bucket_policy(Bucket=bucket, Policy=text)
        request.report.note = "resource policy of the bucket and its objects"
        return Outputs(ref=bucket)
