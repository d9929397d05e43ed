"""Fault injection for botocore clients (boto3 and aiobotocore) and for message delivery.

Tests and the local runtime switch faults on; Lambda never does (nothing here runs unless a spec
is given, and `SLUICE_FAULTS` is never set by the templates).

Client faults hook botocore's event system, so the code under test runs unchanged:

- `before-call.<service>.<Operation>` (`error`, `throttle`): the handler returns a fabricated
  error response, which short-circuits the request — **the call is not applied** — and botocore
  raises the `ClientError` it would raise for a real 5xx or throttling answer.
- `after-call.<service>.<Operation>` (`phantom`): the request reached the server and **was
  applied**; the handler rewrites the answer into a 5xx, so the caller believes it failed and
  retries a write that already happened (the "phantom write").
- `before-call` (`delay`): sleeps (asyncio for aiobotocore clients) and lets the call proceed.
- `after-call` (`crash`): the call was applied, then the worker dies (`WorkerCrash`).
- `after-call` (`partial`) on `PutEvents` / `SendMessageBatch`: every entry was applied, but the
  answer reports the chosen entries as failed (retryable), so only they should be resent.
- `before-parameter-build` (`drop`) on `PutEvents`: the chosen entries are taken out of the
  request — **they never reach the bus** — and the answer reports them failed (retryable) at
  their positions, as EventBridge does for entries it could not accept. Unless they are resent,
  they are lost. Dropped entries are kept in `FaultInjector.dropped`.

Every rule counts the calls it saw and the faults it fired, so a test can assert that a fault
actually happened (a scenario that passes because its fault never fired proves nothing).
Choices are drawn from one seeded `random.Random`, so a run is reproducible.

```python
injector = FaultInjector.from_spec({"seed": 7, "rules": [
    {"service": "s3", "operation": "PutObject", "kind": "phantom", "fraction": 0.1},
]})
injector.attach(client)            # boto3 or aiobotocore client
...
assert injector.fired("s3", "PutObject") > 0
```

Delivery faults (`DeliveryFaults`) act on lists of received messages: deliver each twice,
reverse or shuffle a batch. The test pump and the local runtime apply them between receiving
and invoking.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import orjson

ENV_VAR = "SLUICE_FAULTS"

FaultKind = Literal["error", "phantom", "throttle", "delay", "partial", "drop", "crash"]
_KINDS = ("error", "phantom", "throttle", "delay", "partial", "drop", "crash")
# The request_context key under which a PutEvents call remembers the entries it dropped.
_DROPPED_KEY = "sluice_faults_dropped"


class WorkerCrash(BaseException):
    """The execution environment died right after a call was applied (killed, timed out).

    A BaseException, so no `except Exception` in the code under test can swallow it, as a real
    SIGKILL cannot be caught. The delivery loop treats it as "no response": the whole batch is
    redelivered to a fresh environment."""


# What a throttled call of each service answers (code, HTTP status), as AWS does.
THROTTLE_ANSWERS: Mapping[str, tuple[str, int]] = {
    "s3": ("SlowDown", 503),
    "dynamodb": ("ProvisionedThroughputExceededException", 400),
    "events": ("ThrottlingException", 400),
    "sqs": ("ThrottlingException", 400),
    "stepfunctions": ("ThrottlingException", 400),
}
DEFAULT_THROTTLE = ("ThrottlingException", 400)
ERROR_ANSWERS: Mapping[str, str] = {"s3": "ServiceUnavailable"}
DEFAULT_ERROR = "InternalFailure"

_ActiveT = TypeVar("_ActiveT")


@dataclass
class FaultRule:
    """One fault: which calls it applies to and how often.

    Args:
        service: the client's service name (`s3`, `dynamodb`, `events`, `sqs`).
        operation: the API operation (`PutObject`), or `*` for every operation of the service.
        kind: `error` (not applied), `phantom` (applied, then a 5xx), `throttle`, `delay`,
            `partial` (batch APIs: applied, entries reported failed; decided per entry),
            `drop` (PutEvents: entries not sent, reported failed; decided per entry).
        fraction: probability that a matching call (entry, for `partial`) is faulted, 0..1.
        skip: let this many matching calls through untouched first.
        times: fire at most this many times (None: no limit).
        delay_s: seconds of sleep for `delay`.
        code: override the error code answered.
    """

    service: str
    operation: str = "*"
    kind: FaultKind = "error"
    fraction: float = 1.0
    skip: int = 0
    times: int | None = None
    delay_s: float = 0.0
    code: str | None = None
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        if self.skip < 0 or (self.times is not None and self.times < 0) or self.delay_s < 0:
            raise ValueError("skip, times and delay_s must not be negative")

    def matches(self, service: str, operation: str) -> bool:
        return self.service == service and self.operation in ("*", operation)

    def answer(self, service: str) -> tuple[str, int]:
        """The (error code, HTTP status) this rule answers with."""
        if self.kind == "throttle":
            code, status = THROTTLE_ANSWERS.get(service, DEFAULT_THROTTLE)
            return self.code or code, status
        return self.code or ERROR_ANSWERS.get(service, DEFAULT_ERROR), 503


@dataclass
class _FakeHttpResponse:
    """The part of a botocore HTTP response the client reads after a short-circuited call."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    raw: None = None
    url: str = ""


