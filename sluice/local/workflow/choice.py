"""Choice rule evaluation (comparison operators, And/Or/Not, type tests, StringMatches)."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sluice.local.workflow.errors import runtime_error
from sluice.local.workflow.tree import AllOf, AnyOf, Condition, NotRule
from sluice.local.workflow.values import PathRef

if TYPE_CHECKING:
    from collections.abc import Callable

    from sluice.local.workflow.tree import ChoiceRule
    from sluice.local.workflow.values import Scope


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


def evaluate(rule: ChoiceRule, scope: Scope) -> bool:
    """Evaluate one rule against the state's effective input (`scope.data`).

    Raises:
        StatesError: `States.Runtime` when `Variable` (or a `...Path` operand) names no node,
        except for `IsPresent`, whose job is to test exactly that; when a JSONata `Condition`
        is not a boolean.
    """
    if isinstance(rule, AllOf):
        return all(evaluate(inner, scope) for inner in rule.rules)
    if isinstance(rule, AnyOf):
        return any(evaluate(inner, scope) for inner in rule.rules)
    if isinstance(rule, NotRule):
        return not evaluate(rule.rule, scope)
    if isinstance(rule, Condition):
        result = rule.expression.evaluate(scope)
        if not isinstance(result, bool):
            raise runtime_error(f"the Condition must evaluate to a boolean, got {result!r}")
        return result
    operator = rule.operator
    if operator == "IsPresent":
        return rule.variable.exists(scope) is bool(rule.operand)
    value = rule.variable.evaluate(scope)
    check = _TYPE_TESTS.get(operator)
    if check is not None:
        return check(value) is bool(rule.operand)
    if operator == "StringMatches":
        return isinstance(value, str) and _glob(rule.operand).fullmatch(value) is not None
    operand = rule.operand
    if isinstance(operand, PathRef):
        operand = operand.evaluate(scope)
        operator = operator[: -len("Path")]
    kind, op = _split(operator)
    if kind == "Boolean":
        op = "Equals"
    return _compare(kind, op, value, operand)


_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsNumeric": _is_number,
    "IsString": lambda v: isinstance(v, str),
    "IsBoolean": lambda v: isinstance(v, bool),
    "IsTimestamp": lambda v: parse_timestamp(v) is not None,
}
