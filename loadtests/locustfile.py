"""Locust users for Sluice: custom events on the bus, files into the raw bucket, or both.

    locust -f loadtests/locustfile.py --headless -u 4 -r 2 -t 30s EventPublisher
    make loadtest        # the full run: local runtime, load, drain, reconcile, report

Every request is reported to Locust's statistics (name, response time, bytes, exception). What
the bus and the bucket accepted is recorded in `loadtests.journal.JOURNAL` for reconciliation.

Configuration (environment; see also `loadtests.target` for endpoint/profile/stage):

| Variable | Meaning | Default |
|---|---|---|
| `SLUICE_LOADTEST_RUN_ID` | run id (keys, event correlation id, sink rule) | random |
| `SLUICE_LOADTEST_EVENT_RATE` | PutEvents calls per second per publishing user | 5 |
| `SLUICE_LOADTEST_EVENT_EXAMPLE` | a team's golden example or contract folder: its type | unset |
| `SLUICE_LOADTEST_BATCH` | entries per PutEvents call (1..10) | 10 |
| `SLUICE_LOADTEST_FILE_RATE` | uploads per second per uploading user | 1 |
| `SLUICE_LOADTEST_DATASET` | `orders`, `sensor_readings` or `mixed` | mixed |
| `SLUICE_LOADTEST_FILE_ROWS` | rows per uploaded file | 50 |
| `SLUICE_LOADTEST_BAD_RATIO` | fraction of bad rows per file | 0.05 |
| `SLUICE_LOADTEST_JOURNAL` | write the journal here when the test stops | unset |
| `SLUICE_LOADTEST_SHAPE` | `steady`, `ramp` or `spike` (see `loadtests.shapes`) | unset |
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from pathlib import Path
from typing import Any

from locust import User, constant_throughput, events, task

from loadtests import shapes
from loadtests.events import EventFactory, entry_id, team_events
from loadtests.files import DATASETS, body, raw_key, uploaded_file_id
from loadtests.journal import JOURNAL, Upload
from loadtests.target import Target

RUN_ID = (
    os.environ.get("SLUICE_LOADTEST_RUN_ID")
    or f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
)
TARGET = Target.from_env()
_EXAMPLE = os.environ.get("SLUICE_LOADTEST_EVENT_EXAMPLE")
TEAM_EVENTS = team_events(Path(_EXAMPLE)) if _EXAMPLE else []
_user_numbers = itertools.count()


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _on_start(environment: Any, **_: Any) -> None:
    # Resolve names before the first user runs: a stage that is not there fails the run at once.
    TARGET.names()
    if JOURNAL.run_id != RUN_ID:
        JOURNAL.reset(RUN_ID)


@events.test_stop.add_listener  # type: ignore[untyped-decorator]
def _on_stop(environment: Any, **_: Any) -> None:
    path = os.environ.get("SLUICE_LOADTEST_JOURNAL")
    if path:
        JOURNAL.save(Path(path))


class SluiceUser(User):
    """Base: shared clients, the run's names, and request reporting."""

    abstract = True

    def on_start(self) -> None:
        """Resolve the stage's names once per user (cached on the shared target)."""
        self.number = next(_user_numbers)
        self.names = TARGET.names()
        self.factory = EventFactory(RUN_ID, prefix=f"u{self.number}-", team=TEAM_EVENTS)
        self.uploads = itertools.count()
        dataset = os.environ.get("SLUICE_LOADTEST_DATASET") or "mixed"
        self.datasets = list(DATASETS) if dataset == "mixed" else [dataset]

    def _report(
        self,
        request_type: str,
        name: str,
        started: float,
        length: int,
        exception: BaseException | None,
    ) -> None:
        self.environment.events.request.fire(
            request_type=request_type,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={"run_id": RUN_ID},
        )

    def publish_batch(self) -> None:
        """One PutEvents call of `SLUICE_LOADTEST_BATCH` custom envelopes."""
        entries = self.factory.entries(self.names["event_bus"], _int("SLUICE_LOADTEST_BATCH", 10))
        size = sum(len(e["Detail"]) for e in entries)
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            response = TARGET.client("events").put_events(Entries=entries)
        except Exception as exc:
            JOURNAL.failed(len(entries))
            self._report("events", "PutEvents", started, size, exc)
            return
        accepted = []
        rejected = 0
        for entry, result in zip(entries, response.get("Entries", []), strict=False):
            if result.get("EventId") and not result.get("ErrorCode"):
                accepted.append(entry_id(entry))
            else:
                rejected += 1
        rejected += max(0, len(entries) - len(response.get("Entries", [])))
        JOURNAL.accepted(accepted)
        if rejected:
            JOURNAL.failed(rejected)
            failure = RuntimeError(f"PutEvents rejected {rejected} of {len(entries)} entries")
        self._report("events", "PutEvents", started, size, failure)

    def upload_file(self) -> None:
        """One PutObject of a generated file under a unique key of this run."""
        n = next(self.uploads)
        dataset = self.datasets[n % len(self.datasets)]
        made = body(
            dataset,
            _int("SLUICE_LOADTEST_FILE_ROWS", 50),
            bad_ratio=_float("SLUICE_LOADTEST_BAD_RATIO", 0.05),
            seed=n % 4,
        )
        key = raw_key(dataset, RUN_ID, f"u{self.number}-{n:06d}")
        began_at = time.time()
        started = time.perf_counter()
        try:
            response = TARGET.client("s3").put_object(
                Bucket=self.names["raw_bucket"], Key=key, Body=made.data
            )
        except Exception as exc:
            self._report("s3", f"PutObject {dataset}", started, len(made.data), exc)
            return
        file_id = uploaded_file_id(self.names["raw_bucket"], key, response)
        JOURNAL.uploaded(Upload(key, dataset, len(made.data), began_at, made.truth, file_id))
        self._report("s3", f"PutObject {dataset}", started, len(made.data), None)


class EventPublisher(SluiceUser):
    """Publishes custom events (PutEvents, batches of up to 10) at a constant rate per user."""

    wait_time = constant_throughput(_float("SLUICE_LOADTEST_EVENT_RATE", 5))

    @task
    def put_events(self) -> None:
        """One PutEvents batch."""
        self.publish_batch()


class FileUploader(SluiceUser):
    """Uploads generated files of the configured dataset and size at a constant rate per user."""

    wait_time = constant_throughput(_float("SLUICE_LOADTEST_FILE_RATE", 1))

    @task
    def put_file(self) -> None:
        """One upload."""
        self.upload_file()


class MixedUser(SluiceUser):
    """Both: three PutEvents batches for every upload, at the event rate."""

    wait_time = constant_throughput(_float("SLUICE_LOADTEST_EVENT_RATE", 5))

    @task(3)
    def put_events(self) -> None:
        """One PutEvents batch."""
        self.publish_batch()

    @task(1)
    def put_file(self) -> None:
        """One upload."""
        self.upload_file()


PROFILES: dict[str, list[type[User]]] = {
    "events": [EventPublisher],
    "files": [FileUploader],
    "mixed": [MixedUser],
}
"""User classes per profile (`loadtests.run --profile`)."""

if os.environ.get("SLUICE_LOADTEST_SHAPE"):
    # Exposed only on request, so plain `-u/-r/-t` runs are not overridden by a shape.
    SelectedShape = shapes.shape_from_env()
