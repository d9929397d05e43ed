"""The scenario rig: the e2e stack on moto, the real handlers, a fault-aware delivery pump and the
reconciliation checker.

The pump is the e2e harness's Lambda-like loop plus the faults a real event source mapping
produces: every batch delivered twice, batches reordered, a worker that dies mid-batch (its
batch is redelivered to a fresh execution environment). Messages a handler reports as failed
are made visible again at once instead of after the visibility timeout: only the wait is
shortened, the receive count still rises as on AWS.

The pump is strict: a handler that raises (other than the injected `WorkerCrash` or
`InjectedHandlerError`) or answers an `itemIdentifier` that is not in its batch (beyond the
`allowed_invalid_responses` a scenario injects) fails the scenario at once, although Lambda would
retry the batch: such a handler would pass every scenario on retries alone. A pipeline that
stops moving — every queue empty, the scenario's condition still false — fails at once too
(`PipelineStalled`) instead of waiting for the timeout: nothing else can move it.

Every fact published on the bus is also copied to an audit queue (`Rig.published`), so a
scenario can check what reached the bus and under which event id.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluice.generate import GroundTruth, generate
from sluice.verify import Names, Reconciliation, reconcile
from sluice_shared import faults, retry
from sluice_shared.faults import DeliveryFaults, FaultInjector, WorkerCrash
from tests.e2e.harness import (
    SERVICES,
    TERMINAL,
    FakeContext,
    Stack,
    build_stack,
    close_handlers,
    ledger_items,
    sqs_event,
)


class InjectedHandlerError(RuntimeError):
    """Raised by a scenario's own handler wrapper: the one handler error the pump tolerates."""


class UnexpectedHandlerFailure(AssertionError):
    """A handler raised, or answered an invalid batch response, without the scenario injecting
    it."""


class PipelineStalled(AssertionError):
    """Every queue is empty but the scenario's condition is false: nothing will ever move."""


@dataclass(frozen=True)
class Published:
    """One fact as the bus delivered it (from the audit queue)."""

    event_id: str
    type: str
    file_id: str | None


