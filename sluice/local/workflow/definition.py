"""Parse and validate an ASL definition before anything runs.

Errors name the state and the field (`state 'Plan', field 'Next': ...`) so a template author can
fix the definition without running it.
"""

from __future__ import annotations

import json
from typing import Any

from sluice.local.workflow import jsonpath
from sluice.local.workflow.errors import DefinitionError

STATE_TYPES = frozenset({"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"})

_COMPARISONS = frozenset(
    f"{kind}{op}{suffix}"
    for kind in ("String", "Numeric", "Timestamp")
    for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    for suffix in ("", "Path")
) | {
    "BooleanEquals",
    "BooleanEqualsPath",
    "StringMatches",
    "IsNull",
    "IsPresent",
    "IsNumeric",
    "IsString",
    "IsBoolean",
    "IsTimestamp",
}

_PATH_FIELDS = ("InputPath", "OutputPath", "ItemsPath")
_INPUT_TYPES = frozenset({"JSON", "JSONL", "CSV", "MANIFEST"})


def load(definition: str | dict[str, Any]) -> dict[str, Any]:
    """Parse (if text) and validate a definition; returns the definition as a dict.

    Raises:
        DefinitionError: invalid JSON or an invalid construct, naming state and field.
    """
    if isinstance(definition, str):
        try:
            parsed = json.loads(definition)
        except ValueError as exc:
            raise DefinitionError(f"definition is not valid JSON: {exc}") from exc
    else:
        parsed = definition
    if not isinstance(parsed, dict):
        raise DefinitionError("definition must be a JSON object")
    validate_machine(parsed, where=None)
    return parsed


def validate_machine(machine: dict[str, Any], where: str | None) -> None:
    """Validate one (sub-)state machine: StartAt, States, each state and every transition."""
    states = machine.get("States")
    if not isinstance(states, dict) or not states:
        raise DefinitionError("must be a non-empty object", state=where, field="States")
    start = machine.get("StartAt")
    if not isinstance(start, str) or start not in states:
        raise DefinitionError(f"{start!r} is not a state", state=where, field="StartAt")
    if machine.get("QueryLanguage", "JSONPath") != "JSONPath":
        raise DefinitionError("only JSONPath is supported", state=where, field="QueryLanguage")
    for name, state in states.items():
        if len(name) > 80:
            raise DefinitionError("state names are at most 80 characters", state=name)
        if not isinstance(state, dict):
            raise DefinitionError("must be an object", state=name)
        _validate_state(name, state, states)


def _target(name: str, field: str, value: Any, states: dict[str, Any]) -> None:
    if not isinstance(value, str) or value not in states:
        raise DefinitionError(f"{value!r} is not a state in this scope", state=name, field=field)


def _path(name: str, field: str, value: Any, *, nullable: bool = True) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise DefinitionError("must be a path string", state=name, field=field)
    try:
        jsonpath.validate(value[1:] if value.startswith("$$") else value)
    except jsonpath.PathSyntaxError as exc:
        raise DefinitionError(str(exc), state=name, field=field) from exc


