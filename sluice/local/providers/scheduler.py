"""`AWS::Scheduler::Schedule`, fired by the local scheduler."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from sluice.local.providers.base import (
    ResourceProvider,
    ResourceRequest,
    ScheduleSpec,
    arn,
    generated_name,
    register,
)
from sluice.local.providers.events import check_retry_and_dlq
from sluice.local.schedules import ScheduleError, parse_schedule
from sluice.local.template import Outputs

if TYPE_CHECKING:
    from collections.abc import Mapping

SCHEDULER_TARGET_SERVICES = ("sqs", "lambda", "states")
"""Services an EventBridge Scheduler target may be delivered to locally."""


@register
class ScheduleProvider(ResourceProvider):
    """A UTC `rate(...)`/`cron(...)` schedule with one SQS, Lambda or Step Functions target."""

    type_name = "AWS::Scheduler::Schedule"
    honoured = frozenset(
        {
            "Name",
            "ScheduleExpression",
            "State",
            "Target",
            "FlexibleTimeWindow",
            "Description",
            "ScheduleExpressionTimezone",
        }
    )
    noted: ClassVar[Mapping[str, str]] = {"GroupName": "schedule groups are not emulated"}

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        timezone = props.get("ScheduleExpressionTimezone")
        if timezone not in (None, "UTC", "Etc/UTC"):
            raise request.error(
                "only UTC schedules are emulated", prop="ScheduleExpressionTimezone"
            )
        expression = str(props["ScheduleExpression"])
        try:
            parse_schedule(expression)
        except ScheduleError as exc:
            raise request.error(str(exc), prop="ScheduleExpression") from exc
        target = dict(props["Target"])
        check_retry_and_dlq(request, target, "Target")
        service = str(target["Arn"]).split(":")[2]
        if service not in SCHEDULER_TARGET_SERVICES:
            raise request.error(
                f"{service} scheduler targets are not emulated locally", prop="Target.Arn"
            )
        name = str(props.get("Name") or generated_name(request.stack, request.logical_id))
        enabled = str(props.get("State", "ENABLED")) == "ENABLED"
        await self.ctx.sink.register_schedule(
            ScheduleSpec(name, expression, enabled, "scheduler", target=target)
        )
        request.report.action = "emulated"
        request.report.note = f"fired locally: {expression}" + ("" if enabled else " (DISABLED)")
        return Outputs(ref=name, attrs={"Arn": arn("scheduler", f"schedule/default/{name}")})
