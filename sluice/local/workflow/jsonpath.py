"""A small JSONPath subset: what ASL paths use.

Supported: `$`, `.name`, `['name']`, `[n]` (negative too), `[*]`, `.*`, `[a:b]` slices and
`..name` recursive descent. Filters (`[?(...)]`) are not supported and are rejected at parse time.
A *reference path* (ResultPath, the `Variable` of Choice rules that must name one node) allows
only names and indexes.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sluice.local.workflow.errors import runtime_error


@dataclass(frozen=True)
class _Key:
    name: str


@dataclass(frozen=True)
class _Index:
    index: int


@dataclass(frozen=True)
class _Wildcard:
    pass


@dataclass(frozen=True)
class _Slice:
    start: int | None
    stop: int | None


@dataclass(frozen=True)
class _Descend:
    name: str


_Segment = _Key | _Index | _Wildcard | _Slice | _Descend

_NAME = re.compile(r"[^.\[\]]+")


class PathSyntaxError(ValueError):
    """The text is not a path this evaluator understands."""


@lru_cache(maxsize=1024)
def parse(path: str) -> tuple[_Segment, ...]:
    """Parse a path starting with `$` into segments.

    Raises:
        PathSyntaxError: the path is malformed or uses an unsupported construct.
    """
    if not path.startswith("$"):
        raise PathSyntaxError(f"path {path!r} must start with '$'")
    segments: list[_Segment] = []
    pos = 1
    while pos < len(path):
        char = path[pos]
        if path.startswith("..", pos):
            match = _NAME.match(path, pos + 2)
            if match is None:
                raise PathSyntaxError(f"path {path!r}: '..' needs a name")
            segments.append(_Descend(match.group()))
            pos = match.end()
        elif char == ".":
            match = _NAME.match(path, pos + 1)
            if match is None:
                raise PathSyntaxError(f"path {path!r}: '.' needs a name")
            name = match.group()
            segments.append(_Wildcard() if name == "*" else _Key(name))
            pos = match.end()
        elif char == "[":
            end = _closing_bracket(path, pos)
            segments.append(_bracket(path, path[pos + 1 : end].strip()))
            pos = end + 1
        else:
            raise PathSyntaxError(f"path {path!r}: unexpected {char!r} at {pos}")
    return tuple(segments)


def _closing_bracket(path: str, start: int) -> int:
    quote: str | None = None
    for pos in range(start + 1, len(path)):
        char = path[pos]
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "]":
            return pos
    raise PathSyntaxError(f"path {path!r}: unclosed '['")


def _bracket(path: str, inner: str) -> _Segment:
    if inner == "*":
        return _Wildcard()
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _Key(inner[1:-1])
    if inner.startswith("?"):
        raise PathSyntaxError(f"path {path!r}: filter expressions are not supported")
    if ":" in inner:
        parts = inner.split(":")
        if len(parts) != 2:
            raise PathSyntaxError(f"path {path!r}: slice steps are not supported")
        try:
            return _Slice(*(int(p) if p.strip() else None for p in parts))
        except ValueError as exc:
            raise PathSyntaxError(f"path {path!r}: bad slice [{inner}]") from exc
    try:
        return _Index(int(inner))
    except ValueError as exc:
        raise PathSyntaxError(f"path {path!r}: bad subscript [{inner}]") from exc


def is_definite(path: str) -> bool:
    """True when the path names at most one node (names and indexes only)."""
    return all(isinstance(s, _Key | _Index) for s in parse(path))


def validate(path: str) -> None:
    """Raise `PathSyntaxError` if `path` cannot be parsed."""
    parse(path)


_MISSING = object()


def _step(values: list[Any], segment: _Segment) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if isinstance(segment, _Key):
            if isinstance(value, dict) and segment.name in value:
                out.append(value[segment.name])
        elif isinstance(segment, _Index):
            if isinstance(value, list) and -len(value) <= segment.index < len(value):
                out.append(value[segment.index])
        elif isinstance(segment, _Wildcard):
            if isinstance(value, dict):
                out.extend(value.values())
            elif isinstance(value, list):
                out.extend(value)
        elif isinstance(segment, _Slice):
            if isinstance(value, list):
                out.extend(value[segment.start : segment.stop])
        else:
            out.extend(_descend(value, segment.name))
    return out


def _descend(value: Any, name: str) -> list[Any]:
    found: list[Any] = []
    if isinstance(value, dict):
        if name in value:
            found.append(value[name])
        for child in value.values():
            found.extend(_descend(child, name))
    elif isinstance(value, list):
        for child in value:
            found.extend(_descend(child, name))
    return found


def get(data: Any, path: str) -> Any:
    """Evaluate `path` against `data`.

    A definite path returns the node; an indefinite one (wildcard, slice, `..`) returns the list of
    matches.

    Raises:
        StatesError: `States.Runtime` when a definite path names no node, or the path is invalid.
    """
    try:
        segments = parse(path)
    except PathSyntaxError as exc:
        raise runtime_error(str(exc)) from exc
    values = [data]
    for segment in segments:
        values = _step(values, segment)
        if not values and isinstance(segment, _Key | _Index):
            break
    if all(isinstance(s, _Key | _Index) for s in segments):
        if not values:
            raise runtime_error(
                f"The JSONPath '{path}' could not be found in the input '{_short(data)}'"
            )
        return values[0]
    return values


def exists(data: Any, path: str) -> bool:
    """True when a definite `path` names a node of `data` (indefinite: at least one match)."""
    values = [data]
    for segment in parse(path):
        values = _step(values, segment)
        if not values:
            return False
    return True


def put(data: Any, path: str, value: Any) -> Any:
    """Return a copy of `data` with `value` placed at the reference `path` (ResultPath rules).

    `$` replaces the whole document. Missing objects on the way are created.

    Raises:
        StatesError: `States.Runtime` when the path is not a reference path or crosses a
        non-object node.
    """
    try:
        segments = parse(path)
    except PathSyntaxError as exc:
        raise runtime_error(str(exc)) from exc
    if not segments:
        return value
    if not all(isinstance(s, _Key | _Index) for s in segments):
        raise runtime_error(f"ResultPath {path!r} must be a reference path")
    root = copy.deepcopy(data) if isinstance(data, dict | list) else data
    if not isinstance(root, dict | list):
        raise runtime_error(f"cannot apply ResultPath {path!r} to a non-object input")
    node: Any = root
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if isinstance(segment, _Key):
            if not isinstance(node, dict):
                raise runtime_error(f"ResultPath {path!r} crosses a non-object node")
            if last:
                node[segment.name] = value
            else:
                nxt = node.get(segment.name, _MISSING)
                if not isinstance(nxt, dict | list):
                    nxt = {}
                    node[segment.name] = nxt
                node = nxt
        else:
            assert isinstance(segment, _Index)
            if not isinstance(node, list) or not -len(node) <= segment.index < len(node):
                raise runtime_error(f"ResultPath {path!r}: index out of range")
            if last:
                node[segment.index] = value
            else:
                node = node[segment.index]
    return root


def _short(data: Any, limit: int = 200) -> str:
    import json

    text = json.dumps(data, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[:limit] + "..."
