"""`AWS::SSM::Parameter`, in the embedded moto."""

from __future__ import annotations

from typing import Any

from sluice.local.providers.base import (
    ResourceProvider,
    ResourceRequest,
    register,
)
from sluice.local.template import Outputs


@register
class ParameterProvider(ResourceProvider):
    """An SSM parameter (overwritten on re-provisioning)."""

    type_name = "AWS::SSM::Parameter"
    honoured = frozenset(
        {"Name", "Type", "Value", "Description", "Tier", "AllowedPattern", "Tags", "DataType"}
    )

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        name = str(props.get("Name") or f"/{request.stack}/{request.logical_id}")
        args: dict[str, Any] = {
            "Name": name,
            "Value": str(props["Value"]),
            "Type": str(props.get("Type", "String")),
            "Overwrite": True,
        }
        for key in ("Description", "Tier", "AllowedPattern", "DataType"):
            if key in props:
                args[key] = str(props[key])
        await self.ctx.clients("ssm").put_parameter(**args)
        return Outputs(ref=name, attrs={"Type": args["Type"], "Value": args["Value"]})
