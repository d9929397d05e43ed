"""Runs ASL states: input/output processing, every state type, Retry and Catch.

The Distributed Map lives in `distributed.py`; this module calls into it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sluice.local.workflow import choice, jsonpath, limits
from sluice.local.workflow.errors import StatesError, runtime_error
from sluice.local.workflow.integrations import TaskServices, TaskTokens
from sluice.local.workflow.integrations.dispatch import TaskDispatcher
from sluice.local.workflow.jsonata import QueryEvaluationError
from sluice.local.workflow.models import ExecutionRecord, dumps
from sluice.local.workflow.ports import EXECUTION_ROLE, Clock, FunctionInvoker, SdkCaller
from sluice.local.workflow.redrive import Path, ResumePoints
from sluice.local.workflow.tree import (
    Catcher,
    ChoiceState,
    FailState,
    Machine,
    MapState,
    ParallelState,
    PassState,
    Retrier,
    State,
    SucceedState,
    TaskState,
    WaitState,
    catchers,
    retriers,
)
from sluice.local.workflow.values import Literal, Scope, Value, resolve
from sluice.local.workflow.variables import Variables


@dataclass(frozen=True)
class Deps:
    """What states call out to. Missing invokers fail the Task with a clear cause."""

    clock: Clock
    invoker: FunctionInvoker | None = None
    sdk: SdkCaller | None = None
    region: str = "us-east-1"
    account: str = "123456789012"


@dataclass
class Run:
    """One path of execution: the execution record plus Map-item context for iterations."""

    execution: ExecutionRecord
    context: dict[str, Any]
    top_level: bool = True
    map_item: dict[str, Any] | None = None
    redrive: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path = ()
    variables: Variables | None = None

    def __post_init__(self) -> None:
        if self.variables is None:
            # An execution's own scope: a redrive resumes with the values it failed with.
            self.variables = Variables(self.execution.variables)

    @property
    def scope(self) -> Variables:
        """This path's variable scope."""
        assert self.variables is not None
        return self.variables

    def context_for(self, state_name: str, entered: datetime, retry_count: int) -> dict[str, Any]:
        """The `$$` object for a state (Execution, StateMachine, State, Map.Item)."""
        ctx = dict(self.context)
        ctx["State"] = {
            "Name": state_name,
            "EnteredTime": iso(entered),
            "RetryCount": retry_count,
        }
        if self.map_item is not None:
            ctx["Map"] = {"Item": self.map_item}
        return ctx

    def child(self, map_item: dict[str, Any] | None, step: tuple[str, int]) -> Run:
        """A nested path (Parallel branch, inline Map iteration `step`) of the same execution;
        it is redriven when its parent is."""
        path = (*self.path, step)
        # Its own variable scope; redriven, the values it had when it failed.
        values = self.execution.resume.scope_values(path, redrive=self.redrive)
        return Run(
            self.execution,
            self.context,
            top_level=False,
            map_item=map_item if map_item is not None else self.map_item,
            redrive=self.redrive,
            path=path,
            variables=Variables(values, parent=self.scope),
        )


