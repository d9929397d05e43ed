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
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
    """A target could not take the event (the event goes to the target's DLQ if it has one).

    Not retried: EventBridge sends such failures (a missing permission or resource, a payload
    the target refuses) to the dead-letter queue at once."""

    code = "SDK_CLIENT_ERROR"
    """The `ERROR_CODE` attribute of the dead-lettered event."""
    retryable = False


class TargetAccessDenied(TargetError):
    """EventBridge has no permission to deliver to the target (a resource policy, a role's trust
    or its policies refuse); `str()` is AWS's AccessDenied message."""

    code = "NO_PERMISSIONS"


class TargetNotFound(TargetError):
    """The target resource does not exist (a deleted queue, function or state machine)."""

    code = "RESOURCE_NOT_FOUND"


class TargetThrottled(TargetError):
    """The target service refused the call for now (throttling, a service error): retried under
    the target's `RetryPolicy`."""

    code = "THROTTLING"
    retryable = True


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


def render_input(
    target: dict[str, Any],
    event: dict[str, Any],
    rule_name: str,
    rule_arn: str = "",
    ingestion_time: str = "",
) -> str:
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
        values: dict[str, Any] = {
            name: json_path(event, path)
            for name, path in (transformer.get("InputPathsMap") or {}).items()
        }
        # The predefined variables are reserved: a path map cannot redefine them.
        values.update(
            {
                "aws.events.rule-name": rule_name,
                "aws.events.rule-arn": rule_arn,
                "aws.events.event": {k: v for k, v in event.items() if k != "detail"},
                "aws.events.event.json": event,
                "aws.events.event.ingestion-time": ingestion_time or event.get("time"),
            }
        )
        return fill_template(str(transformer["InputTemplate"]), values)
    return json.dumps(event)


_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


def fill_template(template: str, values: dict[str, Any]) -> str:
    """Fill an `InputTemplate` as EventBridge does
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html).

    A JSON template (one starting with `{`, `[` or `"`) stays valid JSON: a variable outside a
    JSON string becomes its JSON value (a string is quoted: `{"instance": <instance>}` →
    `{"instance": "i-123"}`; a variable whose path matched nothing becomes `null`), and one
    inside a string is escaped as string content (quotes, backslashes, newlines). A template
    that is not JSON (plain text for SNS or Logs) gets strings raw and other values as JSON.
    A placeholder naming no variable is left as written.
    """
    is_json = template.lstrip()[:1] in ("{", "[", '"')
    out: list[str] = []
    in_string = False
    escaped = False
    index = 0
    while index < len(template):
        char = template[index]
        if char == "<":
            match = _PLACEHOLDER.match(template, index)
            if match and match.group(1) in values:
                out.append(_placeholder_text(values[match.group(1)], is_json, in_string))
                index = match.end()
                continue
        if is_json:
            if escaped:
                escaped = False
            elif char == "\\" and in_string:
                escaped = True
            elif char == '"':
                in_string = not in_string
        out.append(char)
        index += 1
    return "".join(out)


def _placeholder_text(value: Any, is_json: bool, in_string: bool) -> str:
    if not is_json:
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value)
    if in_string:
        text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
        return json.dumps(text)[1:-1]
    return json.dumps(value)


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


TIME_SCALE = 60.0
"""Seconds of event age one local second counts for: `MaximumEventAgeInSeconds` (60 s at least
on AWS) is measured on a clock 60 times faster than the wall clock, so a one-minute age runs
out after one local second and the 24-hour default after 24 minutes."""
RETRY_BASE_S = 0.1
"""First local retry delay; each retry doubles it (with jitter), up to `RETRY_CAP_S`."""
RETRY_CAP_S = 2.0
DEFAULT_MAX_RETRIES = 185
DEFAULT_MAX_AGE_S = 86_400
CheckTarget = Callable[[dict[str, Any]], None]
"""target → None, or raises `TargetNotFound` when the target resource does not exist."""


@dataclass
class _Delivery:
    """One event on its way to one target, with its retry state."""

    rule: Any
    target: dict[str, Any]
    event: dict[str, Any]
    ingestion_time: str
    started: float = field(default_factory=time.monotonic)
    retries: int = 0