@dataclass
class Rig:
    """One scenario's stack, handlers and pump. Build with the `rig` fixture."""

    stack: Stack
    monkeypatch: pytest.MonkeyPatch
    handlers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    delivery: DeliveryFaults = field(default_factory=DeliveryFaults)
    injector: FaultInjector | None = None
    crashes: int = 0
    invalid_responses: int = 0
    allowed_invalid_responses: int = 0
    handler_errors: int = 0
    audit_url: str = ""
    published: list[Published] = field(default_factory=list)
    responses: list[tuple[str, list[str], list[Any]]] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)
    invocations: int = 0
    context: Callable[[str], FakeContext] = FakeContext

    # ------------------------------------------------------------------------------ set-up

    def start(self, fault_spec: dict[str, Any] | None = None) -> Rig:
        """Load every handler, with `SLUICE_FAULTS` set to `fault_spec` when given."""
        faults.reset_active()
        if fault_spec is not None:
            text = orjson.dumps(fault_spec).decode()
            self.monkeypatch.setenv(faults.ENV_VAR, text)
            self.injector = faults.active({faults.ENV_VAR: text})
        self._audit()
        for service in SERVICES:
            self._load(service)
        return self

    def _audit(self) -> None:
        """A queue that receives a copy of every Sluice fact on the bus (read by `facts`)."""
        sqs, events = self.stack.client("sqs"), self.stack.client("events")
        self.audit_url = sqs.create_queue(QueueName=f"{self.stack.prefix}-audit")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.audit_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        rule = f"{self.stack.prefix}-audit"
        events.put_rule(
            Name=rule,
            EventBusName=self.stack.bus,
            EventPattern=orjson.dumps({"source": [{"prefix": "sluice."}]}).decode(),
        )
        events.put_targets(
            Rule=rule, EventBusName=self.stack.bus, Targets=[{"Id": "audit", "Arn": arn}]
        )

    def facts(self) -> list[Published]:
        """Every fact the bus delivered so far, in arrival order (drains the audit queue)."""
        sqs = self.stack.client("sqs")
        while got := sqs.receive_message(QueueUrl=self.audit_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in got:
                detail = orjson.loads(message["Body"])["detail"]
                file_id = detail.get("data", {}).get("file_id")
                self.published.append(Published(detail["id"], detail["type"], file_id))
                sqs.delete_message(QueueUrl=self.audit_url, ReceiptHandle=message["ReceiptHandle"])
        return list(self.published)

    def _load(self, service: str) -> None:
        for name, value in self.stack.env(service).items():
            self.monkeypatch.setenv(name, value)
        module_name = f"sluice_{service}.handler"
        sys.modules.pop(module_name, None)
        self.handlers[service] = importlib.import_module(module_name).lambda_handler

    def restart(self, service: str) -> None:
        """A fresh execution environment for `service` (the old one died)."""
        module = sys.modules.pop(f"sluice_{service}.handler", None)
        if module is not None:
            runtime = getattr(module, "runtime", None) or module.service.runtime
            with contextlib.suppress(Exception):
                runtime.close()
        self._load(service)

    # ---------------------------------------------------------------------------- actions

    def upload(self, key: str, data: bytes) -> dict[str, Any]:
        return dict(self.stack.client("s3").put_object(Bucket=self.stack.raw, Key=key, Body=data))

    def upload_generated(
        self, tmp: Path, key: str, *, rows: int = 300, seed: int = 1, **kwargs: Any
    ) -> GroundTruth:
        """Generate a file for the dataset of `key` and upload it; returns its ground truth."""
        dataset = key.split("/", 1)[0]
        path = tmp / key.replace("/", "_")
        truth = generate(
            dataset, path, rows=rows, bad_ratio=0.05, duplicate_ratio=0.02, seed=seed, **kwargs
        )
        self.upload(key, path.read_bytes())
        return truth

    def settle(self, files: int, *, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """Pump until `files` files are in the ledger, all terminal, and every queue is empty."""

        def done() -> bool:
            items = list(ledger_items(self.stack))
            return (
                len(items) >= files
                and all(i["status"] in TERMINAL for i in items)
                and self.queues_empty()
            )

        self.pump(until=done, timeout=timeout)
        return {item["file_id"]: item for item in ledger_items(self.stack)}

    def queues_empty(self) -> bool:
        """No message in flight, then none visible, in every queue.

        One count per request, in-flight first: the test server's moto takes each count of one
        answer at its own instant, so a message whose visibility ran out between the two counts
        of one answer was in neither (the rig then called a running pipeline stalled). A message
        only moves from in flight to visible while nobody receives, so asked in this order it is
        counted at least once."""
        sqs = self.stack.client("sqs")
        for url in self.stack.queues.values():
            for count in ("ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessages"):
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[count])
                if int(attrs["Attributes"][count]):
                    return False
        return True

    def pump(self, *, until: Callable[[], bool], timeout: float = 60.0) -> None:
        """Deliver batches to the handlers, with the delivery faults, until `until()`."""
        sqs = self.stack.client("sqs")
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                statuses = [
                    (i["key"], i["status"], i.get("error_code")) for i in ledger_items(self.stack)
                ]
                raise TimeoutError(f"the pipeline did not settle in time: {statuses}")
            moved = False
            for service in SERVICES:
                if service in self.paused:
                    continue
                url = self.stack.queues[service]
                got = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                if not got:
                    continue
                moved = True
                self._deliver(service, url, got)
            if not moved:
                if self.queues_empty() and not until():
                    statuses = [
                        (i["key"], i["status"], i.get("error_code"))
                        for i in ledger_items(self.stack)
                    ]
                    raise PipelineStalled(f"every queue is empty, nothing can move: {statuses}")
                time.sleep(0.05)

    def _deliver(self, service: str, url: str, got: list[dict[str, Any]]) -> None:
        sqs = self.stack.client("sqs")
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        batch = self.delivery.arrange(got)
        failed: set[str] = set()
        for attempt in [batch, *([self.delivery.copies(batch)] if self.delivery.duplicate else [])]:
            self.invocations += 1
            try:
                response = self.handlers[service](sqs_event(attempt, arn), self.context(service))
            except WorkerCrash:
                # No response: Lambda retries the whole batch after the visibility timeout.
                self.crashes += 1
                self.restart(service)
                self._release(url, batch)
                return
            except InjectedHandlerError:
                # Lambda's rule: a handler error retries the whole batch.
                self.handler_errors += 1
                self._release(url, batch)
                return
            except Exception as error:
                raise UnexpectedHandlerFailure(
                    f"the {service} handler raised {error!r}; handlers answer failures per record"
                ) from error
            reported = {f.get("itemIdentifier") for f in response.get("batchItemFailures", [])}
            if reported - {m["MessageId"] for m in attempt}:
                # Lambda's rule: an empty or unknown itemIdentifier fails the whole batch.
                self.invalid_responses += 1
                if self.invalid_responses > self.allowed_invalid_responses:
                    raise UnexpectedHandlerFailure(
                        f"the {service} handler answered itemIdentifiers not in its batch: "
                        f"{sorted(map(str, reported))}"
                    )
                reported = {m["MessageId"] for m in attempt}
            failed |= {str(r) for r in reported}
            self.responses.append((service, [m["MessageId"] for m in attempt], sorted(reported)))
        done = [m for m in batch if m["MessageId"] not in failed]
        for message in done:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        self._release(url, [m for m in batch if m["MessageId"] in failed])

    def _release(self, url: str, messages: list[dict[str, Any]]) -> None:
        sqs = self.stack.client("sqs")
        for message in messages:
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )

    # ---------------------------------------------------------------------------- checking

    def reconcile(self, truths: dict[str, GroundTruth] | None = None) -> Reconciliation:
        return reconcile(
            s3=self.stack.client("s3"),
            dynamodb=self.stack.client("dynamodb"),
            sqs=self.stack.client("sqs"),
            names=Names(
                ledger_table=self.stack.table,
                processed_bucket=self.stack.processed,
                error_bucket=self.stack.errors,
                dlq_urls=self.stack.dlqs,
            ),
            truths=truths,
        )

    def output_snapshot(self) -> dict[str, bytes]:
        """Every object of the processed bucket except manifests (whose times differ per run)."""
        s3 = self.stack.client("s3")
        out: dict[str, bytes] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.stack.processed):
            for obj in page.get("Contents", []):
                if obj["Key"].startswith("_manifests/"):
                    continue
                out[obj["Key"]] = s3.get_object(Bucket=self.stack.processed, Key=obj["Key"])[
                    "Body"
                ].read()
        return out


def assert_reconciled(result: Reconciliation) -> None:
    """Fail with every problem the checker found."""
    assert result.ok, "\n".join(result.all_problems())


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries still happen, without sleeping; the waits are recorded."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(retry, "SLEEP", record)
    return waits


@pytest.fixture
def rig(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, fast_retries: list[float]
) -> Iterator[Rig]:
    rig = Rig(build_stack(moto_endpoint), monkeypatch)
    yield rig
    close_handlers()
    faults.reset_active()
