"""`AWS::KMS::Key` and `AWS::KMS::Alias`, in the embedded moto."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from sluice.local.providers.base import (
    ResourceProvider,
    ResourceRequest,
    arn,
    register,
)
from sluice.local.template import Outputs

if TYPE_CHECKING:
    from collections.abc import Mapping


@register
class KeyProvider(ResourceProvider):
    """A KMS key (its id remembered, so re-provisioning does not create another)."""

    type_name = "AWS::KMS::Key"
    honoured = frozenset({"Description", "KeyPolicy", "KeyUsage", "KeySpec", "Tags", "Enabled"})
    noted: ClassVar[Mapping[str, str]] = {
        "EnableKeyRotation": "rotation has no local meaning",
        "PendingWindowInDays": "keys are never deleted locally",
        "MultiRegion": "one region locally",
    }

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        key = (request.stack, request.logical_id)
        key_id = self.ctx.physical.get(key)
        kms = self.ctx.clients("kms")
        if key_id is None:
            args: dict[str, Any] = {"Description": str(props.get("Description", ""))}
            if "KeyPolicy" in props:
                args["Policy"] = json.dumps(props["KeyPolicy"])
            key_id = str((await kms.create_key(**args))["KeyMetadata"]["KeyId"])
            self.ctx.physical[key] = key_id
        else:
            request.report.action = "updated"
        request.report.note = "; ".join(notes)
        return Outputs(ref=key_id, attrs={"Arn": arn("kms", f"key/{key_id}"), "KeyId": key_id})


@register
class KeyAliasProvider(ResourceProvider):
    """A KMS alias (retargeted when it exists)."""

    type_name = "AWS::KMS::Alias"
    honoured = frozenset({"AliasName", "TargetKeyId"})

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        kms = self.ctx.clients("kms")
        name = str(request.props["AliasName"])
        target = str(request.props["TargetKeyId"])
        aliases = {a["AliasName"] for a in (await kms.list_aliases()).get("Aliases", [])}
        if name in aliases:
            await kms.update_alias(AliasName=name, TargetKeyId=target)
            request.report.action = "updated"
        else:
            await kms.create_alias(AliasName=name, TargetKeyId=target)
        return Outputs(ref=name)