class TargetDispatcher:
    """Delivers events that matched a rule to the rule's targets, retrying as the target's
    `RetryPolicy` says and dead-lettering what cannot be delivered
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html).

    Args:
        invoke_lambda: asynchronous Lambda invoke into the local function runner.
        start_execution: StartExecution on the local workflow engine.
        account_id: account of the embedded moto.
        region: region of the embedded moto.
        authorize: checks EventBridge's permission to deliver to a target (None: no checks).
        check_target: checks that a Lambda or Step Functions target exists (None: no checks).
        time_scale: seconds of event age per local second (`TIME_SCALE`).
    """

    def __init__(
        self,
        invoke_lambda: LambdaInvoke,
        start_execution: StartExecution,
        account_id: str,
        region: str,
        authorize: Authorize | None = None,
        check_target: CheckTarget | None = None,
        time_scale: float = TIME_SCALE,
    ) -> None:
        self.invoke_lambda = invoke_lambda
        self.start_execution = start_execution
        self.account_id = account_id
        self.region = region
        self.authorize = authorize
        self.check_target = check_target
        self.time_scale = time_scale
        self.delivered = 0
        self.failed = 0
        self.denied = 0
        self.dropped = 0
        self.retried = 0
        self.dead_lettered = 0
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()

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
        ingestion_time = _iso(event.get("ingestion-time")) or _iso(time.time())
        event = normalize_event(event, self.account_id)
        for target in list(rule.targets):
            self._attempt(_Delivery(rule, target, event, ingestion_time))

    def close(self) -> None:
        """Cancel the retries still waiting (the runtime stops)."""
        with self._lock:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()

    def _attempt(self, delivery: _Delivery) -> None:
        rule, target, event = delivery.rule, delivery.target, delivery.event
        try:
            if self.check_target is not None:
                self.check_target(target)
            if self.authorize is not None:
                self.authorize(rule.arn, target)
            payload = render_input(target, event, rule.name, rule.arn, delivery.ingestion_time)
            self._send(target, payload, event)
            self.delivered += 1
            return
        except Exception as exc:
            error = exc
        exhausted = None
        if not isinstance(error, TargetError) or error.retryable:
            policy = target.get("RetryPolicy") or {}
            max_retries = int(policy.get("MaximumRetryAttempts", DEFAULT_MAX_RETRIES))
            max_age = float(policy.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE_S))
            delay = min(RETRY_CAP_S, RETRY_BASE_S * 2**delivery.retries)
            delay *= random.uniform(0.5, 1.0)
            age_then = (time.monotonic() + delay - delivery.started) * self.time_scale
            if delivery.retries >= max_retries:
                exhausted = "MaximumRetryAttempts"
            elif age_then > max_age:
                exhausted = "MaximumEventAgeInSeconds"
            else:
                delivery.retries += 1
                self.retried += 1
                self._later(delay, delivery)
                return
        self.failed += 1
        if isinstance(error, TargetAccessDenied):
            self.denied += 1
        log.warning(
            "target delivery failed rule=%s target=%s retries=%d error=%s",
            rule.name,
            target.get("Arn"),
            delivery.retries,
            error,
        )
        self._dead_letter(delivery, error, exhausted)

    def _later(self, delay: float, delivery: _Delivery) -> None:
        def run() -> None:
            with self._lock:
                self._timers.discard(timer)
            self._attempt(delivery)

        timer = threading.Timer(delay, run)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

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

            try:
                bus = events_backends[parts[4]][parts[3]].event_buses[resource.split("/", 1)[1]]
            except KeyError:
                raise TargetNotFound(f"Event bus {resource} does not exist.") from None
            events_backends[parts[4]][parts[3]].put_events(
                [
                    {
                        "Source": event["source"],
                        "DetailType": event["detail-type"],
                        "Detail": json.dumps(event["detail"]),
                        "Resources": event.get("resources", []),
                        "EventBusName": bus.name,
                    }
                ]
            )
        elif service == "events" and not resource.strip(":"):
            # moto's archive rules target `arn:aws:events:<region>:::`
            self._archive(parts[4] or self.account_id, parts[3] or self.region, payload)
        elif service == "logs":
            self._logs_put(parts[4], resource.split(":", 1)[1].removesuffix(":*"), payload)
        else:
            raise TargetError(f"target service {service} is not emulated locally")

    def _archive(self, account: str, region: str, payload: str) -> None:
        """The target of an archive's rule (moto's `Events-Archive-<name>`, whose input
        transformer names the archive): keep the event in the archive."""
        from moto.events.models import events_backends

        body = json.loads(payload)
        name, _, generation = str(body["archive-arn"]).rsplit("/", 1)[1].partition(":")
        archive = events_backends[account][region].archives.get(name)
        if archive is None or archive.uuid != generation:
            raise TargetNotFound(f"Archive {name} does not exist.")
        archive.events.append(body["event"])

    def _sqs_send(self, account: str, queue_name: str, body: str, group: str | None) -> None:
        from moto.sqs.exceptions import QueueDoesNotExist
        from moto.sqs.models import sqs_backends

        try:
            sqs_backends[account][self.region].send_message(
                queue_name=queue_name, message_body=body, group_id=group
            )
        except QueueDoesNotExist as exc:
            raise TargetNotFound(f"Queue {queue_name} does not exist: {exc}") from exc

    def _logs_put(self, account: str, group: str, payload: str) -> None:
        import uuid

        from moto.logs.models import logs_backends

        backend = logs_backends[account][self.region]
        if group not in backend.groups:
            raise TargetNotFound(f"Log group {group} does not exist.")
        stream = str(uuid.uuid4())
        backend.create_log_stream(group, stream)
        backend.put_log_events(
            group, stream, [{"timestamp": int(time.time() * 1000), "message": payload}]
        )

    def _dead_letter(self, delivery: _Delivery, exc: Exception, exhausted: str | None) -> None:
        rule, target = delivery.rule, delivery.target
        dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
        if not dlq:
            self.dropped += 1
            return
        from moto.sqs.models import sqs_backends

        parts = str(dlq).split(":")
        code = exc.code if isinstance(exc, TargetError) else "SDK_CLIENT_ERROR"
        attributes = {
            "RULE_ARN": rule.arn,
            "TARGET_ARN": str(target["Arn"]),
            "ERROR_CODE": code,
            "ERROR_MESSAGE": str(exc)[:256] or type(exc).__name__,
            "RETRY_ATTEMPTS": str(delivery.retries),
        }
        if exhausted:
            attributes["EXHAUSTED_RETRY_CONDITION"] = exhausted
        try:
            if self.authorize is not None:
                # EventBridge sends to the DLQ as itself: the DLQ's policy must allow it.
                self.authorize(rule.arn, {"Arn": str(dlq)})
            sqs_backends[parts[4]][parts[3]].send_message(
                queue_name=parts[5],
                message_body=payload_or_event(delivery.event),
                message_attributes={
                    name: {"DataType": "String", "StringValue": value}
                    for name, value in attributes.items()
                },
            )
            self.dead_lettered += 1
        except Exception as dlq_exc:
            self.dropped += 1
            log.error("dead-letter delivery failed dlq=%s error=%s", dlq, dlq_exc)


def _iso(when: Any) -> str:
    """An epoch or datetime as the ISO 8601 UTC stamp EventBridge writes ("" for None)."""
    if isinstance(when, int | float):
        return datetime.fromtimestamp(float(when), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(when, datetime):
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(when) if when else ""


def describe_counts(dispatcher: TargetDispatcher) -> dict[str, int]:
    """The dispatcher's counters (for the state endpoint)."""
    return {
        "delivered": dispatcher.delivered,
        "failed": dispatcher.failed,
        "denied": dispatcher.denied,
        "dropped": dispatcher.dropped,
        "retried": dispatcher.retried,
        "dead_lettered": dispatcher.dead_lettered,
    }


def payload_or_event(event: dict[str, Any]) -> str:
    """What a target DLQ receives: the event as EventBridge would have sent it."""
    return json.dumps(event)
