"""JSONata for the engine: `{% ... %}` expressions compiled once at parse time, evaluated with
`$states` and the workflow variables bound, as Step Functions evaluates them.

The implementation is jsonata2py, chosen on measured correctness and speed among the JSONata
packages on PyPI (`bench/jsonata_engines.py`, numbers in this folder's README). Step Functions
implements JSONata 2.0.6 minus `$eval` (refused at create, as on AWS) plus six functions of its
own, provided here: `$partition`, `$range`, `$hash`, `$random` (with an optional seed),
`$uuid` and `$parse`
(https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html).

An expression that returns nothing (JSONata's undefined) or raises fails the state with
`States.QueryEvaluationError`, its cause worded as AWS words it.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from dataclasses import fields as dataclass_fields
from dataclasses import is_dataclass
from typing import TYPE_CHECKING, Any

import jsonata2py
from jsonata2py.parser.ast_nodes import FieldRef
from jsonata2py.parser.parser import Parser

from sluice.local.workflow import intrinsics
from sluice.local.workflow.errors import StatesError

if TYPE_CHECKING:
    from collections.abc import Callable

    from sluice.local.workflow.values import Expression, Scope

QUERY_EVALUATION_ERROR = "States.QueryEvaluationError"
_DELIMITED = re.compile(r"^\{%(.*)%\}$", re.DOTALL)
_NAME = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
_MEMBER = re.compile(r"\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
# `$random` is a JSONata built-in without a seed; Step Functions' takes one. The expression's
# calls are renamed to this function (outside string literals) so the seeded form works.
_RANDOM = "$sfnRandom"


class ExpressionSyntaxError(ValueError):
    """The text is not a JSONata expression Step Functions accepts."""


class QueryEvaluationError(StatesError):
    """`States.QueryEvaluationError` raised by one expression; `location` is its field
    (`Output`, `Arguments/FunctionName`), recorded in the EvaluationFailed history event."""

    def __init__(self, cause: str, state: str, location: str):
        super().__init__(QUERY_EVALUATION_ERROR, cause)
        self.state = state
        self.location = location


def expression_text(value: Any) -> str | None:
    """The expression inside a `{% ... %}` string, or None for anything else."""
    if not isinstance(value, str):
        return None
    match = _DELIMITED.match(value)
    return None if match is None else match.group(1).strip()


def _names(source: str) -> list[tuple[int, str]]:
    """`$name` tokens (and `$$`) outside string literals and comments, with their offsets."""
    found: list[tuple[int, str]] = []
    pos, quote = 0, ""
    while pos < len(source):
        char = source[pos]
        if quote:
            if char == "\\":
                pos += 2
                continue
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif source.startswith("/*", pos):
            end = source.find("*/", pos + 2)
            pos = len(source) if end < 0 else end + 2
            continue
        elif source.startswith("$$", pos):
            found.append((pos, "$$"))
            pos += 2
            continue
        elif char == "$":
            match = _NAME.match(source, pos)
            if match is not None:
                found.append((pos, match.group()))
                pos = match.end()
                continue
        pos += 1
    return found


def states_references(source: str) -> set[str]:
    """What an expression reads that Step Functions only offers in some fields: `$$` (never in
    JSONata) and the `$states` members (`$states.result`, `$states.errorOutput`, ...)."""
    found: set[str] = set()
    for pos, name in _names(source):
        if name == "$$":
            found.add(name)
        elif name == "$states":
            member = _MEMBER.match(source, pos + len(name))
            if member is not None:
                found.add(f"$states.{member.group(1)}")
    return found


def expression_names(source: str) -> list[tuple[str, bool]]:
    """Every `$name` an expression mentions (without the `$`; `$$` left out), and whether it
    is called as a function (`$name(`)."""
    found: list[tuple[str, bool]] = []
    for pos, name in _names(source):
        if name == "$$":
            continue
        rest = source[pos + len(name) :].lstrip()
        found.append((name[1:], rest.startswith("(")))
    return found


# Where an expression's sub-expressions run against the items a step selected rather than
# against the expression's own (empty) context: these fields hold no top-level reference (of a
# path, only the first step runs against the context).
_RELATIVE: dict[str, frozenset[str]] = {
    "PathExpr": frozenset({"steps"}),
    "PredicateExpr": frozenset({"predicate"}),
    "ArraySubscript": frozenset({"index"}),
    "SortExpr": frozenset({"keys"}),
    "GroupByExpr": frozenset({"pairs"}),
    "TransformLambda": frozenset({"pattern", "update", "delete"}),
    "TransformExpr": frozenset({"pattern", "update", "delete"}),
}


def top_level_references(source: str) -> list[str]:
    """The field names an expression reads from its context item (`phone`, `a.b`): Step
    Functions evaluates an expression with none (the input is `$states.input`), and refuses
    such a reference when the definition is created (`UNSUPPORTED_JSONATA_EXPRESSION`)."""
    try:
        tree = Parser.parse(source)
    except Exception:  # the compile step reports syntax errors; nothing to add here
        return []
    found: list[str] = []
    _top_level(tree, found)
    return list(dict.fromkeys(found))


def _top_level(node: Any, found: list[str]) -> None:
    if isinstance(node, list | tuple):
        for item in node:
            _top_level(item, found)
        return
    if not is_dataclass(node) or isinstance(node, type):
        return
    if isinstance(node, FieldRef):
        found.append(str(node.name))
        return
    kind = type(node).__name__
    relative = _RELATIVE.get(kind, frozenset())
    for declared in dataclass_fields(node):
        value = getattr(node, declared.name)
        if declared.name not in relative:
            _top_level(value, found)
        elif kind == "PathExpr" and value:
            _top_level(value[0], found)


def compile_expression(source: str) -> Any:
    """Compile one expression with the Step Functions functions registered.

    Raises:
        ExpressionSyntaxError: invalid JSONata, or `$eval` (which Step Functions does not offer).
    """
    names = _names(source)
    if any(name == "$eval" for _, name in names):
        raise ExpressionSyntaxError("$eval is not supported; use $parse")
    rewritten = source
    for pos, name in reversed(names):
        if name == "$random":
            rewritten = rewritten[:pos] + _RANDOM + rewritten[pos + len(name) :]
    try:
        compiled = jsonata2py.compile(rewritten)
    except jsonata2py.JsonataError as exc:
        raise ExpressionSyntaxError(str(exc)) from exc
    for name, function in _FUNCTIONS.items():
        compiled.register_function(name, function)
    return compiled


def evaluate(expression: Expression, scope: Scope) -> Any:
    """Evaluate with `$states` and every variable in sight bound.

    Raises:
        QueryEvaluationError: the expression returned nothing or raised.
    """
    bindings = jsonata2py.JsonataBindings()
    for name, value in scope.variables.items():
        bindings = bindings.bind_value(name, value)
    bindings = bindings.bind_value("states", dict(scope.states or {}))
    prefix = (
        f"An error occurred while executing the state '{scope.state_name}' "
        f"(entered at the event id #{scope.entered_id}). The JSONata expression "
        f"'{expression.source}' specified for the field '{expression.location}'"
    )
    try:
        result = expression.compiled.evaluate(None, bindings)
    except Exception as exc:
        raise QueryEvaluationError(
            f"{prefix} threw an error during evaluation: {exc}",
            scope.state_name,
            expression.location,
        ) from exc
    if result is jsonata2py.MISSING:
        raise QueryEvaluationError(
            f"{prefix} returned nothing (undefined).", scope.state_name, expression.location
        )
    return result


def _random(seed: Any = None) -> float:
    generator = random.Random(seed) if seed is not None else random
    return generator.random()


def _range(start: Any, end: Any, step: Any) -> list[int]:
    return intrinsics.call_function("States.ArrayRange", int(start), int(end), int(step))  # type: ignore[no-any-return]


def _partition(array: Any, size: Any) -> list[Any]:
    return intrinsics.call_function("States.ArrayPartition", array, int(size))  # type: ignore[no-any-return]


def _hash(data: Any, algorithm: Any) -> str:
    return intrinsics.call_function("States.Hash", data, algorithm)  # type: ignore[no-any-return]


def _parse(text: Any) -> Any:
    if not isinstance(text, str):
        raise ValueError("$parse needs a string")
    return json.loads(text)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "partition": _partition,
    "range": _range,
    "hash": _hash,
    _RANDOM[1:]: _random,
    "uuid": lambda: str(uuid.uuid4()),
    "parse": _parse,
}
