"""`AWS::Events::EventBus`, `AWS::Events::EventBusPolicy` and `AWS::Events::Rule` (moto stores
buses and rules; the runtime delivers to targets, fires scheduled rules and keeps bus policies)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from sluice.local.providers.base import (
    ResourceProvider,
    ResourceRequest,
    ScheduleSpec,
    arn,
    generated_name,
    register,
)
from sluice.local.schedules import ScheduleError, parse_schedule
from sluice.local.template import Outputs

if TYPE_CHECKING:
    from collections.abc import Mapping

TARGET_KEYS = frozenset(
    {
        "Arn",
        "Id",
        "Input",
        "InputPath",
        "InputTransformer",
        "DeadLetterConfig",
        "RetryPolicy",
        "RoleArn",
        "SqsParameters",
    }
)
"""Rule target properties the local delivery honours."""

TARGET_SERVICES = ("sqs", "lambda", "states", "events", "logs")
"""Services a rule target may be delivered to locally."""


def check_retry_and_dlq(request: ResourceRequest, target: dict[str, Any], where: str) -> None:
    """`RetryPolicy` within AWS's ranges (0-185 retries, 60-86400 s of event age) and a
    `DeadLetterConfig` that is a standard SQS queue, as EventBridge and EventBridge Scheduler
    require (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html).

    Raises:
        ProvisioningError: a value AWS refuses.
    """
    policy = target.get("RetryPolicy") or {}
    retries = policy.get("MaximumRetryAttempts")
    if retries is not None and not 0 <= int(retries) <= 185:
        raise request.error(
            "must be between 0 and 185", prop=f"{where}.RetryPolicy.MaximumRetryAttempts"
        )
    age = policy.get("MaximumEventAgeInSeconds")
    if age is not None and not 60 <= int(age) <= 86_400:
        raise request.error(
            "must be between 60 and 86400", prop=f"{where}.RetryPolicy.MaximumEventAgeInSeconds"
        )
    dlq = str((target.get("DeadLetterConfig") or {}).get("Arn") or "")
    if dlq and (dlq.split(":")[2:3] != ["sqs"] or dlq.endswith(".fifo")):
        raise request.error(
            "a dead-letter queue must be a standard SQS queue", prop=f"{where}.DeadLetterConfig.Arn"
        )


@register
class EventBusProvider(ResourceProvider):
    """A custom event bus."""

    type_name = "AWS::Events::EventBus"
    honoured = frozenset({"Name", "Tags", "Description", "Policy"})
    noted: ClassVar[Mapping[str, str]] = {
        "KmsKeyIdentifier": "events are not encrypted locally",
        "DeadLetterConfig": "bus-level DLQ not emulated",
    }

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        request.report.note = "; ".join(notes)
        events = self.ctx.clients("events")
        name = str(request.props["Name"])
        try:
            await events.create_event_bus(Name=name)
        except events.exceptions.ResourceAlreadyExistsException:
            request.report.action = "updated"
        bus_arn = arn("events", f"event-bus/{name}")
        policy = request.props.get("Policy")
        if policy:
            document = json.loads(policy) if isinstance(policy, str) else policy
            self.ctx.policies.set_bus_policy(bus_arn, document)
        return Outputs(ref=name, attrs={"Arn": bus_arn, "Name": name})


@register
class EventBusPolicyProvider(ResourceProvider):
    """One statement of a bus policy (`Statement`, or the older `Action`/`Principal`/`Condition`
    form), merged by `StatementId` into the bus's policy."""

    type_name = "AWS::Events::EventBusPolicy"
    honoured = frozenset(
        {"EventBusName", "StatementId", "Statement", "Action", "Principal", "Condition"}
    )

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        bus = str(props.get("EventBusName") or "default").rsplit("/", 1)[-1]
        bus_arn = arn("events", f"event-bus/{bus}")
        sid = str(props["StatementId"])
        if props.get("Statement"):
            statement = dict(props["Statement"])
        else:
            if not props.get("Principal") or not props.get("Action"):
                raise request.error("either Statement or Action and Principal", prop="Statement")
            principal = str(props["Principal"])
            statement = {
                "Effect": "Allow",
                "Principal": "*" if principal == "*" else {"AWS": f"arn:aws:iam::{principal}:root"},
                "Action": str(props["Action"]),
                "Resource": bus_arn,
            }
            condition = props.get("Condition")
            if condition:
                statement["Condition"] = {
                    str(condition["Type"]): {str(condition["Key"]): condition["Value"]}
                }
        self.ctx.policies.put_bus_statement(bus_arn, sid, statement)
        request.report.note = f"statement {sid} of the {bus} bus policy"
        return Outputs(ref=sid)


