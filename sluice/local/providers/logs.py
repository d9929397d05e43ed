"""`AWS::Logs::LogGroup`, in the embedded moto."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

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
class LogGroupProvider(ResourceProvider):
    """A log group (function logs go to files under the state dir instead)."""

    type_name = "AWS::Logs::LogGroup"
    honoured = frozenset({"LogGroupName", "RetentionInDays", "Tags"})
    noted: ClassVar[Mapping[str, str]] = {
        "KmsKeyId": "log files are not encrypted locally",
        "LogGroupClass": "n/a locally",
    }

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        logs = self.ctx.clients("logs")
        name = str(props.get("LogGroupName") or f"/{request.stack}/{request.logical_id}")
        try:
            await logs.create_log_group(logGroupName=name)
        except logs.exceptions.ResourceAlreadyExistsException:
            request.report.action = "updated"
        if "RetentionInDays" in props:
            await logs.put_retention_policy(
                logGroupName=name, retentionInDays=int(props["RetentionInDays"])
            )
        request.report.note = "function logs are written to <state-dir>/logs/<function>.log"
        return Outputs(ref=name, attrs={"Arn": arn("logs", f"log-group:{name}:*")})
