"""Records the engine keeps: state machines, executions (with history) and Map Runs."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sluice.local.workflow.errors import StatesError
from sluice.local.workflow.redrive import ResumePoints
from sluice.local.workflow.tree import Machine

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
# A STANDARD execution's history holds at most this many events (AWS's hard quota).
HISTORY_EVENTS = 25_000
_CLOSING = frozenset(
    {"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}
)


def dumps(value: Any) -> str:
    """Compact JSON, as Step Functions renders payloads in its API."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass
class StateMachineRecord:
    """One state machine (STANDARD or EXPRESS)."""

    arn: str
    name: str
    definition: str
    parsed: Machine
    role_arn: str
    type: str
    created: datetime
    updated: datetime | None = None
    revision: int = 1


@dataclass
class ExecutionRecord:
    """One execution, top-level or a Distributed Map child."""

    arn: str
    name: str
    state_machine_arn: str
    state_machine_name: str
    type: str
    input: Any
    input_text: str
    role_arn: str
    start: datetime
    status: str = "RUNNING"
    stop: datetime | None = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    map_run_arn: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    redrive_count: int = 0
    redrive_date: datetime | None = None
    # The top-level state last entered and its raw input: where a redrive restarts.
    failed_state: str | None = None
    failed_input: Any = None
    # Where every path (top level, branches, iterations) stood: a redrive resumes only those
    # that failed.
    resume: ResumePoints = field(default_factory=ResumePoints)
    # The last Map Run of each top-level Distributed Map state (redrive reuses its successes).
    map_runs: dict[str, MapRunRecord] = field(default_factory=dict)
    # The execution's top-level workflow variables (kept for a redrive).
    variables: dict[str, Any] = field(default_factory=dict)
    # The definition it runs (DescribeStateMachineForExecution): the state machine's as it was
    # at the start, or a Map Run child's ItemProcessor; its revision and Map label.
    definition: str | None = None
    parsed: Machine | None = None
    revision: int | None = None
    label: str | None = None

    def record(
        self,
        when: datetime,
        type_: str,
        details_key: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append a history event with AWS's event type and `<type>EventDetails` key.

        Raises:
            StatesError: `States.Runtime` when a STANDARD execution's history is full: 25,000
            events, the last one the execution's failure (service-quotas.html); nothing is
            appended, and the execution can no longer be redriven.
        """
        if (
            len(self.history) >= HISTORY_EVENTS - 1
            and self.type == "STANDARD"
            and type_ not in _CLOSING
        ):
            self.failed_state = None
            raise StatesError(
                "States.Runtime",
                f"The execution reached the maximum number of history events ({HISTORY_EVENTS}).",
            )
        event: dict[str, Any] = {
            "timestamp": when,
            "type": type_,
            "id": len(self.history) + 1,
            "previousEventId": len(self.history),
        }
        if details_key is not None:
            event[details_key] = details or {}
        self.history.append(event)


@dataclass
class ChildResult:
    """The latest child execution for one batch/item of a Map Run."""

    index: int
    execution: ExecutionRecord
    items: int


@dataclass
class MapRunRecord:
    """One Distributed Map run (`DescribeMapRun`)."""

    arn: str
    id: str
    execution_arn: str
    state_machine_arn: str
    state_name: str
    start: datetime
    max_concurrency: int
    tolerated_failure_percentage: float
    tolerated_failure_count: int
    total_items: int = 0
    status: str = "RUNNING"
    stop: datetime | None = None
    redrive_count: int = 0
    redrive_date: datetime | None = None
    children: dict[int, ChildResult] = field(default_factory=dict)
    total_children: int = 0
    results_written: int = 0
    results_written_items: int = 0
    # Child inputs (with their item counts) in order; redrive re-runs the failed ones.
    inputs: list[tuple[Any, int]] = field(default_factory=list)

    def counts(self, *, items: bool) -> dict[str, int]:
        """`itemCounts` (items=True) or `executionCounts` as DescribeMapRun returns them."""
        tally = {"SUCCEEDED": 0, "FAILED": 0, "RUNNING": 0, "TIMED_OUT": 0, "ABORTED": 0}
        for child in self.children.values():
            tally[child.execution.status] = tally.get(child.execution.status, 0) + (
                child.items if items else 1
            )
        total = self.total_items if items else self.total_children
        started = sum(tally.values())
        return {
            "pending": max(0, total - started),
            "running": tally["RUNNING"],
            "succeeded": tally["SUCCEEDED"],
            "failed": tally["FAILED"],
            "timedOut": tally["TIMED_OUT"],
            "aborted": tally["ABORTED"],
            "total": total,
            "resultsWritten": self.results_written_items if items else self.results_written,
            "failuresNotRedrivable": 0,
            "pendingRedrive": 0,
        }
