"""`AWS::DynamoDB::Table`, in the embedded moto."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from sluice.local.providers.base import ResourceProvider, ResourceRequest, generated_name, register
from sluice.local.template import Outputs

if TYPE_CHECKING:
    from collections.abc import Mapping


@register
class TableProvider(ResourceProvider):
    """A table: keys, GSIs/LSIs, billing, streams, SSE and the TTL setting (moto never expires
    items)."""

    type_name = "AWS::DynamoDB::Table"
    honoured = frozenset(
        {
            "TableName",
            "KeySchema",
            "AttributeDefinitions",
            "BillingMode",
            "ProvisionedThroughput",
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "StreamSpecification",
            "SSESpecification",
            "TimeToLiveSpecification",
            "Tags",
            "TableClass",
            "DeletionProtectionEnabled",
        }
    )
    noted: ClassVar[Mapping[str, str]] = {
        "PointInTimeRecoverySpecification": "backups have no local meaning",
        "ContributorInsightsSpecification": "no CloudWatch locally",
    }

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props, report = request.props, request.report
        ddb = self.ctx.clients("dynamodb")
        name = str(props.get("TableName") or generated_name(request.stack, request.logical_id, 255))
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        for key in ("ProvisionedThroughput", "LocalSecondaryIndexes", "StreamSpecification"):
            if key in props:
                args[key] = props[key]
        if "GlobalSecondaryIndexes" in props:
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if "SSESpecification" in props:
            sse = dict(props["SSESpecification"])
            sse["Enabled"] = str(sse.get("SSEEnabled", sse.get("Enabled", "false"))).lower() == (
                "true"
            )
            sse.pop("SSEEnabled", None)
            args["SSESpecification"] = sse
        if props.get("Tags"):
            args["Tags"] = props["Tags"]
        try:
            await ddb.create_table(**args)
        except ddb.exceptions.ResourceInUseException:
            report.action = "updated"
        ttl = props.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled", "false")).lower() == "true":
            await ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
            notes = [*notes, "TimeToLiveSpecification: stored; moto never expires items"]
        report.note = "; ".join(notes)
        described = (await ddb.describe_table(TableName=name))["Table"]
        attrs = {"Arn": described["TableArn"]}
        if described.get("LatestStreamArn"):
            attrs["StreamArn"] = described["LatestStreamArn"]
        return Outputs(ref=name, attrs=attrs)
