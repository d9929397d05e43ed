"""`AWS::EventSchemas::Registry` and `AWS::EventSchemas::Schema`, in the runtime's own Schema
Registry (`sluice.local.schemas`; moto has none): a consumer reads the detail schema of each
DetailType locally as it does on AWS."""

from __future__ import annotations

from sluice.local.providers.base import ResourceProvider, ResourceRequest, register
from sluice.local.template import Outputs


@register
class RegistryProvider(ResourceProvider):
    """A schema registry (its description updated on re-provisioning)."""

    type_name = "AWS::EventSchemas::Registry"
    honoured = frozenset({"RegistryName", "Description", "Tags"})

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        if not props.get("RegistryName"):
            raise request.error("a registry needs a RegistryName locally", prop="RegistryName")
        registry = self.ctx.schemas.put_registry(
            str(props["RegistryName"]), str(props.get("Description", ""))
        )
        request.report.action = "emulated"
        return Outputs(
            ref=registry.arn,
            attrs={"RegistryArn": registry.arn, "RegistryName": registry.name},
        )


@register
class SchemaProvider(ResourceProvider):
    """A schema: a changed `Content` is a new version, as on AWS."""

    type_name = "AWS::EventSchemas::Schema"
    honoured = frozenset({"RegistryName", "SchemaName", "Type", "Content", "Description", "Tags"})

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        for required in ("RegistryName", "SchemaName", "Type", "Content"):
            if not props.get(required):
                raise request.error(f"a schema needs {required}", prop=required)
        try:
            schema = self.ctx.schemas.put_schema(
                str(props["RegistryName"]),
                str(props["SchemaName"]),
                str(props["Type"]),
                str(props["Content"]),
                str(props.get("Description", "")),
            )
        except KeyError:
            raise request.error(
                f"registry {props['RegistryName']!r} does not exist", prop="RegistryName"
            ) from None
        request.report.action = "emulated"
        return Outputs(
            ref=schema.arn,
            attrs={
                "SchemaArn": schema.arn,
                "SchemaName": schema.name,
                "SchemaVersion": str(schema.version),
            },
        )
