"""`AWS::SNS::Topic`, in the embedded moto (subscriptions are not delivered)."""

from __future__ import annotations

from sluice.local.providers.base import (
    ResourceProvider,
    ResourceRequest,
    generated_name,
    register,
)
from sluice.local.template import Outputs


@register
class TopicProvider(ResourceProvider):
    """An SNS topic (nothing is delivered to its subscriptions)."""

    type_name = "AWS::SNS::Topic"
    honoured = frozenset({"TopicName", "Tags", "DisplayName"})

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        name = str(
            request.props.get("TopicName") or generated_name(request.stack, request.logical_id, 256)
        )
        topic_arn = (await self.ctx.clients("sns").create_topic(Name=name))["TopicArn"]
        request.report.note = "subscriptions are not delivered locally"
        return Outputs(ref=topic_arn, attrs={"TopicArn": topic_arn, "TopicName": name})