def _error_body(code: str, status: int, message: str) -> dict[str, Any]:
    return {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0},
    }


class FaultInjector:
    """Applies `FaultRule`s to the calls of the clients it is attached to.

    Thread-safe counters (a boto3 client may be used from worker threads); one seeded random
    stream for every decision.
    """

    def __init__(self, rules: Sequence[FaultRule], *, seed: int = 0) -> None:
        self.rules = list(rules)
        self.seed = seed
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.dropped: list[dict[str, Any]] = []  # PutEvents entries a `drop` rule kept off the bus

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | str | bytes) -> FaultInjector:
        """Build from `{"seed": int, "rules": [{FaultRule fields}, ...]}` (a dict or JSON text).

        Raises ValueError (or TypeError) for an invalid spec.
        """
        data = orjson.loads(spec) if isinstance(spec, str | bytes) else spec
        if not isinstance(data, Mapping):
            raise ValueError("a fault spec is a JSON object")
        rules = [FaultRule(**rule) for rule in data.get("rules", [])]
        return cls(rules, seed=int(data.get("seed", 0)))

    # ------------------------------------------------------------------------------ decisions

    def _pick(self, service: str, operation: str, kinds: set[str]) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.kind not in kinds or not rule.matches(service, operation):
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip:
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if rule.fraction < 1.0 and self._random.random() >= rule.fraction:
                    continue
                rule.fired += 1
                return rule
        return None

    def fired(self, service: str | None = None, operation: str | None = None) -> int:
        """Faults fired so far by the rules for `service`/`operation` (None: any)."""
        return sum(
            rule.fired
            for rule in self.rules
            if (service is None or rule.service == service)
            and (operation is None or rule.operation in ("*", operation))
        )

    def counters(self) -> list[dict[str, Any]]:
        """Per rule: its fields plus `seen` and `fired` (for reports and assertions)."""
        return [
            {
                "service": r.service,
                "operation": r.operation,
                "kind": r.kind,
                "seen": r.seen,
                "fired": r.fired,
            }
            for r in self.rules
        ]

    # -------------------------------------------------------------------------------- hooks

    def attach(self, client: Any) -> Any:
        """Register the hooks on a boto3 or aiobotocore client; returns the client."""
        # Rules name the client (`events`); botocore's event names use the service id
        # (`eventbridge`).
        service = client.meta.service_model.service_name
        event_id = client.meta.service_model.service_id.hyphenize()
        emitter = client.meta.events
        is_async = _is_aiobotocore(client)
        if not any(rule.service == service for rule in self.rules):
            return client
        before = self._async_before if is_async else self._sync_before
        emitter.register(f"before-call.{event_id}", before, unique_id=f"sluice-faults-{id(self)}-b")
        emitter.register(
            f"after-call.{event_id}", self._after, unique_id=f"sluice-faults-{id(self)}-a"
        )
        emitter.register(
            f"before-parameter-build.{event_id}.PutEvents",
            self._drop,
            unique_id=f"sluice-faults-{id(self)}-d",
        )
        return client

    def _drop(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        """Take the chosen entries out of a PutEvents request; `_after` reports them failed."""
        entries = params.get("Entries")
        if not isinstance(entries, list):
            return
        service = model.service_model.service_name
        dropped = [
            position
            for position in range(len(entries))
            if self._pick(service, model.name, {"drop"}) is not None
        ]
        if not dropped:
            return
        with self._lock:
            self.dropped.extend(entries[position] for position in dropped)
        context[_DROPPED_KEY] = (len(entries), dropped)
        if len(dropped) < len(entries):
            params["Entries"] = [e for n, e in enumerate(entries) if n not in dropped]
        # else: an empty request is invalid; it stays as it is and `before-call` never sends it.

    def _short_circuit(
        self, service: str, model: Any, context: dict[str, Any] | None = None
    ) -> tuple[FaultRule | None, tuple[_FakeHttpResponse, dict[str, Any]] | None]:
        total, dropped = (context or {}).get(_DROPPED_KEY, (0, []))
        if dropped and len(dropped) == total:
            # Nothing left to send (an empty PutEvents is invalid): the bus saw no request at all.
            return None, (_FakeHttpResponse(200), {"FailedEntryCount": 0, "Entries": []})
        rule = self._pick(service, model.name, {"error", "throttle", "delay"})
        if rule is None or rule.kind == "delay":
            return rule, None
        code, status = rule.answer(service)
        message = f"injected {rule.kind} (sluice faults) on {service}.{model.name}"
        return rule, (_FakeHttpResponse(status), _error_body(code, status, message))

    def _sync_before(
        self, model: Any, context: dict[str, Any] | None = None, **_: Any
    ) -> tuple[_FakeHttpResponse, dict[str, Any]] | None:
        service = model.service_model.service_name
        rule, response = self._short_circuit(service, model, context)
        if rule is not None and rule.kind == "delay":
            time.sleep(rule.delay_s)
        return response

    async def _async_before(
        self, model: Any, context: dict[str, Any] | None = None, **_: Any
    ) -> tuple[_FakeHttpResponse, dict[str, Any]] | None:
        service = model.service_model.service_name
        rule, response = self._short_circuit(service, model, context)
        if rule is not None and rule.kind == "delay":
            await asyncio.sleep(rule.delay_s)
        return response

    def _after(
        self,
        http_response: Any,
        parsed: dict[str, Any],
        model: Any,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        if getattr(http_response, "status_code", 500) >= 300:
            return  # already an error: a phantom needs an applied call
        service = model.service_model.service_name
        if model.name == "PutEvents" and context and _DROPPED_KEY in context:
            self._report_dropped(parsed, *context.pop(_DROPPED_KEY))
        if model.name in ("PutEvents", "SendMessageBatch"):
            self._partial(service, model.name, parsed)
        if self._pick(service, model.name, {"crash"}) is not None:
            raise WorkerCrash(f"worker killed after {service}.{model.name} was applied")
        rule = self._pick(service, model.name, {"phantom"})
        if rule is None:
            return
        code, status = rule.answer(service)
        http_response.status_code = status
        parsed.clear()
        parsed.update(
            _error_body(code, status, f"injected phantom write on {service}.{model.name}")
        )

    @staticmethod
    def _report_dropped(parsed: dict[str, Any], total: int, dropped: list[int]) -> None:
        # Results are positional: put a failure back at each dropped entry's position.
        sent = iter(parsed.get("Entries", []))
        parsed["Entries"] = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "injected drop"}
            if position in dropped
            else next(sent)
            for position in range(total)
        ]
        parsed["FailedEntryCount"] = sum(1 for e in parsed["Entries"] if "ErrorCode" in e)

    def _partial(self, service: str, operation: str, parsed: dict[str, Any]) -> None:
        if operation == "PutEvents":
            entries = parsed.get("Entries", [])
            for position, entry in enumerate(entries):
                if "EventId" in entry and self._pick(service, operation, {"partial"}):
                    entries[position] = {"ErrorCode": "InternalFailure", "ErrorMessage": "injected"}
            parsed["FailedEntryCount"] = sum(1 for e in entries if "ErrorCode" in e)
            return
        kept, failed = [], list(parsed.get("Failed", []))
        for entry in parsed.get("Successful", []):
            if self._pick(service, operation, {"partial"}):
                failed.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": False,
                        "Code": "InternalError",
                        "Message": "injected",
                    }
                )
            else:
                kept.append(entry)
        parsed["Successful"], parsed["Failed"] = kept, failed


