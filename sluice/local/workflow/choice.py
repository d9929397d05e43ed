"""Choice rule evaluation (comparison operators, And/Or/Not, type tests, StringMatches)."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sluice.local.workflow import jsonpath
from sluice.local.workflow.errors import runtime_error
from sluice.local.workflow.intrinsics import resolve_path

if TYPE_CHECKING:
    from collections.abc import Callable


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp with a zone (what ASL accepts), or None."""
    if not isinstance(value, str) or "T" not in value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    pos = 0
    while pos < len(pattern):
        char = pattern[pos]
        if char == "\\" and pos + 1 < len(pattern):
            parts.append(re.escape(pattern[pos + 1]))
            pos += 2
            continue
        parts.append(".*" if char == "*" else re.escape(char))
        pos += 1
    return re.compile("".join(parts), re.DOTALL)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(kind: str, op: str, left: Any, right: Any) -> bool:
    if kind == "String":
        if not (isinstance(left, str) and isinstance(right, str)):
            return False
        a: Any = left
        b: Any = right
    elif kind == "Numeric":
        if not (_is_number(left) and _is_number(right)):
            return False
        a, b = left, right
    elif kind == "Timestamp":
        a, b = parse_timestamp(left), parse_timestamp(right)
        if a is None or b is None:
            return False
    else:
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if op == "Equals":
        return bool(a == b)
    if op == "LessThan":
        return bool(a < b)
    if op == "GreaterThan":
        return bool(a > b)
    if op == "LessThanEquals":
        return bool(a <= b)
    return bool(a >= b)


def _split(operator: str) -> tuple[str, str]:
    for kind in ("String", "Numeric", "Timestamp", "Boolean"):
        if operator.startswith(kind):
            return kind, operator[len(kind) :]
    raise runtime_error(f"unknown operator {operator}")


def evaluate(rule: dict[str, Any], data: Any, context: Any) -> bool:
    """Evaluate one rule against the state's effective input.

    Raises:
        StatesError: `States.Runtime` when `Variable` (or a `...Path` operand) names no node,
        except for `IsPresent`, whose job is to test exactly that.
    """
    if "And" in rule:
        return all(evaluate(inner, data, context) for inner in rule["And"])
    if "Or" in rule:
        return any(evaluate(inner, data, context) for inner in rule["Or"])
    if "Not" in rule:
        return not evaluate(rule["Not"], data, context)
    variable: str = rule["Variable"]
    if "IsPresent" in rule:
        target, path = (context, variable[1:]) if variable.startswith("$$") else (data, variable)
        return jsonpath.exists(target, path) is bool(rule["IsPresent"])
    value = resolve_path(variable, data, context)
    type_tests: dict[str, Callable[[Any], bool]] = {
        "IsNull": lambda v: v is None,
        "IsNumeric": _is_number,
        "IsString": lambda v: isinstance(v, str),
        "IsBoolean": lambda v: isinstance(v, bool),
        "IsTimestamp": lambda v: parse_timestamp(v) is not None,
    }
    for test, check in type_tests.items():
        if test in rule:
            return check(value) is bool(rule[test])
    if "StringMatches" in rule:
        return isinstance(value, str) and _glob(rule["StringMatches"]).fullmatch(value) is not None
    for operator, operand in rule.items():
        if operator in ("Variable", "Next"):
            continue
        if operator.endswith("Path"):
            operand = resolve_path(operand, data, context)
            operator = operator[: -len("Path")]
        kind, op = _split(operator)
        if kind == "Boolean":
            op = "Equals"
        return _compare(kind, op, value, operand)
    raise runtime_error(f"choice rule without operator: {rule}")
