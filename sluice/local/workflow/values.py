"""Value nodes of the typed tree: what a field of a state evaluates to at run time.

A field of a definition is parsed once into one of these nodes (see `definition.py`):

```
Value
├── Literal        a constant (JSON value, or a number field such as Seconds)
├── Template       an object or array whose members are Values (Parameters, Arguments, ...)
├── PathRef        a JSONPath reference: `$...` (input), `$$...` (context), `$name...` (variable)
├── Intrinsic      a `States.*(...)` call
└── Expression     a JSONata expression (`{% ... %}`), compiled at parse time
```

Every node evaluates against a `Scope`: the data `$` refers to, the context object, the
variables in sight.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sluice.local.workflow import jsonpath
from sluice.local.workflow.errors import runtime_error
from sluice.local.workflow.intrinsics import Call, call_intrinsic
from sluice.local.workflow.jsonata import evaluate as evaluate_expression

_VARIABLE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Scope:
    """What a value sees when it is evaluated.

    `data` is what `$` means in a JSONPath field (the effective input, or the task result for
    ResultSelector).
    """

    data: Any
    context: Mapping[str, Any]
    variables: Mapping[str, Any] = field(default_factory=dict)
    states: Mapping[str, Any] | None = None
    # Where an expression runs, for the cause of a States.QueryEvaluationError.
    state_name: str = ""
    entered_id: int = 0

    def with_data(self, data: Any) -> Scope:
        """The same scope with another `$`."""
        return replace(self, data=data)

    def with_states(self, **values: Any) -> Scope:
        """The same scope with `$states` fields added (`result`, `errorOutput`)."""
        return replace(self, states={**(self.states or {}), **values})

    def with_context(self, context: Mapping[str, Any]) -> Scope:
        """The same scope with another context object (`$$`, `$states.context`)."""
        states = None if self.states is None else {**self.states, "context": context}
        return replace(self, context=context, states=states)


@dataclass(frozen=True)
class Literal:
    value: Any

    def evaluate(self, scope: Scope) -> Any:
        return self.value


@dataclass(frozen=True)
class Template:
    """An object (`fields`) or array (`items`) whose members evaluate independently."""

    fields: tuple[tuple[str, Value], ...] | None = None
    items: tuple[Value, ...] | None = None

    def evaluate(self, scope: Scope) -> Any:
        if self.fields is not None:
            return {key: value.evaluate(scope) for key, value in self.fields}
        return [item.evaluate(scope) for item in self.items or ()]


@dataclass(frozen=True)
class PathRef:
    """A JSONPath reference path; `$$` = context object, `$name` = a variable."""

    path: str

    @property
    def variable(self) -> str | None:
        """The variable this path reads, or None for input and context paths."""
        match = _VARIABLE.match(self.path)
        return match.group(1) if match else None

    def evaluate(self, scope: Scope) -> Any:
        return resolve(self.path, scope)

    def exists(self, scope: Scope) -> bool:
        """True when the path names a node (IsPresent)."""
        if self.path.startswith("$$"):
            return jsonpath.exists(scope.context, self.path[1:])
        match = _VARIABLE.match(self.path)
        if match is not None:
            name, rest = match.groups()
            if name not in scope.variables:
                return False
            return jsonpath.exists(scope.variables[name], "$" + rest)
        return jsonpath.exists(scope.data, self.path)


@dataclass(frozen=True)
class Intrinsic:
    call: Call

    def evaluate(self, scope: Scope) -> Any:
        return call_intrinsic(self.call, lambda path: resolve(path, scope))


@dataclass(frozen=True)
class Expression:
    """A JSONata expression; `location` is its field (`Output`, `Arguments/FunctionName`)."""

    source: str
    location: str
    compiled: Any = field(compare=False, repr=False)

    def evaluate(self, scope: Scope) -> Any:
        return evaluate_expression(self, scope)


Value = Literal | Template | PathRef | Intrinsic | Expression


def resolve(path: str, scope: Scope) -> Any:
    """Evaluate a JSONPath reference against the input, the context (`$$`) or a variable.

    Raises:
        StatesError: `States.Runtime` when the path names no node or no variable.
    """
    if path.startswith("$$"):
        return jsonpath.get(scope.context, path[1:])
    match = _VARIABLE.match(path)
    if match is not None:
        name, rest = match.groups()
        if name not in scope.variables:
            raise runtime_error(f"The variable '${name}' is not defined")
        return jsonpath.get(scope.variables[name], "$" + rest)
    return jsonpath.get(scope.data, path)