def iso(when: datetime) -> str:
    """ISO 8601 with milliseconds and `Z`, as the context object shows times."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class _Outcome:
    next: str | None
    output: Any
    assigned: dict[str, Any] | None = None


_NO_RETRY = frozenset({"States.Runtime", "States.DataLimitExceeded"})


def error_matches(names: tuple[str, ...], error: str) -> bool:
    """ASL matching: exact names, `States.ALL`, `States.TaskFailed` (all but States.Timeout).

    States.Runtime never reaches this: AWS neither retries nor catches it (see `_NO_RETRY`).
    """
    if error in names or "States.ALL" in names:
        return True
    return "States.TaskFailed" in names and error != "States.Timeout"


async def fail_fast(coros: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Run coroutines concurrently; the first exception cancels the rest and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        if tasks:
            _done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


DistributedRunner = Callable[[MapState, Scope, Run], Awaitable[Any]]


class Interpreter:
    """Executes a (sub-)state machine for one `Run`, walking the typed tree."""

    def __init__(
        self,
        deps: Deps,
        distributed: DistributedRunner | None = None,
        tasks: TaskDispatcher | None = None,
    ):
        self.deps = deps
        self.distributed = distributed
        self.tasks = tasks or TaskDispatcher(
            TaskServices(deps.clock, TaskTokens(), deps.invoker, deps.sdk), deps.region
        )

    # -- machine ---------------------------------------------------------------------------

    async def run_machine(
        self, machine: Machine, data: Any, run: Run, start_at: str | None = None
    ) -> Any:
        """Run states from `start_at` (default StartAt) until one ends; returns its output.

        Raises:
            StatesError: an unhandled error; for a top-level run, the failed state and its
            input are recorded on the execution for redrive.
        """
        restart = (
            run.execution.resume.restart(run.path) if run.redrive and start_at is None else None
        )
        if restart is not None:
            start_at, data = restart
        name: str = start_at or machine.start_at
        while True:
            state = machine.states[name]
            kind = state.type
            entered = self.deps.clock.now()
            input_text = dumps(data)
            run.execution.record(
                entered,
                f"{kind}StateEntered",
                "stateEnteredEventDetails",
                {"name": name, "input": input_text, "inputDetails": {"truncated": False}},
            )
            if run.top_level:
                # Where a redrive restarts if the execution fails, times out or is stopped here.
                run.execution.failed_state, run.execution.failed_input = name, data
            run.execution.resume.enter(run.path, name, data)
            limits.check_input(name, input_text)
            outcome = await self._run_state(state, data, run, entered)
            output_text = dumps(outcome.output)
            limits.check_output(name, output_text)
            details: dict[str, Any] = {
                "name": name,
                "output": output_text,
                "outputDetails": {"truncated": False},
            }
            if outcome.assigned:
                texts = {k: dumps(v) for k, v in outcome.assigned.items()}
                limits.check_assigned(name, texts)
                run.scope.assign(outcome.assigned, texts, state=name)
                details["assignedVariables"] = texts
                details["assignedVariablesDetails"] = {"truncated": False}
            run.execution.record(
                self.deps.clock.now(), f"{kind}StateExited", "stateExitedEventDetails", details
            )
            if outcome.next is None:
                return outcome.output
            name, data = outcome.next, outcome.output
            run.redrive = False

    # -- one state -------------------------------------------------------------------------

    def _scope(self, state: State, raw: Any, run: Run, ctx: dict[str, Any]) -> Scope:
        """What the state's fields see: `$` = its raw input (JSONPath), or `$states` (JSONata)."""
        return Scope(
            raw,
            ctx,
            run.scope.view(),
            {"input": raw, "context": ctx} if state.jsonata else None,
            state.name,
            len(run.execution.history),
        )

    async def _run_state(self, state: State, raw: Any, run: Run, entered: datetime) -> _Outcome:
        try:
            return await self._attempts(state, raw, run, entered)
        except QueryEvaluationError as err:
            self._evaluation_failed(err, run)
            raise

    def _evaluation_failed(self, err: QueryEvaluationError, run: Run) -> None:
        run.execution.record(
            self.deps.clock.now(),
            "EvaluationFailed",
            "evaluationFailedEventDetails",
            {"cause": err.cause, "error": err.error, "location": err.location, "state": err.state},
        )

    async def _attempts(self, state: State, raw: Any, run: Run, entered: datetime) -> _Outcome:
        if not isinstance(state, TaskState | ParallelState | MapState):
            ctx = run.context_for(state.name, entered, 0)
            return await self._run_simple(state, raw, run, self._scope(state, raw, run, ctx))
        retry = retriers(state)
        attempts = [0] * len(retry)
        retry_count = 0
        while True:
            ctx = run.context_for(state.name, entered, retry_count)
            scope = self._scope(state, raw, run, ctx)
            try:
                return await self._run_body(state, raw, run, scope)
            except StatesError as err:
                if err.error in _NO_RETRY:
                    raise
                delay = self._retry_delay(retry, attempts, err)
                if delay is not None:
                    retry_count += 1
                    await self.deps.clock.sleep(delay)
                    continue
                for catcher in catchers(state):
                    if error_matches(catcher.error_equals, err.error):
                        if isinstance(err, QueryEvaluationError):
                            self._evaluation_failed(err, run)
                        return self._caught(state, catcher, raw, err, scope)
                raise

    @staticmethod
    def _caught(
        state: State, catcher: Catcher, raw: Any, err: StatesError, scope: Scope
    ) -> _Outcome:
        """The catcher's output and variables: JSONata sees `$states.errorOutput`, JSONPath `$`
        is the error output; without Output (JSONata) the state's output is the error output."""
        payload = {"Error": err.error, "Cause": err.cause}
        if state.jsonata:
            error_scope = scope.with_states(errorOutput=payload)
            output = payload if catcher.output is None else catcher.output.evaluate(error_scope)
            assigned = None if catcher.assign is None else catcher.assign.evaluate(error_scope)
            return _Outcome(catcher.next, output, assigned)
        path = catcher.result_path
        output = raw if path is None else jsonpath.put(raw, path, payload)
        assigned = None
        if catcher.assign is not None:
            assigned = catcher.assign.evaluate(scope.with_data(payload))
        return _Outcome(catcher.next, output, assigned)

    def _retry_delay(
        self, retry: tuple[Retrier, ...], attempts: list[int], err: StatesError
    ) -> float | None:
        for index, retrier in enumerate(retry):
            if not error_matches(retrier.error_equals, err.error):
                continue
            # The first matching retrier decides; once exhausted, Catch takes over.
            if attempts[index] >= retrier.max_attempts:
                return None
            delay = retrier.interval_seconds * retrier.backoff_rate ** (attempts[index])
            if retrier.max_delay_seconds is not None:
                delay = min(delay, retrier.max_delay_seconds)
            if retrier.jitter == "FULL":
                delay = random.uniform(0, delay)
            attempts[index] += 1
            return float(delay)
        return None

    # -- JSONPath input and output processing ------------------------------------------------

    @staticmethod
    def _effective_input(state: State, raw: Any, scope: Scope) -> Any:
        path = state.io.input_path
        if path is None:
            return {}
        return raw if path == "$" else resolve(path, scope.with_data(raw))

    @staticmethod
    def _parameters(state: State, effective: Any, scope: Scope) -> Any:
        template = state.io.parameters
        return effective if template is None else template.evaluate(scope.with_data(effective))

    @staticmethod
    def _assign(state: State, data: Any, scope: Scope) -> dict[str, Any] | None:
        """JSONPath `Assign`, `$` being the state's result (or its input where it has none)."""
        if state.io.assign is None:
            return None
        return state.io.assign.evaluate(scope.with_data(data))  # type: ignore[no-any-return]

    def _finish(
        self, state: State, raw: Any, result: Any, scope: Scope, *, selected: bool = False
    ) -> _Outcome:
        if state.io.result_selector is not None and not selected:
            result = state.io.result_selector.evaluate(scope.with_data(result))
        assigned = self._assign(state, result, scope)
        result_path = state.io.result_path
        output = raw if result_path is None else jsonpath.put(raw, result_path, result)
        return _Outcome(state.next, self._output_path(state, output, scope), assigned)

    @staticmethod
    def _output_path(state: State, output: Any, scope: Scope) -> Any:
        path = state.io.output_path
        if path == "$":
            return output
        return {} if path is None else resolve(path, scope.with_data(output))

    # -- JSONata output ---------------------------------------------------------------------

    @staticmethod
    def _jsonata_end(
        next_state: str | None,
        output: Value | None,
        assign: Value | None,
        default: Any,
        scope: Scope,
    ) -> _Outcome:
        """Output (default: `default`) and Assign, both seeing the same variables and $states."""
        assigned = None if assign is None else assign.evaluate(scope)
        value = default if output is None else output.evaluate(scope)
        return _Outcome(next_state, value, assigned)

    # -- state bodies -----------------------------------------------------------------------

    async def _run_body(self, state: State, raw: Any, run: Run, scope: Scope) -> _Outcome:
        """A Task, Parallel or Map attempt."""
        if isinstance(state, TaskState):
            # `$$.Task.Token` of a callback task must resolve in its Parameters/Arguments.
            scope = scope.with_context(
                self.tasks.task_context(state.resource, dict(scope.context), run.execution)
            )
        if state.jsonata:
            if isinstance(state, MapState):
                result = await self._map(state, scope, run)
            else:
                arguments = (
                    raw if state.io.arguments is None else state.io.arguments.evaluate(scope)
                )
                if isinstance(state, TaskState):
                    result = await self._task(state, arguments, run, scope)
                else:
                    assert isinstance(state, ParallelState)
                    result = await self._parallel(state, arguments, run)
            end_scope = scope.with_states(result=result)
            return self._jsonata_end(
                state.next, state.io.output, state.io.assign, result, end_scope
            )
        effective = self._effective_input(state, raw, scope)
        if isinstance(state, MapState):
            result = await self._map(state, scope.with_data(effective), run)
        else:
            selected = effective
            effective = self._parameters(state, effective, scope)
            if isinstance(state, TaskState):
                result = await self._task(
                    state, effective, run, scope.with_data(effective), scope.with_data(selected)
                )
            else:
                assert isinstance(state, ParallelState)
                result = await self._parallel(state, effective, run)
        return self._finish(state, raw, result, scope)

    async def _run_simple(self, state: State, raw: Any, run: Run, scope: Scope) -> _Outcome:
        if isinstance(state, FailState):
            raise StatesError(*self._fail_fields(state, scope))
        if state.jsonata:
            return await self._run_simple_jsonata(state, raw, scope)
        effective = self._effective_input(state, raw, scope)
        if isinstance(state, PassState):
            effective = self._parameters(state, effective, scope)
            result = state.result if state.has_result else effective
            return self._finish(state, raw, result, scope, selected=True)
        if isinstance(state, SucceedState):
            return _Outcome(None, self._output_path(state, effective, scope))
        if isinstance(state, WaitState):
            await self._wait(state, scope.with_data(effective))
            return _Outcome(
                state.next,
                self._output_path(state, effective, scope),
                self._assign(state, effective, scope),
            )
        assert isinstance(state, ChoiceState)
        rule_scope = scope.with_data(effective)
        output = self._output_path(state, effective, scope)
        for option in state.choices:
            if choice.evaluate(option.rule, rule_scope):
                # A matching rule's Assign replaces the state's (the state's is for Default).
                assigned = None if option.assign is None else option.assign.evaluate(rule_scope)
                return _Outcome(option.next, output, assigned)
        if state.default is not None:
            return _Outcome(state.default, output, self._assign(state, effective, scope))
        raise StatesError("States.NoChoiceMatched", f"No Matches! Input: {dumps(effective)}")

    async def _run_simple_jsonata(self, state: State, raw: Any, scope: Scope) -> _Outcome:
        io = state.io
        if isinstance(state, PassState | SucceedState):
            return self._jsonata_end(state.next, io.output, io.assign, raw, scope)
        if isinstance(state, WaitState):
            await self._wait(state, scope)
            return self._jsonata_end(state.next, io.output, io.assign, raw, scope)
        assert isinstance(state, ChoiceState)
        for option in state.choices:
            if choice.evaluate(option.rule, scope):
                # A matching rule's Output and Assign replace the state's.
                return self._jsonata_end(option.next, option.output, option.assign, raw, scope)
        if state.default is not None:
            return self._jsonata_end(state.default, io.output, io.assign, raw, scope)
        raise StatesError("States.NoChoiceMatched", f"No Matches! Input: {dumps(raw)}")

    @staticmethod
    def _fail_fields(state: FailState, scope: Scope) -> tuple[str, str]:
        values: list[str] = []
        for field_name, node in (("Error", state.error), ("Cause", state.cause)):
            value = "" if node is None else node.evaluate(scope)
            if not isinstance(value, str):
                where = field_name if state.jsonata else f"{field_name}Path"
                raise runtime_error(f"{where} must resolve to a string")
            values.append(value)
        return values[0] or "States.Fail", values[1]

    async def _wait(self, state: WaitState, scope: Scope) -> None:
        now = self.deps.clock.now()
        if state.seconds is not None:
            value = state.seconds.evaluate(scope)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise runtime_error("Seconds must resolve to a non-negative number")
            seconds = float(value)
        else:
            assert state.timestamp is not None
            text = state.timestamp.evaluate(scope)
            when = choice.parse_timestamp(text)
            if when is None:
                raise runtime_error(f"not an RFC 3339 timestamp: {text!r}")
            seconds = max(0.0, (when - now) / timedelta(seconds=1))
        await self.deps.clock.sleep(seconds)

    # -- Task -----------------------------------------------------------------------------

    async def _task(
        self,
        state: TaskState,
        effective: Any,
        run: Run,
        scope: Scope,
        credentials_scope: Scope | None = None,
    ) -> Any:
        """Run the integration with `effective` (Parameters or Arguments); TimeoutSeconds and
        HeartbeatSeconds (numbers, paths or expressions) are evaluated in `scope`, Credentials
        in `credentials_scope` (JSONPath: the input after InputPath; default `scope`)."""
        limits.check_input(state.name, dumps(effective))
        role = self._assumed_role(state, credentials_scope or scope, run)
        # The task's calls (SDK, Lambda, child executions) are made as its Credentials role.
        acting = EXECUTION_ROLE.set(role) if role is not None else None
        try:
            result = await self._run_task(state, effective, run, scope)
        finally:
            if acting is not None:
                EXECUTION_ROLE.reset(acting)
        limits.check_output(state.name, dumps(result))
        return result

    def _assumed_role(self, state: TaskState, scope: Scope, run: Run) -> str | None:
        """The role of the Task's `Credentials` (a literal, path or expression `RoleArn`),
        assumed by the execution's role as AWS does: the execution role needs `sts:AssumeRole`
        on it and the role's trust policy must trust the execution role
        (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-access-cross-acct-resources.html).

        Raises:
            StatesError: `States.Runtime` for a RoleArn that is not a role ARN,
            `States.Permissions` when the role may not be assumed.
        """
        if state.credentials is None:
            return None
        credentials = state.credentials.evaluate(scope)
        role = credentials.get("RoleArn") if isinstance(credentials, dict) else None
        if not isinstance(role, str) or not role.startswith("arn:aws:iam::"):
            raise runtime_error(f"Credentials.RoleArn must be an IAM role ARN, got {role!r}")
        authorize = self.tasks.services.authorize
        execution_role = EXECUTION_ROLE.get() or run.execution.role_arn
        if authorize is not None and execution_role:
            denial = authorize(execution_role, "sts:AssumeRole", role)
            if denial is not None:
                raise StatesError("States.Permissions", denial)
        return role

    async def _run_task(self, state: TaskState, effective: Any, run: Run, scope: Scope) -> Any:
        return await self.tasks.run(
            state.name,
            state.resource,
            effective,
            run.execution,
            dict(scope.context),
            time_limit=self._seconds(state.timeout_seconds, "TimeoutSeconds", scope),
            heartbeat=self._seconds(state.heartbeat_seconds, "HeartbeatSeconds", scope),
            limit=self.with_timeout,
        )

    @staticmethod
    def _seconds(node: Value | None, field_name: str, scope: Scope) -> float | None:
        if node is None:
            return None
        value = node.evaluate(scope)
        if isinstance(node, Literal):
            return float(value)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise runtime_error(f"{field_name}Path must resolve to a positive number")
        return float(value)

    async def with_timeout(
        self,
        coro: Coroutine[Any, Any, Any],
        limit: float | None,
        on_timeout: Callable[[], Exception] | None = None,
    ) -> Any:
        """Await `coro`, failing with `States.Timeout` after `limit` seconds of the clock."""
        if limit is None:
            return await coro
        work = asyncio.ensure_future(coro)
        timer = asyncio.ensure_future(self.deps.clock.sleep(limit))
        try:
            await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                return work.result()
            if on_timeout is not None:
                raise on_timeout()
            raise StatesError("States.Timeout", f"Task did not finish within {limit:g} seconds")
        finally:
            for task in (work, timer):
                if not task.done():
                    task.cancel()
            await asyncio.gather(work, timer, return_exceptions=True)

    # -- Parallel and Map -----------------------------------------------------------------

    async def _parallel(self, state: ParallelState, effective: Any, run: Run) -> Any:
        record = run.execution.record
        record(self.deps.clock.now(), "ParallelStateStarted")
        resume = self._resume(state, run)
        try:
            results = await fail_fast(
                [
                    self._nested(branch, effective, run.child(None, (state.name, index)))
                    for index, branch in enumerate(state.branches)
                ]
            )
        except StatesError:
            record(self.deps.clock.now(), "ParallelStateFailed")
            raise
        resume.reset(run.path, state.name)
        record(self.deps.clock.now(), "ParallelStateSucceeded")
        return results

    @staticmethod
    def _resume(state: State, run: Run) -> ResumePoints:
        """The execution's resume points; a state entered afresh forgets its earlier branches."""
        resume = run.execution.resume
        if not run.redrive:
            resume.reset(run.path, state.name)
        return resume

    async def _nested(self, machine: Machine, data: Any, run: Run) -> Any:
        """One branch or iteration. Redriven, one that succeeded before returns its output
        again and one that failed resumes in the state it failed in."""
        resume = run.execution.resume
        if run.redrive:
            done, output = resume.earlier(run.path)
            if done:
                return output
        output = await self.run_machine(machine, data, run)
        resume.finish(run.path, output)
        return output

    async def _map(self, state: MapState, scope: Scope, run: Run) -> Any:
        """`scope.data` is the effective input (JSONPath); JSONata reads `$states`."""
        if state.distributed:
            if self.distributed is None:
                raise runtime_error("Distributed Map is not available here")
            return await self.distributed(state, scope, run)
        processor = state.processor
        assert processor is not None
        items = map_items(state, scope)
        limit = max_concurrency(state, scope)
        gate = asyncio.Semaphore(limit) if limit > 0 else None
        record = run.execution.record
        resume = self._resume(state, run)
        record(
            self.deps.clock.now(),
            "MapStateStarted",
            "mapStateStartedEventDetails",
            {"length": len(items)},
        )

        async def iterate(index: int, key: str | None, value: Any) -> Any:
            item = item_context(index, key, value)
            item_input = select_item(state, scope, item)
            iteration = run.child(item, (state.name, index))
            if iteration.redrive:
                done, earlier = resume.earlier(iteration.path)
                if done:
                    return earlier
            if gate is not None:
                await gate.acquire()
            try:
                details = {"name": state.name, "index": index}
                record(
                    self.deps.clock.now(),
                    "MapIterationStarted",
                    "mapIterationStartedEventDetails",
                    details,
                )
                try:
                    output = await self._nested(processor, item_input, iteration)
                except StatesError:
                    record(
                        self.deps.clock.now(),
                        "MapIterationFailed",
                        "mapIterationFailedEventDetails",
                        details,
                    )
                    raise
                record(
                    self.deps.clock.now(),
                    "MapIterationSucceeded",
                    "mapIterationSucceededEventDetails",
                    details,
                )
                return output
            finally:
                if gate is not None:
                    gate.release()

        try:
            results = await fail_fast([iterate(i, k, v) for i, (k, v) in enumerate(items)])
        except StatesError:
            record(self.deps.clock.now(), "MapStateFailed")
            raise
        resume.reset(run.path, state.name)
        record(self.deps.clock.now(), "MapStateSucceeded")
        return results


