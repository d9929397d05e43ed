"""`AWS::SQS::Queue` and `AWS::SQS::QueuePolicy`, in the embedded moto."""

from __future__ import annotations

import json

from sluice.local.providers.base import (
    ResourceProvider,
    ResourceRequest,
    arn,
    generated_name,
    register,
)
from sluice.local.template import Outputs

QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
)
"""Queue properties that are queue attributes of the same name."""


@register
class QueueProvider(ResourceProvider):
    """A queue with every attribute, `RedrivePolicy` included."""

    type_name = "AWS::SQS::Queue"
    honoured = frozenset({"QueueName", "Tags", *QUEUE_ATTRIBUTES})

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        sqs = self.ctx.clients("sqs")
        fifo = str(props.get("FifoQueue", "false")).lower() == "true"
        default = generated_name(request.stack, request.logical_id, 75) + (".fifo" if fifo else "")
        name = str(props.get("QueueName") or default)
        attributes: dict[str, str] = {}
        for key in QUEUE_ATTRIBUTES:
            if key not in props:
                continue
            value = props[key]
            if isinstance(value, dict):
                value = json.dumps(value)
            elif isinstance(value, bool):
                value = str(value).lower()
            attributes[key] = str(value)
        try:
            url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
            await sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
            request.report.action = "updated"
        except sqs.exceptions.QueueDoesNotExist:
            url = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
        if props.get("Tags"):
            await sqs.tag_queue(QueueUrl=url, Tags={t["Key"]: t["Value"] for t in props["Tags"]})
        return Outputs(ref=url, attrs={"Arn": arn("sqs", name), "QueueName": name, "QueueUrl": url})


@register
class QueuePolicyProvider(ResourceProvider):
    """A queue policy, stored as the queues' `Policy` attribute (read by the IAM enforcer)."""

    type_name = "AWS::SQS::QueuePolicy"
    honoured = frozenset({"Queues", "PolicyDocument"})

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        sqs = self.ctx.clients("sqs")
        for url in request.props["Queues"]:
            await sqs.set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(request.props["PolicyDocument"])}
            )
        request.report.note = "resource policy of the queue"
        return Outputs(ref=generated_name(request.stack, request.logical_id))