@register
class RuleProvider(ResourceProvider):
    """A rule with a pattern or a schedule (fired locally), and its targets."""

    type_name = "AWS::Events::Rule"
    honoured = frozenset(
        {
            "Name",
            "EventBusName",
            "EventPattern",
            "ScheduleExpression",
            "State",
            "Targets",
            "Description",
            "RoleArn",
        }
    )

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        events = self.ctx.clients("events")
        name = str(props.get("Name") or generated_name(request.stack, request.logical_id))
        bus = str(props.get("EventBusName") or "default").rsplit("/", 1)[-1]
        state = str(props.get("State", "ENABLED"))
        args: dict[str, Any] = {"Name": name, "EventBusName": bus, "State": state}
        if "EventPattern" in props:
            pattern = props["EventPattern"]
            args["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        schedule = props.get("ScheduleExpression")
        if schedule:
            try:
                parse_schedule(str(schedule))
            except ScheduleError as exc:
                raise request.error(str(exc), prop="ScheduleExpression") from exc
            args["ScheduleExpression"] = str(schedule)
        if props.get("Description"):
            args["Description"] = str(props["Description"])
        await events.put_rule(**args)
        targets = []
        for target in props.get("Targets") or []:
            extra = set(target) - TARGET_KEYS
            if extra:
                raise request.error(
                    "target property is not supported by the local runtime",
                    prop=f"Targets.{sorted(extra)[0]}",
                )
            service = str(target["Arn"]).split(":")[2]
            if service not in TARGET_SERVICES:
                raise request.error(
                    f"{service} targets are not emulated locally", prop="Targets.Arn"
                )
            check_retry_and_dlq(request, target, "Targets")
            clean = dict(target)
            if isinstance(clean.get("InputTransformer", {}).get("InputPathsMap"), dict):
                clean["InputTransformer"] = dict(clean["InputTransformer"])
            targets.append(clean)
        if targets:
            await events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        out_notes = []
        if any("RetryPolicy" in t for t in targets):
            out_notes.append("RetryPolicy: honoured on a compressed clock (sluice/local/README)")
        if schedule:
            await self.ctx.sink.register_schedule(
                ScheduleSpec(name, str(schedule), state == "ENABLED", "rule", bus)
            )
            out_notes.append(f"fired locally: {schedule}")
        request.report.note = "; ".join(out_notes)
        rule_arn = arn("events", f"rule/{name}" if bus == "default" else f"rule/{bus}/{name}")
        ref = name if bus == "default" else f"{bus}|{name}"
        return Outputs(ref=ref, attrs={"Arn": rule_arn})


@register
class ArchiveProvider(ResourceProvider):
    """An archive of a bus's events (moto stores it; the runtime's dispatcher fills it and
    `StartReplay` sends its events back, see sluice/local/README)."""

    type_name = "AWS::Events::Archive"
    honoured = frozenset(
        {"ArchiveName", "SourceArn", "Description", "EventPattern", "RetentionDays"}
    )
    noted: ClassVar[Mapping[str, str]] = {
        "KmsKeyIdentifier": "archived events are not encrypted locally",
    }

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        events = self.ctx.clients("events")
        name = str(props.get("ArchiveName") or generated_name(request.stack, request.logical_id))
        args: dict[str, Any] = {"ArchiveName": name}
        for key in ("Description", "RetentionDays"):
            if props.get(key) is not None:
                args[key] = props[key]
        if props.get("EventPattern") is not None:
            pattern = props["EventPattern"]
            args["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        try:
            await events.create_archive(EventSourceArn=str(props["SourceArn"]), **args)
        except events.exceptions.ResourceAlreadyExistsException:
            await events.update_archive(**args)
            request.report.action = "updated"
        request.report.note = "; ".join(notes)
        return Outputs(ref=name, attrs={"Arn": arn("events", f"archive/{name}")})
