"""EventBridge rule → target delivery, as AWS does it (moto's own delivery is replaced).

Runs on whatever thread moto handles `PutEvents`/`PutObject` on (or the scheduler's). SQS and bus
targets are delivered synchronously into moto; Lambda and Step Functions targets are handed to the
runtime's event loop (asynchronous, like AWS).

Each delivery is authorized first (`authorize`), as EventBridge is: an SQS target by the queue's
policy and a Lambda target by the function's policy, for the principal `events.amazonaws.com`
with `aws:SourceArn` = the rule's ARN and `aws:SourceAccount`; a target with a `RoleArn` (Step
Functions, another bus) by that role's trust policy (`sts:AssumeRole` by `events.amazonaws.com`)
and then the role's own policies. A denied delivery is a failed one: the event goes to the
target's dead-letter queue (if the DLQ's policy lets EventBridge send to it) or is dropped, and
counted either way.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("sluice.local.targets")

LambdaInvoke = Callable[[str, bytes], None]
"""Fire-and-forget asynchronous invoke: (function name or ARN, payload)."""
StartExecution = Callable[[str, str], None]
"""Fire-and-forget StartExecution: (state machine ARN, input JSON)."""
Authorize = Callable[[str, dict[str, Any]], None]
"""(rule ARN, target) → None, or raises `TargetError` when EventBridge may not deliver to it
(`TargetAccessDenied`), and for the dead-letter queue the target `{"Arn": <dlq ARN>}`."""

_PATH_TOKEN = re.compile(r"\.([A-Za-z0-9_\-@$]+)|\[(\d+)\]|\['([^']+)'\]")


class TargetError(Exception):
    """A target could not take the event (the event goes to the target's DLQ if it has one)."""

    code = "SDK_CLIENT_ERROR"
    """The `ERROR_CODE` attribute of the dead-lettered event."""


class TargetAccessDenied(TargetError):
    """EventBridge has no permission to deliver to the target (a resource policy, a role's trust
    or its policies refuse); `str()` is AWS's AccessDenied message."""

    code = "NO_PERMISSIONS"


def json_path(document: Any, path: str) -> Any:
    """Evaluate the simple JSONPath subset EventBridge `InputPath`/`InputPathsMap` accept.

    Supports `$`, `.name`, `['name']` and `[index]`. A missing step yields None (EventBridge
    substitutes nothing rather than failing).
    """
    if not path.startswith("$"):
        raise TargetError(f"invalid JSONPath {path!r}")
    current = document
    for name, index, quoted in _PATH_TOKEN.findall(path[1:]):
        if current is None:
            return None
        if index:
            current = (
                current[int(index)]
                if isinstance(current, list) and int(index) < len(current)
                else None
            )
        else:
            key = name or quoted
            current = current.get(key) if isinstance(current, dict) else None
    return current


def render_input(target: dict[str, Any], event: dict[str, Any], rule_name: str) -> str:
    """The payload a target receives: `Input`, `InputPath`, `InputTransformer` or the event.

    Raises:
        TargetError: an invalid path expression.
    """
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        return json.dumps(json_path(event, str(target["InputPath"])))
    transformer = target.get("InputTransformer")
    if transformer:
        values = {
            name: json_path(event, path)
            for name, path in (transformer.get("InputPathsMap") or {}).items()
        }
        values.setdefault("aws.events.rule-name", rule_name)
        values.setdefault("aws.events.event", event)
        values.setdefault("aws.events.event.json", event)
        values.setdefault("aws.events.rule-arn", "")
        values.setdefault("aws.events.event.ingestion-time", event.get("time"))

        def substitute(match: re.Match[str]) -> str:
            value = values.get(match.group(1))
            if value is None:
                return ""
            return value if isinstance(value, str) else json.dumps(value)

        return re.sub(r"<([A-Za-z0-9_.\-]+)>", substitute, str(transformer["InputTemplate"]))
    return json.dumps(event)


def normalize_event(event: dict[str, Any], account_id: str) -> dict[str, Any]:
    """The event as AWS delivers it: ISO `time`, `account` set, no moto-only fields."""
    out = {k: v for k, v in event.items() if k != "ingestion-time"}
    out.setdefault("version", "0")
    if not out.get("account"):
        out["account"] = account_id
    when = out.get("time")
    if isinstance(when, int | float):
        out["time"] = datetime.fromtimestamp(float(when), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif isinstance(when, datetime):
        out["time"] = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif not when:
        out["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return out


class TargetDispatcher:
    """Delivers events that matched a rule to the rule's targets.

    Args:
        invoke_lambda: asynchronous Lambda invoke into the local function runner.
        start_execution: StartExecution on the local workflow engine.
        account_id: account of the embedded moto.
        region: region of the embedded moto.
        authorize: checks EventBridge's permission to deliver to a target (None: no checks).
    """

    def __init__(
        self,
        invoke_lambda: LambdaInvoke,
        start_execution: StartExecution,
        account_id: str,
        region: str,
        authorize: Authorize | None = None,
    ) -> None:
        self.invoke_lambda = invoke_lambda
        self.start_execution = start_execution
        self.account_id = account_id
        self.region = region
        self.authorize = authorize
        self.delivered = 0
        self.failed = 0
        self.denied = 0
        self.dropped = 0

    def deliver_matched(self, rule: Any, event: dict[str, Any]) -> None:
        """Entry point of the moto patch: check state and pattern, then deliver.

        Disabled rules and scheduled rules (no pattern) never match a put event.
        """
        if getattr(rule, "state", "ENABLED") == "DISABLED":
            return
        if not rule.event_pattern.get_pattern():
            # A rule without a pattern is a schedule: it fires on its clock, never on put events.
            return
        if not rule.event_pattern.matches_event(event):
            return
        self.deliver(rule, event)

    def deliver(self, rule: Any, event: dict[str, Any]) -> None:
        """Send `event` to every target of `rule` (pattern already matched or a schedule fired)."""
        event = normalize_event(event, self.account_id)
        for target in list(rule.targets):
            try:
                if self.authorize is not None:
                    self.authorize(rule.arn, target)
                payload = render_input(target, event, rule.name)
                self._send(target, payload, event)
                self.delivered += 1
            except Exception as exc:
                self.failed += 1
                if isinstance(exc, TargetAccessDenied):
                    self.denied += 1
                log.warning(
                    "target delivery failed rule=%s target=%s error=%s",
                    rule.name,
                    target.get("Arn"),
                    exc,
                )
                self._dead_letter(rule, target, payload_or_event(event), exc)

    def _send(self, target: dict[str, Any], payload: str, event: dict[str, Any]) -> None:
        arn = str(target["Arn"])
        parts = arn.split(":", 5)
        service, resource = parts[2], parts[5] if len(parts) > 5 else ""
        if service == "sqs":
            group = (target.get("SqsParameters") or {}).get("MessageGroupId")
            self._sqs_send(parts[4], resource, payload, group)
        elif service == "lambda":
            self.invoke_lambda(arn, payload.encode())
        elif service == "states":
            self.start_execution(arn, payload)
        elif service == "events" and resource.startswith("event-bus/"):
            from moto.events.models import events_backends

            events_backends[parts[4]][parts[3]].put_events(
                [
                    {
                        "Source": event["source"],
                        "DetailType": event["detail-type"],
                        "Detail": json.dumps(event["detail"]),
                        "Resources": event.get("resources", []),
                        "EventBusName": resource.split("/", 1)[1],
                    }
                ]
            )
        elif service == "logs":
            self._logs_put(parts[4], resource.split(":", 1)[1].removesuffix(":*"), payload)
        else:
            raise TargetError(f"target service {service} is not emulated locally")

    def _sqs_send(self, account: str, queue_name: str, body: str, group: str | None) -> None:
        from moto.sqs.models import sqs_backends

        sqs_backends[account][self.region].send_message(
            queue_name=queue_name, message_body=body, group_id=group
        )

    def _logs_put(self, account: str, group: str, payload: str) -> None:
        import uuid

        from moto.logs.models import logs_backends

        backend = logs_backends[account][self.region]
        stream = str(uuid.uuid4())
        backend.create_log_stream(group, stream)
        backend.put_log_events(
            group, stream, [{"timestamp": int(time.time() * 1000), "message": payload}]
        )

    def _dead_letter(self, rule: Any, target: dict[str, Any], body: str, exc: Exception) -> None:
        dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
        if not dlq:
            self.dropped += 1
            return
        from moto.sqs.models import sqs_backends

        parts = str(dlq).split(":")
        code = exc.code if isinstance(exc, TargetError) else type(exc).__name__
        try:
            if self.authorize is not None:
                # EventBridge sends to the DLQ as itself: the DLQ's policy must allow it.
                self.authorize(rule.arn, {"Arn": str(dlq)})
            sqs_backends[parts[4]][parts[3]].send_message(
                queue_name=parts[5],
                message_body=body,
                message_attributes={
                    "RULE_ARN": {"DataType": "String", "StringValue": rule.arn},
                    "TARGET_ARN": {"DataType": "String", "StringValue": str(target["Arn"])},
                    "ERROR_CODE": {"DataType": "String", "StringValue": code},
                    "ERROR_MESSAGE": {"DataType": "String", "StringValue": str(exc)[:256]},
                },
            )
        except Exception as dlq_exc:
            self.dropped += 1
            log.error("dead-letter delivery failed dlq=%s error=%s", dlq, dlq_exc)


def describe_counts(dispatcher: TargetDispatcher) -> dict[str, int]:
    """The dispatcher's counters (for the state endpoint)."""
    return {
        "delivered": dispatcher.delivered,
        "failed": dispatcher.failed,
        "denied": dispatcher.denied,
        "dropped": dispatcher.dropped,
    }


def payload_or_event(event: dict[str, Any]) -> str:
    """What a target DLQ receives: the event as EventBridge would have sent it."""
    return json.dumps(event)