# ------------------------------------------------------------------------ activation by env var

_ACTIVE: dict[str, FaultInjector] = {}
_ACTIVE_LOCK = threading.Lock()


def active(environ: Mapping[str, str] | None = None) -> FaultInjector | None:
    """The process-wide injector described by `SLUICE_FAULTS` (built once per spec text), or
    None when the variable is unset or empty. Raises ValueError for an invalid spec."""
    spec = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if not spec:
        return None
    with _ACTIVE_LOCK:
        if spec not in _ACTIVE:
            _ACTIVE[spec] = FaultInjector.from_spec(spec)
        return _ACTIVE[spec]


def _is_aiobotocore(client: Any) -> bool:
    # Not the emitter's type: botocore wraps every client's emitter in its own `EventAliaser`,
    # so an aiobotocore client's `meta.events` looks synchronous, and a delay would block the
    # event loop (every coroutine of the process) instead of delaying the one call.
    try:
        from aiobotocore.client import AioBaseClient
    except ImportError:  # a boto3-only process (the CLI)
        return False
    return isinstance(client, AioBaseClient)


def install_from_env(client: _ActiveT, environ: Mapping[str, str] | None = None) -> _ActiveT:
    """Attach the `SLUICE_FAULTS` injector to `client` when the variable is set; returns it."""
    injector = active(environ)
    if injector is not None:
        injector.attach(client)
    return client