def map_items(state: MapState, scope: Scope) -> list[tuple[str | None, Any]]:
    """The (key, value) items a Map iterates: `Items` (JSONata; default the state input) or
    ItemsPath's array, or an object's entries."""
    if state.items is not None:
        items = state.items.evaluate(scope)
    elif state.jsonata:
        items = (scope.states or {}).get("input")
    else:
        items = resolve(state.items_path, scope)
    if isinstance(items, list):
        return [(None, item) for item in items]
    if isinstance(items, dict):
        return list(items.items())
    field_name = "Items" if state.jsonata else "ItemsPath"
    raise runtime_error(f"Map {field_name} must be an array, got {dumps(items)[:200]}")


def item_context(index: int, key: str | None, value: Any) -> dict[str, Any]:
    """`$$.Map.Item` for one item."""
    item: dict[str, Any] = {"Index": index, "Value": value}
    if key is not None:
        item["Key"] = key
    return item


def select_item(state: MapState, scope: Scope, item: dict[str, Any]) -> Any:
    """Apply ItemSelector (or the legacy Parameters) to one item; else the item itself. The
    item is `$$.Map.Item` (JSONPath) and `$states.context.Map.Item` (JSONata)."""
    if state.item_selector is None:
        return item["Value"]
    return state.item_selector.evaluate(
        scope.with_context({**scope.context, "Map": {"Item": item}})
    )


def whole_number(node: Value | None, field_name: str, scope: Scope) -> int | None:
    """A count field (`MaxConcurrency`, `MaxItems`, ...): a number, a `...Path` or a JSONata
    expression; None if unset.

    Raises:
        StatesError: `States.Runtime` when it evaluates to anything but a whole number >= 0.
    """
    if node is None:
        return None
    value = node.evaluate(scope)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise runtime_error(f"{field_name} must resolve to a non-negative integer")
    return value


def max_concurrency(state: MapState, scope: Scope) -> int:
    """MaxConcurrency (number, path or expression); 0 means unbounded."""
    limit = whole_number(state.max_concurrency, "MaxConcurrency", scope)
    return limit or 0
