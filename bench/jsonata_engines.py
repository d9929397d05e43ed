"""Compare the JSONata implementations on PyPI for the local workflow engine: correctness on the
expressions Step Functions definitions use, and speed (compile once, evaluate many times).

Install the candidates into a scratch environment (they are not project dependencies, and two
of them both install a top-level `jsonata` module, so run those from separate environments):

    uv venv /tmp/jb && VIRTUAL_ENV=/tmp/jb uv pip install jsonata-python jsonatapy jlens jsonata2py
    /tmp/jb/bin/python bench/jsonata_engines.py
    uv venv /tmp/jb-rs && VIRTUAL_ENV=/tmp/jb-rs uv pip install jsonata-rs
    /tmp/jb-rs/bin/python bench/jsonata_engines.py

A candidate that is not installed is skipped. The expected values are the JSONata 2.x
reference results (https://docs.jsonata.org); the numbers are recorded in
sluice/local/workflow/README.md.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from collections.abc import Callable
from typing import Any

Evaluate = Callable[[Any, dict[str, Any]], Any]
ERROR = object()
UNDEFINED = object()

ORDERS: dict[str, list[dict[str, Any]]] = {
    "orders": [
        {"id": i, "product": f"p{i}", "price": i * 7 % 200, "tags": ["a", "b"][: i % 3]}
        for i in range(50)
    ]
}
STATES = {"input": ORDERS, "context": {"Execution": {"Id": "arn:x", "Name": "run-1"}}}

# (expression, input, bindings, expected)
CASES: list[tuple[str, Any, dict[str, Any], Any]] = [
    ("$states.input.a + 1", None, {"states": {"input": {"a": 1}}}, 2),
    ("1 + 1", None, {}, 2),
    ("10 / 4", None, {}, 2.5),
    ("0.1 + 0.2", None, {}, 0.30000000000000004),
    ('"Hello " & name', {"name": "Ada"}, {}, "Hello Ada"),
    ("a > 1 ? 'big' : 'small'", {"a": 2}, {}, "big"),
    ("orders[price > 100].id", {"orders": [{"id": 1, "price": 150}, {"id": 2, "price": 5}]}, {}, 1),
    ("orders.id", {"orders": [{"id": 1}, {"id": 2}]}, {}, [1, 2]),
    ("orders[0]", {"orders": [{"id": 1}, {"id": 2}]}, {}, {"id": 1}),
    ("$sum(items.price)", {"items": [{"price": 1}, {"price": 2.5}]}, {}, 3.5),
    ("$count(items)", {"items": [1, 2, 3]}, {}, 3),
    ("$count([])", None, {}, 0),
    ('{"total": $sum(x), "n": $count(x)}', {"x": [1, 2]}, {}, {"total": 3, "n": 2}),
    ("$map([1, 2, 3], function($v) { $v * 2 })", None, {}, [2, 4, 6]),
    ("$filter([1, 2, 3, 4], function($v) { $v % 2 = 0 })", None, {}, [2, 4]),
    ("$reduce([1, 2, 3], function($a, $b) { $a + $b })", None, {}, 6),
    ("$string(5)", None, {}, "5"),
    ("$string({'a': 1})", None, {}, '{"a":1}'),
    ('$number("5.5")', None, {}, 5.5),
    ('$uppercase("abc") & $substring("hello", 1, 3)', None, {}, "ABCell"),
    ('$join(["a", "b"], "-")', None, {}, "a-b"),
    ('$split("a,b,c", ",")', None, {}, ["a", "b", "c"]),
    ("missing", {"a": 1}, {}, UNDEFINED),
    ("a", {"a": None}, {}, None),
    ("$exists(missing)", {"a": 1}, {}, False),
    ('$merge([{"a": 1}, {"b": 2}])', None, {}, {"a": 1, "b": 2}),
    ("$keys({'a': 1, 'b': 2})", None, {}, ["a", "b"]),
    ("$lookup({'a': 1}, 'a')", None, {}, 1),
    ('$contains("abc", /b/)', None, {}, True),
    ('$replace("a-b-c", "-", "+")', None, {}, "a+b+c"),
    ('$formatNumber(1234.5, "#,##0.00")', None, {}, "1,234.50"),
    ("$sort([3, 1, 2])", None, {}, [1, 2, 3]),
    (
        "$sort(x, function($l, $r) { $l.n < $r.n })",
        {"x": [{"n": 1}, {"n": 2}]},
        {},
        [
            {"n": 2},
            {"n": 1},
        ],
    ),
    ("($x := 5; $x * 2)", None, {}, 10),
    ("$boolean(0) or $not(false)", None, {}, True),
    ("$distinct([1, 1, 2])", None, {}, [1, 2]),
    ("$reverse([1, 2, 3])", None, {}, [3, 2, 1]),
    ("[1..5]", None, {}, [1, 2, 3, 4, 5]),
    ("$append([1], [2, 3])", None, {}, [1, 2, 3]),
    ("$zip([1, 2], [3, 4])", None, {}, [[1, 3], [2, 4]]),
    ('$toMillis("2024-01-01T00:00:00.000Z")', None, {}, 1704067200000),
    ("$fromMillis(0)", None, {}, "1970-01-01T00:00:00.000Z"),
    ("$each({'a': 1}, function($v, $k) { $k & $v })", None, {}, "a1"),
    ("**.n", {"a": {"n": 1, "b": {"n": 2}}}, {}, [1, 2]),
    ("$.*", {"a": 1, "b": 2}, {}, [1, 2]),
    ("$floor(2.7) + $round(2.5) + $abs(-1)", None, {}, 5),
    ("$max([1, 5, 3]) - $min([4, 2])", None, {}, 3),
    ("$type(1) & $type('a') & $type(null)", None, {}, "numberstringnull"),
    ("$string(0.1 + 0.2)", None, {}, "0.3"),
    ("4 / 2", None, {}, 2),
    ("1 / 3", None, {}, 0.3333333333333333),
    ('$number("10")', None, {}, 10),
    ("$formatInteger(12, 'w')", None, {}, "twelve"),
    ("$fromMillis(1704067200000, '[Y0001]-[M01]-[D01]')", None, {}, "2024-01-01"),
    ('$pad("x", 3) & "|" & $trim("  a  b ")', None, {}, "x  |a b"),
    ('$substringBefore("a-b", "-") & $substringAfter("a-b", "-")', None, {}, "ab"),
    ('$match("ab12", /[0-9]+/).match', None, {}, "12"),
    ("$average([1, 2, 3]) + $power(2, 10) + $sqrt(4)", None, {}, 1028),
    ("$single([1, 2, 3], function($v) { $v = 2 })", None, {}, 2),
    ("$spread({'a': 1, 'b': 2})", None, {}, [{"a": 1}, {"b": 2}]),
    ('$encodeUrlComponent("a b") & $base64encode("hi")', None, {}, "a%20baGk="),
    (
        "x{k: $sum(v)}",
        {"x": [{"k": "a", "v": 1}, {"k": "a", "v": 2}, {"k": "b", "v": 3}]},
        {},
        {"a": 3, "b": 3},
    ),
    ("x^(>v).v", {"x": [{"v": 1}, {"v": 3}, {"v": 2}]}, {}, [3, 2, 1]),
    ("x#$i[$i < 2].v", {"x": [{"v": 1}, {"v": 3}, {"v": 2}]}, {}, [1, 3]),
    ('"abc" ~> $uppercase()', None, {}, "ABC"),
    ('$ ~> |a|{"b": 2}|', {"a": {"x": 1}}, {}, {"a": {"x": 1, "b": 2}}),
    ("[x.v]", {"x": [{"v": 1}]}, {}, [1]),
    ("x[0].v", {"x": []}, {}, UNDEFINED),
    ('$boolean("") = false and ("5" = 5) = false', None, {}, True),
    ('2 in [1, 2] and "a" < "b"', None, {}, True),
    ('$eval("1 + 1")', None, {}, 2),
    ("$sum([1, 2])", None, {}, 3),
    ('$number("abc")', None, {}, ERROR),
    ('"a" + 1', None, {}, ERROR),
    ("orders[", None, {}, ERROR),
    ("$states.input.orders[price > 100].product", None, {"states": STATES}, None),
    ("$varA & '-' & $varB", None, {"varA": "x", "varB": "y"}, "x-y"),
]
# The filter case's expected value: every product over 100, computed from the data.
CASES[-2] = (
    CASES[-2][0],
    None,
    {"states": STATES},
    [o["product"] for o in ORDERS["orders"] if o["price"] > 100],
)

# Expressions a typical JSONata state machine evaluates on every state transition.
WORKLOAD = [
    "$states.input.orders[price > 100].product",
    '{"count": $count($states.input.orders), "total": $sum($states.input.orders.price)}',
    "$states.context.Execution.Name & '-' & $string($count($states.input.orders))",
    "$states.input.orders[0].price > 5",
    "$map($states.input.orders, function($o) { {'id': $o.id, 'p': $o.price * 2} })",
]


def _jsonata_python() -> Callable[[str], Evaluate]:
    import jsonata  # type: ignore[import-not-found, unused-ignore]

    def build(expr: str) -> Evaluate:
        compiled = jsonata.Jsonata(expr)
        return lambda data, bindings: compiled.evaluate(data, bindings)

    return build


def _jsonata_rs() -> Callable[[str], Evaluate]:
    import jsonata  # type: ignore[import-not-found, unused-ignore]

    if not hasattr(jsonata, "UNDEFINED"):
        raise ImportError("the installed `jsonata` module is not jsonata-rs")

    def build(expr: str) -> Evaluate:
        compiled = jsonata.Jsonata(expr)
        return lambda data, bindings: compiled.evaluate(data, bindings)

    return build


def _jsonatapy() -> Callable[[str], Evaluate]:
    import jsonatapy  # type: ignore[import-not-found, unused-ignore]

    def build(expr: str) -> Evaluate:
        compiled = jsonatapy.compile(expr)
        return lambda data, bindings: compiled.evaluate(data, bindings)

    return build


def _jlens() -> Callable[[str], Evaluate]:
    import jlens  # type: ignore[import-not-found, unused-ignore]

    def build(expr: str) -> Evaluate:
        compiled = jlens.Expression(expr)
        return lambda data, bindings: compiled.evaluate(data, bindings)

    return build


def _jsonata2py() -> Callable[[str], Evaluate]:
    import jsonata2py

    def build(expr: str) -> Evaluate:
        compiled = jsonata2py.compile(expr)

        def run(data: Any, bindings: dict[str, Any]) -> Any:
            bound = jsonata2py.JsonataBindings()
            for key, value in bindings.items():
                bound = bound.bind_value(key, value)
            result = compiled.evaluate(data, bound)
            return UNDEFINED if result is jsonata2py.MISSING else result

        return run

    return build


CANDIDATES: dict[str, tuple[str, Callable[[], Callable[[str], Evaluate]]]] = {
    "jsonata-python": ("jsonata-python", _jsonata_python),
    "jsonata-rs": ("jsonata-rs", _jsonata_rs),
    "jsonatapy": ("jsonatapy", _jsonatapy),
    "jlens": ("jlens", _jlens),
    "jsonata2py": ("jsonata2py", _jsonata2py),
}


def _same(result: Any, expected: Any) -> bool:
    if expected is UNDEFINED:
        return result is UNDEFINED or result is None or type(result).__name__ == "UndefinedType"
    try:
        return json.dumps(result, sort_keys=True) == json.dumps(expected, sort_keys=True)
    except TypeError:
        return False


def correctness(build: Callable[[str], Evaluate]) -> list[str]:
    """The expressions whose result differs from the reference (empty: all pass)."""
    failures: list[str] = []
    for expr, data, bindings, expected in CASES:
        try:
            result = build(expr)(data, bindings)
        except Exception as exc:
            if expected is not ERROR:
                failures.append(f"{expr}: raised {type(exc).__name__}: {str(exc)[:80]}")
            continue
        if expected is ERROR:
            failures.append(f"{expr}: no error, got {result!r:.60}")
        elif not _same(result, expected):
            failures.append(f"{expr}: got {result!r:.60}")
    return failures


def tells_undefined(build: Callable[[str], Evaluate]) -> bool:
    """Whether JSONata's undefined comes back distinct from JSON null: Step Functions fails a
    field whose expression returns nothing, so the engine must tell the two apart."""
    missing = build("missing")({"a": None}, {})
    null = build("a")({"a": None}, {})
    return missing is not None and null is None


def speed(build: Callable[[str], Evaluate], rounds: int = 100) -> tuple[float, float]:
    """(µs per compile, µs per evaluation) over WORKLOAD, the best of 5 repetitions (the
    machine is shared: the minimum is the least disturbed measurement)."""
    bindings = {"states": STATES}
    compile_best = eval_best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            compiled = [build(expr) for expr in WORKLOAD]
        compile_best = min(compile_best, (time.perf_counter() - start) / (10 * len(WORKLOAD)))
        start = time.perf_counter()
        for _ in range(rounds):
            for run in compiled:
                run(None, bindings)
        eval_best = min(eval_best, (time.perf_counter() - start) / (rounds * len(WORKLOAD)))
    return compile_best * 1e6, eval_best * 1e6


def main() -> None:
    print(f"{len(CASES)} correctness cases; workload of {len(WORKLOAD)} expressions")
    print(
        f"{'package':16s} {'version':9s} {'correct':>8s} {'undefined':>9s} "
        f"{'compile µs':>11s} {'eval µs':>9s}"
    )
    for name, (dist, loader) in CANDIDATES.items():
        try:
            build = loader()
            version = importlib.metadata.version(dist)
        except (ImportError, importlib.metadata.PackageNotFoundError):
            continue
        failures = correctness(build)
        compile_us, eval_us = speed(build)
        passed = len(CASES) - len(failures)
        undefined = "yes" if tells_undefined(build) else "no"
        print(
            f"{name:16s} {version:9s} {passed:>3d}/{len(CASES):<4d} {undefined:>9s} "
            f"{compile_us:11.1f} {eval_us:9.1f}"
        )
        for failure in failures:
            print(f"    x {failure}")


if __name__ == "__main__":
    main()
