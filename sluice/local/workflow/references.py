"""Which workflow variables each state references: DescribeStateMachine's
`variableReferences` ("a map of state name to a list of variables referenced by that state;
states that do not use variable references will not be shown",
https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeStateMachine.html).

A reference is a `$name` JSONPath path (a field, a `.$` key, an intrinsic's argument, a Choice
`Variable`/`...Path`, InputPath/OutputPath/ItemsPath) or a `$name` in a JSONata expression
that is neither `$states`, a function call, nor a name the expression binds itself (`$x := ...`,
a `function($x)` parameter). Nested states (Parallel branches, Map processors) are listed under
their own names, as state names are unique in a definition.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields, is_dataclass
from typing import Any

from sluice.local.workflow.intrinsics import path_arguments
from sluice.local.workflow.jsonata import expression_names
from sluice.local.workflow.tree import Io, Machine, MapState
from sluice.local.workflow.values import Expression, Intrinsic, PathRef, Template

_VARIABLE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)")
_BOUND = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*:=")
_PARAMETERS = re.compile(r"function\s*\(([^)]*)\)")


def variable_references(machine: Machine) -> dict[str, list[str]]:
    """State name → the variables it references, in the order they first appear."""
    found: dict[str, list[str]] = {}
    for name, state in machine.states.items():
        names: list[str] = []
        nested: list[Machine] = []
        _walk(state, names, nested)
        if names:
            found[name] = list(dict.fromkeys(names))
        for inner in nested:
            found.update(variable_references(inner))
    return found


def _path(path: Any, names: list[str]) -> None:
    if isinstance(path, str):
        match = _VARIABLE.match(path)
        if match is not None:
            names.append(match.group(1))


def _expression(source: str, names: list[str]) -> None:
    bound = set(_BOUND.findall(source))
    for parameters in _PARAMETERS.findall(source):
        bound.update(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", parameters))
    for name, called in expression_names(source):
        if not called and name != "states" and name not in bound:
            names.append(name)


def _walk(value: Any, names: list[str], nested: list[Machine]) -> None:
    if isinstance(value, Machine):
        nested.append(value)
    elif isinstance(value, PathRef):
        _path(value.path, names)
    elif isinstance(value, Intrinsic):
        for path in path_arguments(value.call):
            _path(path, names)
    elif isinstance(value, Expression):
        _expression(value.source, names)
    elif isinstance(value, Template):
        for _, member in value.fields or ():
            _walk(member, names, nested)
        for item in value.items or ():
            _walk(item, names, nested)
    elif isinstance(value, tuple):
        for item in value:
            _walk(item, names, nested)
    elif is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, Io):
            _path(value.input_path, names)
            _path(value.output_path, names)
        if isinstance(value, MapState):
            _path(value.items_path, names)
        for declared in fields(value):
            _walk(getattr(value, declared.name), names, nested)


def processor_of(
    definition: str, machine: Machine, label: str
) -> tuple[str | None, Machine | None]:
    """The ItemProcessor (JSON text and tree) of the Distributed Map labelled `label` (its
    `Label`, else its name) in `definition`/`machine`: what a Map Run child execution runs."""
    raw = _find_processor(json.loads(definition), label)
    return (
        None if raw is None else json.dumps(raw, separators=(",", ":")),
        _find_map_processor(machine, label),
    )


def _find_map_processor(machine: Machine, label: str) -> Machine | None:
    for name, state in machine.states.items():
        if isinstance(state, MapState) and (state.label or name) == label:
            return state.processor
        nested = [*getattr(state, "branches", ())]
        if isinstance(state, MapState) and state.processor is not None:
            nested.append(state.processor)
        for inner in nested:
            found = _find_map_processor(inner, label)
            if found is not None:
                return found
    return None


def _find_processor(machine: Any, label: str) -> dict[str, Any] | None:
    states = machine.get("States") if isinstance(machine, dict) else None
    if not isinstance(states, dict):
        return None
    for name, state in states.items():
        if not isinstance(state, dict):
            continue
        processor = state.get("ItemProcessor", state.get("Iterator"))
        if state.get("Type") == "Map" and (state.get("Label") or name) == label:
            return processor if isinstance(processor, dict) else None
        for inner in [*state.get("Branches", []), processor]:
            found = _find_processor(inner, label)
            if found is not None:
                return found
    return None