def reset_active() -> None:
    """Forget injectors built from `SLUICE_FAULTS` (between tests)."""
    with _ACTIVE_LOCK:
        _ACTIVE.clear()


# ---------------------------------------------------------------------------- delivery faults

_MessageT = TypeVar("_MessageT")


@dataclass
class DeliveryFaults:
    """What a delivery loop does to each received batch before invoking the consumer.

    Args:
        duplicate: deliver every message twice (the second copy in the same batch position
            order, after the whole batch: a redelivery after a lost acknowledgement).
        reorder: `reverse` or `shuffle` (seeded) each batch.
        seed: the random seed for `shuffle`.
    """

    duplicate: bool = False
    reorder: Literal["none", "reverse", "shuffle"] = "none"
    seed: int = 0
    duplicated: int = field(default=0, init=False)
    reordered: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def arrange(self, batch: Sequence[_MessageT]) -> list[_MessageT]:
        """The batch in the order to deliver it (counts each reordering that changed it)."""
        out = list(batch)
        if self.reorder == "reverse":
            out.reverse()
        elif self.reorder == "shuffle":
            self._random.shuffle(out)
        if out != list(batch):
            self.reordered += 1
        return out

    def copies(self, batch: Sequence[_MessageT]) -> list[_MessageT]:
        """The messages to deliver again (all of them when `duplicate`)."""
        if not self.duplicate:
            return []
        self.duplicated += len(batch)
        return list(batch)
