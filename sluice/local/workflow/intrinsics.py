"""ASL intrinsic functions (`States.Format(...)` etc.) and payload templates (`"key.$": ...`).

Reference: https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sluice.local.workflow import jsonpath
from sluice.local.workflow.errors import StatesError, runtime_error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

_INTRINSIC_FAILURE = "States.IntrinsicFailure"


@dataclass(frozen=True)
class Call:
    """A parsed `States.<Function>(args...)` call."""

    name: str
    args: tuple[_Arg, ...]


@dataclass(frozen=True)
class _PathArg:
    path: str


@dataclass(frozen=True)
class _Literal:
    value: Any


_Arg = Call | _PathArg | _Literal


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> StatesError:
        return StatesError(_INTRINSIC_FAILURE, f"{what} at {self.pos} in {self.text!r}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def call(self) -> Call:
        self.skip()
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] == "."
        ):
            self.pos += 1
        name = self.text[start : self.pos]
        if not name.startswith("States.") or self.pos >= len(self.text):
            raise self.fail("expected States.<Function>(")
        if self.text[self.pos] != "(":
            raise self.fail("expected '('")
        self.pos += 1
        args: list[_Arg] = []
        self.skip()
        if self.pos < len(self.text) and self.text[self.pos] == ")":
            self.pos += 1
            return Call(name, ())
        while True:
            args.append(self.arg())
            self.skip()
            if self.pos >= len(self.text):
                raise self.fail("unterminated argument list")
            if self.text[self.pos] == ",":
                self.pos += 1
                continue
            if self.text[self.pos] == ")":
                self.pos += 1
                return Call(name, tuple(args))
            raise self.fail("expected ',' or ')'")

    def arg(self) -> _Arg:
        self.skip()
        if self.pos >= len(self.text):
            raise self.fail("missing argument")
        char = self.text[self.pos]
        if char == "'":
            return _Literal(self.string())
        if char == "$":
            return _PathArg(self.path())
        if self.text.startswith("States.", self.pos):
            return self.call()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",)":
            self.pos += 1
        token = self.text[start : self.pos].strip()
        if token in ("true", "false"):
            return _Literal(token == "true")
        if token == "null":
            return _Literal(None)
        try:
            return _Literal(json.loads(token))
        except ValueError as exc:
            raise self.fail(f"bad literal {token!r}") from exc

    def string(self) -> str:
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                # Keep the escape for `{`/`}` so States.Format can tell literal braces apart.
                nxt = self.text[self.pos + 1]
                out.append("\\" + nxt if nxt in "{}" else nxt)
                self.pos += 2
                continue
            if char == "'":
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        raise self.fail("unterminated string")

    def path(self) -> str:
        start = self.pos
        depth = 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "[":
                depth += 1
            elif char == "]":
                depth -= 1
            elif char in ",)" and depth == 0:
                break
            self.pos += 1
        return self.text[start : self.pos].strip()


def parse(text: str) -> Call:
    """Parse an intrinsic call; raises `StatesError(States.IntrinsicFailure)` when malformed."""
    parser = _Parser(text)
    call = parser.call()
    parser.skip()
    if parser.pos != len(text):
        raise parser.fail("trailing characters")
    return call


def path_arguments(call: Call) -> Iterator[str]:
    """Every path argument of a call and of the calls nested in it (for validation)."""
    for arg in call.args:
        if isinstance(arg, _PathArg):
            yield arg.path
        elif isinstance(arg, Call):
            yield from path_arguments(arg)


def unknown_functions(call: Call) -> Iterator[str]:
    """Names of functions in `call` (nested too) that do not exist."""
    if call.name not in _FUNCTIONS:
        yield call.name
    for arg in call.args:
        if isinstance(arg, Call):
            yield from unknown_functions(arg)


def _unescape(text: str) -> str:
    return text.replace("\\{", "{").replace("\\}", "}")


def evaluate(text: str, data: Any, context: Any) -> Any:
    """Evaluate the intrinsic expression `text` against the state input and context object.

    Raises:
        StatesError: `States.IntrinsicFailure` for bad arguments, `States.Runtime` for bad paths.
    """
    return call_intrinsic(parse(text), lambda path: resolve_path(path, data, context))


def resolve_path(path: str, data: Any, context: Any) -> Any:
    """Evaluate `$...` against the input or `$$...` against the context object."""
    if path.startswith("$$"):
        return jsonpath.get(context, path[1:])
    return jsonpath.get(data, path)


def call_intrinsic(call: Call, resolve: Callable[[str], Any]) -> Any:
    """Evaluate a parsed call; `resolve` turns a path argument into its value.

    Raises:
        StatesError: `States.IntrinsicFailure` for bad arguments, `States.Runtime` for bad paths.
    """
    values: list[Any] = []
    for arg in call.args:
        if isinstance(arg, _Literal):
            values.append(arg.value)
        elif isinstance(arg, _PathArg):
            values.append(resolve(arg.path))
        else:
            values.append(call_intrinsic(arg, resolve))
    function = _FUNCTIONS.get(call.name)
    if function is None:
        raise StatesError(_INTRINSIC_FAILURE, f"unknown intrinsic function {call.name}")
    try:
        if call.name != "States.Format":
            values = [_unescape(v) if isinstance(v, str) else v for v in values]
        return function(*values)
    except StatesError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError) as exc:
        raise StatesError(_INTRINSIC_FAILURE, f"{call.name}: {exc}") from exc


def call_function(name: str, *args: Any) -> Any:
    """Call one intrinsic by name with evaluated arguments (JSONata's equivalents reuse them).

    Raises:
        StatesError: `States.IntrinsicFailure` for bad arguments.
    """
    return _FUNCTIONS[name](*args)


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise StatesError(_INTRINSIC_FAILURE, message)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _format(template: str, *args: Any) -> str:
    out: list[str] = []
    remaining = list(args)
    pos = 0
    while pos < len(template):
        if template.startswith("\\{", pos) or template.startswith("\\}", pos):
            out.append(template[pos + 1])
            pos += 2
        elif template.startswith("{}", pos):
            _need(bool(remaining), "States.Format: more placeholders than arguments")
            value = remaining.pop(0)
            out.append(value if isinstance(value, str) else _compact(value))
            pos += 2
        else:
            out.append(template[pos])
            pos += 1
    _need(not remaining, "States.Format: more arguments than placeholders")
    return "".join(out)


def _array_partition(array: list[Any], size: int) -> list[list[Any]]:
    _need(isinstance(array, list) and isinstance(size, int) and size > 0, "bad partition")
    return [array[i : i + size] for i in range(0, len(array), size)]


def _array_range(start: int, end: int, step: int) -> list[int]:
    _need(all(isinstance(v, int) for v in (start, end, step)) and step != 0, "bad range")
    result = list(range(start, end + (1 if step > 0 else -1), step))
    _need(len(result) <= 1000, "States.ArrayRange: more than 1000 items")
    return result


def _array_unique(array: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in array:
        if item not in seen:
            seen.append(item)
    return seen


def _hash(data: Any, algorithm: str) -> str:
    names = {
        "MD5": "md5",
        "SHA-1": "sha1",
        "SHA-256": "sha256",
        "SHA-384": "sha384",
        "SHA-512": "sha512",
    }
    _need(algorithm in names, f"States.Hash: unsupported algorithm {algorithm!r}")
    text = data if isinstance(data, str) else _compact(data)
    return hashlib.new(names[algorithm], text.encode()).hexdigest()


def _json_merge(left: dict[str, Any], right: dict[str, Any], deep: bool) -> dict[str, Any]:
    _need(isinstance(left, dict) and isinstance(right, dict), "JsonMerge needs two objects")
    # AWS supports only the shallow mode; deep=true is rejected.
    _need(deep is False, "States.JsonMerge: only shallow merge (false) is supported")
    return {**left, **right}


def _math_random(start: int, end: int, seed: int | None = None) -> int:
    rng = random.Random(seed) if seed is not None else random
    return rng.randrange(start, end) if end > start else start


def _string_split(text: str, delimiters: str) -> list[str]:
    parts = [text]
    for delimiter in delimiters:
        parts = [piece for part in parts for piece in part.split(delimiter)]
    return [p for p in parts if p != ""]


def _b64decode(text: str) -> str:
    return base64.b64decode(text.encode(), validate=True).decode()


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "States.Format": _format,
    "States.StringToJson": lambda text: json.loads(text),
    "States.JsonToString": _compact,
    "States.Array": lambda *items: list(items),
    "States.ArrayPartition": _array_partition,
    "States.ArrayContains": lambda array, value: value in array,
    "States.ArrayRange": _array_range,
    "States.ArrayGetItem": lambda array, index: array[index],
    "States.ArrayLength": lambda array: len(array),
    "States.ArrayUnique": _array_unique,
    "States.Base64Encode": lambda text: base64.b64encode(text.encode()).decode(),
    "States.Base64Decode": _b64decode,
    "States.Hash": _hash,
    "States.JsonMerge": _json_merge,
    "States.MathRandom": _math_random,
    "States.MathAdd": lambda a, b: a + b,
    "States.StringSplit": _string_split,
    "States.UUID": lambda: str(uuid.uuid4()),
}


def render(template: Any, data: Any, context: Any) -> Any:
    """Render a payload template (Parameters, ResultSelector, ItemSelector, BatchInput...).

    Keys ending in `.$` take their value from a path (`$...`, `$$...`) or an intrinsic call.

    Raises:
        StatesError: `States.Runtime` for paths naming nothing, `States.IntrinsicFailure`.
    """
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str):
                    raise runtime_error(f"field {key!r} must hold a path or intrinsic")
                out[key[:-2]] = (
                    evaluate(value, data, context)
                    if value.startswith("States.")
                    else resolve_path(value, data, context)
                )
            else:
                out[key] = render(value, data, context)
        return out
    if isinstance(template, list):
        return [render(item, data, context) for item in template]
    return template