def _template(name: str, field: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key.endswith(".$"):
                if not isinstance(inner, str) or not inner.startswith(("$", "States.")):
                    raise DefinitionError(
                        f"{key!r} must be a path or intrinsic function", state=name, field=field
                    )
                if inner.startswith("$"):
                    _path(name, f"{field}.{key}", inner)
            else:
                _template(name, f"{field}.{key}", inner)
    elif isinstance(value, list):
        for inner in value:
            _template(name, field, inner)


def _number(name: str, state: dict[str, Any], field: str, *, minimum: float = 0) -> None:
    if field in state and (
        isinstance(state[field], bool)
        or not isinstance(state[field], int | float)
        or state[field] < minimum
    ):
        raise DefinitionError(f"must be a number >= {minimum}", state=name, field=field)


def _validate_state(name: str, state: dict[str, Any], states: dict[str, Any]) -> None:
    kind = state.get("Type")
    if kind not in STATE_TYPES:
        raise DefinitionError(f"unknown state type {kind!r}", state=name, field="Type")
    for field in ("Assign", "Arguments", "Output"):
        if field in state:
            raise DefinitionError(
                "JSONata and variables are not supported", state=name, field=field
            )
    if state.get("QueryLanguage", "JSONPath") != "JSONPath":
        raise DefinitionError("only JSONPath is supported", state=name, field="QueryLanguage")
    terminal = kind in ("Succeed", "Fail", "Choice")
    if not terminal:
        has_next, has_end = "Next" in state, state.get("End") is True
        if has_next == has_end:
            raise DefinitionError("exactly one of Next or End: true", state=name, field="Next")
        if has_next:
            _target(name, "Next", state["Next"], states)
    for field in _PATH_FIELDS:
        if field in state:
            _path(name, field, state[field])
    if "ResultPath" in state:
        result_path = state["ResultPath"]
        _path(name, "ResultPath", result_path)
        if result_path is not None and not jsonpath.is_definite(result_path):
            raise DefinitionError("must be a reference path", state=name, field="ResultPath")
    for field in ("Parameters", "ResultSelector", "ItemSelector"):
        if field in state:
            _template(name, field, state[field])
    for index, retrier in enumerate(state.get("Retry", [])):
        field = f"Retry[{index}]"
        if not isinstance(retrier.get("ErrorEquals"), list) or not retrier["ErrorEquals"]:
            raise DefinitionError("ErrorEquals must be a non-empty list", state=name, field=field)
        for sub in ("IntervalSeconds", "MaxAttempts", "MaxDelaySeconds"):
            _number(name, retrier, sub)
        _number(name, retrier, "BackoffRate", minimum=1.0)
        if retrier.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
            raise DefinitionError("must be FULL or NONE", state=name, field=f"{field}.Jitter")
    for index, catcher in enumerate(state.get("Catch", [])):
        field = f"Catch[{index}]"
        if not isinstance(catcher.get("ErrorEquals"), list) or not catcher["ErrorEquals"]:
            raise DefinitionError("ErrorEquals must be a non-empty list", state=name, field=field)
        _target(name, f"{field}.Next", catcher.get("Next"), states)
        if "ResultPath" in catcher:
            _path(name, f"{field}.ResultPath", catcher["ResultPath"])
    validator = _VALIDATORS.get(kind)
    if validator is not None:
        validator(name, state, states)


def _task(name: str, state: dict[str, Any], states: dict[str, Any]) -> None:
    if not isinstance(state.get("Resource"), str):
        raise DefinitionError("a Task needs a Resource ARN", state=name, field="Resource")
    _number(name, state, "TimeoutSeconds", minimum=1)
    _number(name, state, "HeartbeatSeconds", minimum=1)


def _choice(name: str, state: dict[str, Any], states: dict[str, Any]) -> None:
    choices = state.get("Choices")
    if not isinstance(choices, list) or not choices:
        raise DefinitionError("must be a non-empty list", state=name, field="Choices")
    for index, rule in enumerate(choices):
        _target(name, f"Choices[{index}].Next", rule.get("Next"), states)
        _rule(name, f"Choices[{index}]", rule)
    if "Default" in state:
        _target(name, "Default", state["Default"], states)


def _rule(name: str, field: str, rule: Any) -> None:
    if not isinstance(rule, dict):
        raise DefinitionError("a choice rule must be an object", state=name, field=field)
    if "And" in rule or "Or" in rule:
        key = "And" if "And" in rule else "Or"
        if not isinstance(rule[key], list) or not rule[key]:
            raise DefinitionError("must be a non-empty list", state=name, field=f"{field}.{key}")
        for index, inner in enumerate(rule[key]):
            _rule(name, f"{field}.{key}[{index}]", inner)
        return
    if "Not" in rule:
        _rule(name, f"{field}.Not", rule["Not"])
        return
    operators = [key for key in rule if key in _COMPARISONS]
    if len(operators) != 1:
        raise DefinitionError("needs exactly one comparison operator", state=name, field=field)
    _path(name, f"{field}.Variable", rule.get("Variable"), nullable=False)
    if operators[0].endswith("Path"):
        _path(name, f"{field}.{operators[0]}", rule[operators[0]], nullable=False)


def _wait(name: str, state: dict[str, Any], states: dict[str, Any]) -> None:
    given = [k for k in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath") if k in state]
    if len(given) != 1:
        raise DefinitionError(
            "exactly one of Seconds, Timestamp, SecondsPath, TimestampPath",
            state=name,
            field="Seconds",
        )
    _number(name, state, "Seconds")


def _fail(name: str, state: dict[str, Any], states: dict[str, Any]) -> None:
    for field in ("Error", "Cause"):
        if field in state and f"{field}Path" in state:
            raise DefinitionError(f"{field} and {field}Path are exclusive", state=name, field=field)


def _parallel(name: str, state: dict[str, Any], states: dict[str, Any]) -> None:
    branches = state.get("Branches")
    if not isinstance(branches, list) or not branches:
        raise DefinitionError("must be a non-empty list", state=name, field="Branches")
    for branch in branches:
        validate_machine(branch, where=name)


def _map(name: str, state: dict[str, Any], states: dict[str, Any]) -> None:
    processor = state.get("ItemProcessor", state.get("Iterator"))
    if not isinstance(processor, dict):
        raise DefinitionError(
            "a Map needs ItemProcessor (or Iterator)", state=name, field="ItemProcessor"
        )
    validate_machine(processor, where=name)
    config = processor.get("ProcessorConfig", {})
    mode = config.get("Mode", "INLINE")
    if mode not in ("INLINE", "DISTRIBUTED"):
        raise DefinitionError("must be INLINE or DISTRIBUTED", state=name, field="Mode")
    if config.get("ExecutionType", "STANDARD") not in ("STANDARD", "EXPRESS"):
        raise DefinitionError("must be STANDARD or EXPRESS", state=name, field="ExecutionType")
    _number(name, state, "MaxConcurrency")
    _number(name, state, "ToleratedFailureCount")
    if "ToleratedFailurePercentage" in state:
        _number(name, state, "ToleratedFailurePercentage")
        if state["ToleratedFailurePercentage"] > 100:
            raise DefinitionError("must be <= 100", state=name, field="ToleratedFailurePercentage")
    distributed_only = (
        "ItemReader",
        "ItemBatcher",
        "ResultWriter",
        "ToleratedFailureCount",
        "ToleratedFailurePercentage",
    )
    if mode == "INLINE":
        for field in distributed_only:
            if field in state:
                raise DefinitionError("needs Mode DISTRIBUTED", state=name, field=field)
    reader = state.get("ItemReader")
    if reader is not None:
        resource = reader.get("Resource")
        if resource not in ("arn:aws:states:::s3:listObjectsV2", "arn:aws:states:::s3:getObject"):
            raise DefinitionError(
                f"unsupported reader {resource!r}", state=name, field="ItemReader.Resource"
            )
        input_type = reader.get("ReaderConfig", {}).get("InputType")
        if resource.endswith("getObject") and input_type not in _INPUT_TYPES:
            raise DefinitionError(
                "must be JSON, JSONL, CSV or MANIFEST",
                state=name,
                field="ItemReader.ReaderConfig.InputType",
            )
        _template(name, "ItemReader.Parameters", reader.get("Parameters", {}))
    writer = state.get("ResultWriter")
    if writer is not None:
        if writer.get("Resource") != "arn:aws:states:::s3:putObject":
            raise DefinitionError(
                "must be arn:aws:states:::s3:putObject", state=name, field="ResultWriter.Resource"
            )
        if "Bucket" not in writer.get("Parameters", {}) and "Bucket.$" not in writer.get(
            "Parameters", {}
        ):
            raise DefinitionError("needs Bucket", state=name, field="ResultWriter.Parameters")


_VALIDATORS = {
    "Task": _task,
    "Choice": _choice,
    "Wait": _wait,
    "Fail": _fail,
    "Parallel": _parallel,
    "Map": _map,
}
