"""Parse an ASL definition once into the typed tree (`tree.py`); the parse is the validation.

Errors name the state and the field (`state 'Plan', field 'Next': ...`) so a template author can
fix the definition without running it. Nothing the engine cannot run gets past this module: an
unknown field, a construct the engine does not implement or a Task resource no integration
serves is refused here, at CreateStateMachine, never discovered mid-execution.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields as dataclass_fields
from dataclasses import is_dataclass
from typing import TYPE_CHECKING, Any

from sluice.local.workflow import jsonpath
from sluice.local.workflow.errors import DefinitionError, StatesError
from sluice.local.workflow.integrations import REGISTRY
from sluice.local.workflow.intrinsics import parse as parse_intrinsic
from sluice.local.workflow.intrinsics import path_arguments, unknown_functions
from sluice.local.workflow.jsonata import (
    ExpressionSyntaxError,
    compile_expression,
    expression_text,
    states_references,
    top_level_references,
)
from sluice.local.workflow.tree import (
    JSONATA,
    JSONPATH,
    AllOf,
    AnyOf,
    Catcher,
    Choice,
    ChoiceRule,
    ChoiceState,
    Comparison,
    Condition,
    FailState,
    Io,
    ItemBatcher,
    ItemReader,
    Machine,
    MapState,
    NotRule,
    ParallelState,
    PassState,
    ReaderConfig,
    ResultWriter,
    Retrier,
    State,
    SucceedState,
    TaskState,
    WaitState,
    catchers,
)
from sluice.local.workflow.values import Expression, Intrinsic, Literal, PathRef, Template, Value

if TYPE_CHECKING:
    from collections.abc import Iterator

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
_INPUT_TYPES = frozenset({"JSON", "JSONL", "CSV", "MANIFEST", "PARQUET"})
# ManifestType → the InputTypes of the data files it may list.
_MANIFEST_INPUTS = {
    "ATHENA_DATA": frozenset({"CSV", "JSONL", "PARQUET"}),
    "S3_INVENTORY": frozenset({"CSV", "MANIFEST"}),
}
_READERS = frozenset({"arn:aws:states:::s3:listObjectsV2", "arn:aws:states:::s3:getObject"})
_WRITER = "arn:aws:states:::s3:putObject"
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")


def parse(definition: str | dict[str, Any]) -> Machine:
    """Parse (if text) and validate a definition into its typed tree.

    Raises:
        DefinitionError: invalid JSON or an invalid construct, naming state and field.
    """
    if isinstance(definition, str):
        try:
            document = json.loads(definition)
        except ValueError as exc:
            raise DefinitionError(f"definition is not valid JSON: {exc}") from exc
    else:
        document = definition
    if not isinstance(document, dict):
        raise DefinitionError("definition must be a JSON object")
    return _machine(document, where=None, inherited=JSONPATH, top=True, base="")


def _pointer(field_name: str) -> str:
    """`Retry[0].ErrorEquals` → `Retry[0]/ErrorEquals`: the location's tail as AWS writes it,
    `/` per object key and `[i]` per array index (`/States/C/Choices[0]/Next`)."""
    return field_name.replace(".", "/").strip("/")


class _Fields:
    """A state's (or block's) fields; remembers which were read so leftovers can be refused.

    `base` is the JSON pointer of the state (`/States/A`, `/States/P/Branches/0/States/B`) or of
    the machine, `prefix` the field path of this block inside it (`ItemReader.ReaderConfig.`).
    """

    def __init__(
        self,
        raw: dict[str, Any],
        state: str | None,
        prefix: str = "",
        base: str = "",
        deferred: list[DefinitionError] | None = None,
    ):
        self.raw = raw
        self.state = state
        self.prefix = prefix
        self.base = base
        self.used: set[str] = set()
        # Problems that do not stop the parse of the state (a dangling transition target),
        # reported with the state's other problems when it is done (shared by its blocks).
        self.deferred: list[DefinitionError] = [] if deferred is None else deferred

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def sub(self, raw: dict[str, Any], prefix: str) -> _Fields:
        """A nested block of the same state."""
        return _Fields(raw, self.state, prefix, self.base, self.deferred)

    def error(
        self, key: str, message: str, code: str = "SCHEMA_VALIDATION_FAILED"
    ) -> DefinitionError:
        return self.error_at(self.name(key), message, code)

    def error_at(
        self, field_name: str, message: str, code: str = "SCHEMA_VALIDATION_FAILED"
    ) -> DefinitionError:
        tail = _pointer(field_name)
        pointer = f"{self.base}/{tail}" if tail else (self.base or "/")
        return DefinitionError(
            message, state=self.state, field=field_name or None, code=code, pointer=pointer
        )

    def __contains__(self, key: str) -> bool:
        return key in self.raw

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.raw.get(key, default)

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.get(key)
        if value is None and not required and key not in self.raw:
            return None
        if not isinstance(value, str) or (required and not value):
            raise self.error(key, "must be a non-empty string" if required else "must be a string")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.get(key, default)
        if value not in allowed:
            raise self.error(key, f"must be one of {', '.join(allowed)}")
        return str(value)

    def number(self, key: str, *, minimum: float = 0, integer: bool = False) -> float | None:
        if key not in self.raw:
            return None
        value = self.get(key)
        kind = int if integer else int | float
        if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
            what = "an integer" if integer else "a number"
            raise self.error(key, f"must be {what} >= {minimum:g}")
        return float(value)

    def block(self, key: str) -> _Fields | None:
        if key not in self.raw:
            return None
        value = self.get(key)
        if not isinstance(value, dict):
            raise self.error(key, "must be an object")
        return self.sub(value, f"{self.name(key)}.")

    def unknown(self) -> list[str]:
        return [key for key in self.raw if key not in self.used]

    def refuse_unknown(self, *, done: bool = False) -> None:
        """AWS refuses any field a state type (or block) does not define; so does this, each
        at the pointer of the object holding the field, as AWS locates it (`/States/<state>`).
        `done` (the state's own fields, checked last): the deferred problems come first."""
        tail = _pointer(self.prefix)
        problems = [
            DefinitionError(
                f"Field '{key}' is not supported",
                state=self.state,
                field=self.name(key),
                pointer=f"{self.base}/{tail}" if tail else (self.base or "/"),
            )
            for key in self.unknown()
        ]
        if done:
            problems = self.deferred + problems
        if problems:
            raise DefinitionError.combine(problems)


# -- machines ----------------------------------------------------------------------------------


def _machine(
    raw: dict[str, Any], where: str | None, inherited: str, *, top: bool, base: str
) -> Machine:
    """A machine, branch or ItemProcessor at JSON pointer `base` (`""` for the definition)."""
    fields = _Fields(raw, where, base=base)
    language = fields.choice("QueryLanguage", (JSONPATH, JSONATA), inherited)
    states = fields.get("States")
    if not isinstance(states, dict) or not states:
        raise fields.error("States", "must be a non-empty object")
    start = fields.get("StartAt")
    if not isinstance(start, str) or start not in states:
        raise fields.error("StartAt", f"{start!r} is not a state")
    comment = fields.string("Comment")
    fields.get("Version")
    seconds = fields.number("TimeoutSeconds", minimum=1, integer=True) if top else None
    timeout = None if seconds is None else int(seconds)
    if not top:
        fields.get("ProcessorConfig")  # read by the Map that owns this processor
    # Every problem is reported, as AWS lists them: each state's first, then the graph's.
    problems: list[DefinitionError] = []
    parsed: dict[str, State] = {}
    for name, state in states.items():
        state_base = f"{base}/States/{name}"
        try:
            if len(name) > 80:
                raise DefinitionError(
                    "state names are at most 80 characters", state=name, pointer=state_base
                )
            if not isinstance(state, dict):
                raise DefinitionError("must be an object", state=name, pointer=state_base)
            parsed[name] = _state(name, state, states, language, state_base)
        except DefinitionError as exc:
            problems.append(exc)
    try:
        fields.refuse_unknown()
    except DefinitionError as exc:
        problems.append(exc)
    problems += _graph_problems(start, states, base)
    if problems:
        raise DefinitionError.combine(problems)
    return Machine(start, parsed, language, timeout, comment)


def _transitions(raw: Any) -> list[str]:
    """The states a state's raw definition names (Next, Default, Choices, Catch): read from
    the raw dicts, so that the graph is checked even when a state failed to parse."""
    if not isinstance(raw, dict):
        return []
    targets = [raw.get("Next"), raw.get("Default")]
    for key in ("Choices", "Catch"):
        entries = raw.get(key)
        if isinstance(entries, list):
            targets += [entry.get("Next") for entry in entries if isinstance(entry, dict)]
    return [target for target in targets if isinstance(target, str)]


def _terminal(raw: Any) -> bool:
    return isinstance(raw, dict) and (
        raw.get("Type") in ("Succeed", "Fail")
        or (raw.get("Type") != "Choice" and raw.get("End") is True)
    )


def _graph_problems(start: str, states: dict[str, Any], base: str) -> list[DefinitionError]:
    """At least one state that ends, and every state reachable from StartAt (AWS's two graph
    rules; one problem per unreachable state). As on AWS, a workflow without a terminal state
    gets that one problem and no reachability walk."""
    if not any(_terminal(raw) for raw in states.values()):
        return [
            DefinitionError(
                "Workflow has no terminal state", code="MISSING_END_STATE", pointer=base or "null"
            )
        ]
    seen = {start}
    todo = [start]
    while todo:
        for target in _transitions(states[todo.pop()]):
            if target in states and target not in seen:
                seen.add(target)
                todo.append(target)
    return [
        DefinitionError(
            f'State "{name}" is not reachable.',
            state=name,
            code="MISSING_TRANSITION_TARGET",
            pointer=f"{base}/States/{name}",
        )
        for name in states
        if name not in seen
    ]


# -- shared pieces -----------------------------------------------------------------------------


def _target(fields: _Fields, key: str, states: dict[str, Any]) -> str:
    """A transition target; one naming no state is a problem reported with the state's others
    (the parse goes on, so every dangling target of a state is listed)."""
    value = fields.get(key)
    if not isinstance(value, str) or value not in states:
        # AWS says 'Next' whatever the field (Next, Default, a rule's or a catcher's Next).
        fields.deferred.append(
            fields.error(key, f"Missing 'Next' target: {value}", code="MISSING_TRANSITION_TARGET")
        )
        return str(value)
    return value


def _check_path(fields: _Fields, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise fields.error(key, "must be a path string")
    variable = PathRef(value).variable
    text = value[1:] if value.startswith("$$") else value
    if variable is not None:
        text = "$" + value[1 + len(variable) :]
    try:
        jsonpath.validate(text)
    except jsonpath.PathSyntaxError as exc:
        raise fields.error(key, str(exc)) from exc
    return value


def _path(fields: _Fields, key: str, *, default: str | None = "$") -> str | None:
    """An InputPath/OutputPath-style field: absent = `default`, JSON null = None."""
    if key not in fields:
        return default
    value = fields.get(key)
    if value is None:
        return None
    return _check_path(fields, key, value)


def _path_ref(fields: _Fields, key: str) -> PathRef:
    return PathRef(_check_path(fields, key, fields.get(key)))


def _dynamic(fields: _Fields, key: str, text: Any) -> Value:
    """The value of a `.$` key (or an ...Path field that also takes intrinsics)."""
    if not isinstance(text, str) or not text.startswith(("$", "States.")):
        raise fields.error(key, "must be a path or intrinsic function")
    if text.startswith("$"):
        return PathRef(_check_path(fields, key, text))
    try:
        call = parse_intrinsic(text)
    except StatesError as exc:
        raise fields.error(key, exc.cause) from exc
    for name in unknown_functions(call):
        raise fields.error(key, f"unknown intrinsic function {name}")
    for path in path_arguments(call):
        _check_path(fields, key, path)
    return Intrinsic(call)


def _composite(value: Any, template: Template) -> Value:
    """An object or array `value` parsed member by member into `template`: the value itself as
    one Literal when no member needs evaluating."""
    parts = [v for _, v in template.fields] if template.fields is not None else template.items
    if all(isinstance(v, Literal) for v in parts or ()):
        return Literal(value)
    return template


def _template(fields: _Fields, key: str, value: Any) -> Value:
    """A JSONPath payload template: `.$` keys are paths or intrinsics, the rest is literal."""
    if isinstance(value, dict):
        members: list[tuple[str, Value]] = []
        for inner_key, inner in value.items():
            field_name = f"{key}.{inner_key}"
            if inner_key.endswith(".$"):
                members.append((inner_key[:-2], _dynamic(fields, field_name, inner)))
            else:
                members.append((inner_key, _template(fields, field_name, inner)))
        return _composite(value, Template(fields=tuple(members)))
    if isinstance(value, list):
        return _composite(value, Template(items=tuple(_template(fields, key, v) for v in value)))
    return Literal(value)


def _template_field(fields: _Fields, key: str) -> Value | None:
    if key not in fields:
        return None
    return _template(fields, key, fields.get(key))


def _jsonata(fields: _Fields, key: str, value: Any) -> Value:
    """A JSONata field value: `{% ... %}` strings are expressions (at any depth of an object or
    array), everything else is literal."""
    source = expression_text(value)
    if source is not None:
        try:
            compiled = compile_expression(source)
        except ExpressionSyntaxError as exc:
            raise fields.error(
                key, f"invalid JSONata expression '{source}': {exc}", "INVALID_JSONATA_EXPRESSION"
            ) from exc
        # The expression has no context item: a bare name is refused, one problem per name.
        names = top_level_references(source)
        if names:
            raise DefinitionError.combine(
                [
                    fields.error(
                        key,
                        f"Reference to '{name}' at the top level is not supported.",
                        "UNSUPPORTED_JSONATA_EXPRESSION",
                    )
                    for name in names
                ]
            )
        return Expression(source, _pointer(fields.name(key)), compiled)
    if isinstance(value, dict):
        members = tuple((k, _jsonata(fields, f"{key}.{k}", v)) for k, v in value.items())
        return _composite(value, Template(fields=members))
    if isinstance(value, list):
        items = tuple(_jsonata(fields, f"{key}[{i}]", inner) for i, inner in enumerate(value))
        return _composite(value, Template(items=items))
    return Literal(value)


def _jsonata_field(fields: _Fields, key: str) -> Value | None:
    if key not in fields:
        return None
    return _jsonata(fields, key, fields.get(key))


def _number_or_expression(
    fields: _Fields, key: str, *, minimum: float = 0, integer: bool = False
) -> Value | None:
    """A JSONata state's number field: a number, or an expression evaluated at run time."""
    if key not in fields:
        return None
    if expression_text(fields.raw[key]) is not None:
        return _jsonata(fields, key, fields.get(key))
    return Literal(fields.number(key, minimum=minimum, integer=integer))


def _count(
    fields: _Fields, key: str, jsonata: bool, *, minimum: float = 0, integer: bool = True
) -> Value | None:
    """`Key`/`KeyPath` (JSONPath) or `Key` as number or expression (JSONata)."""
    if jsonata:
        return _number_or_expression(fields, key, minimum=minimum, integer=integer)
    return _number_or_path(fields, key, minimum=minimum, integer=integer)


def _payload(fields: _Fields, key: str, jsonata: bool) -> Value | None:
    """A payload template: JSONPath (`.$` keys) or JSONata (`{% %}` values)."""
    return _jsonata_field(fields, key) if jsonata else _template_field(fields, key)


def _assign(fields: _Fields, jsonata: bool) -> Value | None:
    """`Assign`: variable names to values (JSONata expressions, or JSONPath `name.$` paths)."""
    if "Assign" not in fields:
        return None
    raw = fields.get("Assign")
    if not isinstance(raw, dict):
        raise fields.error("Assign", "must be an object")
    for key in raw:
        name = key[:-2] if key.endswith(".$") and not jsonata else key
        if not _VARIABLE_NAME.match(name) or name == "states":
            raise fields.error(
                f"Assign.{key}",
                f"'{name}' is not a valid variable name (a letter or _, then letters, digits "
                "or _, at most 80; 'states' is reserved)",
            )
    return _jsonata(fields, "Assign", raw) if jsonata else _template(fields, "Assign", raw)


def _number_or_path(
    fields: _Fields, key: str, *, minimum: float = 0, integer: bool = False
) -> Value | None:
    """`Key` (a number) or `KeyPath` (a reference path), never both."""
    path_key = f"{key}Path"
    if key in fields and path_key in fields:
        raise fields.error(key, f"{key} and {path_key} are exclusive")
    if key in fields:
        return Literal(fields.number(key, minimum=minimum, integer=integer))
    if path_key in fields:
        return _path_ref(fields, path_key)
    return None


def _error_names(sub: _Fields, where: str) -> tuple[str, ...]:
    names = sub.get("ErrorEquals")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise sub.error_at(where, "ErrorEquals must be a non-empty list of strings")
    if "States.ALL" in names and len(names) > 1:
        raise sub.error(
            "ErrorEquals", "States.ALL must appear alone in ErrorEquals (it matches every error)"
        )
    return tuple(names)


def _all_last(fields: _Fields, key: str, entries: list[tuple[str, ...]]) -> None:
    """A retrier or catcher matching States.ALL must be the last one (later ones are dead)."""
    for index, names in enumerate(entries[:-1]):
        if "States.ALL" in names:
            raise fields.error(
                f"{key}[{index}].ErrorEquals",
                f"a {key} entry with States.ALL must be the last one",
            )


def _entries(fields: _Fields, key: str) -> list[tuple[str, _Fields]]:
    raw = fields.get(key, [])
    if not isinstance(raw, list):
        raise fields.error(key, "must be a list")
    out = []
    for index, entry in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(entry, dict):
            raise fields.error(where, "must be an object")
        out.append((where, fields.sub(entry, f"{where}.")))
    return out


def _retry(fields: _Fields) -> tuple[Retrier, ...]:
    out: list[Retrier] = []
    for where, sub in _entries(fields, "Retry"):
        names = _error_names(sub, where)
        interval = sub.number("IntervalSeconds", minimum=1, integer=True)
        attempts = sub.number("MaxAttempts", integer=True)
        backoff = sub.number("BackoffRate", minimum=1.0)
        max_delay = sub.number("MaxDelaySeconds", minimum=1, integer=True)
        jitter = sub.choice("JitterStrategy", ("FULL", "NONE"), "NONE")
        sub.get("Comment")
        sub.refuse_unknown()
        out.append(
            Retrier(
                names,
                1 if interval is None else interval,
                3 if attempts is None else int(attempts),
                2.0 if backoff is None else backoff,
                max_delay,
                jitter,
            )
        )
    _all_last(fields, "Retry", [r.error_equals for r in out])
    return tuple(out)


def _catch(fields: _Fields, states: dict[str, Any], jsonata: bool) -> tuple[Catcher, ...]:
    out: list[Catcher] = []
    for where, sub in _entries(fields, "Catch"):
        names = _error_names(sub, where)
        target = _target(sub, "Next", states)
        result_path: str | None = "$"
        output = None
        if jsonata:
            output = _jsonata_field(sub, "Output")
        else:
            result_path = _path(sub, "ResultPath")
            _reference(sub, "ResultPath", result_path)
        assign = _assign(sub, jsonata)
        sub.get("Comment")
        sub.refuse_unknown()
        out.append(Catcher(names, target, result_path, output, assign))
    _all_last(fields, "Catch", [c.error_equals for c in out])
    return tuple(out)


def _reference(fields: _Fields, key: str, path: str | None) -> None:
    if path is not None and not jsonpath.is_definite(path):
        raise fields.error(key, "must be a reference path")


# -- states ------------------------------------------------------------------------------------


def _state(
    name: str, raw: dict[str, Any], states: dict[str, Any], inherited: str, base: str
) -> State:
    fields = _Fields(raw, name, base=base)
    try:
        return _state_fields(fields, name, states, inherited)
    except DefinitionError as exc:
        # A problem that stops the parse still comes with the targets found dangling before.
        if fields.deferred and not any(p in exc.problems for p in fields.deferred):
            raise DefinitionError.combine([*fields.deferred, exc]) from exc
        raise


def _state_fields(fields: _Fields, name: str, states: dict[str, Any], inherited: str) -> State:
    kind = fields.get("Type")
    if kind not in STATE_TYPES:
        raise fields.error("Type", f"unknown state type {kind!r}")
    language = fields.choice("QueryLanguage", (JSONPATH, JSONATA), inherited)
    if inherited == JSONATA and language == JSONPATH:
        raise fields.error(
            "QueryLanguage", "a state can't use JSONPath when the state machine uses JSONata"
        )
    comment = fields.string("Comment")
    next_state: str | None = None
    if kind not in ("Succeed", "Fail", "Choice"):
        has_next, has_end = "Next" in fields, fields.get("End") is True
        if "End" in fields and fields.raw["End"] is not True:
            raise fields.error("End", "must be true when present")
        if has_next == has_end:
            raise fields.error("Next", "exactly one of Next or End: true")
        if has_next:
            next_state = _target(fields, "Next", states)
    io = _io(fields, kind, language == JSONATA)
    state = _BUILDERS[kind](fields, name, language, next_state, io, comment, states)
    fields.refuse_unknown(done=True)
    if state.jsonata:
        _check_states_references(fields, state)
    return state


# `$states` members every JSONata field may read; `result` and `errorOutput` exist only in the
# Output/Assign of a Task, Parallel or Map (result) and of a catcher (errorOutput), and `$$`
# is JSONPath's (https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html).
_ANYWHERE = frozenset({"$states.input", "$states.context"})


def _expressions(value: Any) -> Iterator[Expression]:
    """Every JSONata expression in a state's typed fields (nested machines excluded)."""
    if isinstance(value, Expression):
        yield value
    elif isinstance(value, Template):
        for _, member in value.fields or ():
            yield from _expressions(member)
        for item in value.items or ():
            yield from _expressions(item)
    elif isinstance(value, tuple):
        for item in value:
            yield from _expressions(item)
    elif is_dataclass(value) and not isinstance(value, Machine | type):
        for declared in dataclass_fields(value):
            yield from _expressions(getattr(value, declared.name))


def _check_states_references(fields: _Fields, state: State) -> None:
    extra: dict[int, str] = {}
    if isinstance(state, TaskState | ParallelState | MapState):
        for expression in _expressions((state.io.output, state.io.assign)):
            extra[id(expression)] = "$states.result"
    for catcher in catchers(state):
        for expression in _expressions((catcher.output, catcher.assign)):
            extra[id(expression)] = "$states.errorOutput"
    for expression in _expressions(state):
        allowed = _ANYWHERE | {extra.get(id(expression), "")}
        for reference in sorted(states_references(expression.source) - allowed):
            raise fields.error_at(
                expression.location.replace("/", "."),
                f"the JSONata expression '{expression.source}' reads {reference}, which is not "
                f"available in the field '{expression.location}'",
            )


def _io(fields: _Fields, kind: str, jsonata: bool) -> Io:
    """Input/output fields of the state's language; the other language's are left unread,
    so the unknown-field check refuses them (`Parameters` in a JSONata state, ...)."""
    if kind == "Fail":
        return Io()
    # Succeed and Fail end the run: nothing comes after them to read a variable.
    assign = None if kind == "Succeed" else _assign(fields, jsonata)
    if jsonata:
        arguments = _jsonata_field(fields, "Arguments") if kind in ("Task", "Parallel") else None
        return Io(arguments=arguments, output=_jsonata_field(fields, "Output"), assign=assign)
    input_path = _path(fields, "InputPath")
    output_path = _path(fields, "OutputPath")
    if kind in ("Choice", "Wait", "Succeed"):
        return Io(input_path=input_path, output_path=output_path, assign=assign)
    result_path = _path(fields, "ResultPath")
    _reference(fields, "ResultPath", result_path)
    parameters = None if kind == "Map" else _template_field(fields, "Parameters")
    selector = None if kind == "Pass" else _template_field(fields, "ResultSelector")
    return Io(input_path, parameters, selector, result_path, output_path, assign=assign)


def _pass(
    fields: _Fields,
    name: str,
    language: str,
    next_state: str | None,
    io: Io,
    comment: str | None,
    states: dict[str, Any],
) -> State:
    if language == JSONATA:
        return PassState(name, language, next_state, io, comment)
    return PassState(
        name,
        language,
        next_state,
        io,
        comment,
        result=fields.get("Result"),
        has_result="Result" in fields,
    )


def _task(
    fields: _Fields,
    name: str,
    language: str,
    next_state: str | None,
    io: Io,
    comment: str | None,
    states: dict[str, Any],
) -> State:
    resource = fields.get("Resource")
    if not isinstance(resource, str) or not resource:
        raise fields.error("Resource", "a Task needs a Resource ARN")
    jsonata = language == JSONATA
    timeout = _count(fields, "TimeoutSeconds", jsonata, minimum=1)
    heartbeat = _count(fields, "HeartbeatSeconds", jsonata, minimum=1)
    if (
        isinstance(timeout, Literal)
        and isinstance(heartbeat, Literal)
        and heartbeat.value >= timeout.value
    ):
        raise fields.error(
            "HeartbeatSeconds", "HeartbeatSeconds must be smaller than TimeoutSeconds"
        )
    credentials = _payload(fields, "Credentials", jsonata)
    retry, catch = _retry(fields), _catch(fields, states, jsonata)
    # The integrations' registry decides what runs here; anything else is refused now, never
    # discovered mid-run.
    unsupported = REGISTRY.unsupported(resource)
    if unsupported is not None:
        raise fields.error("Resource", unsupported)
    return TaskState(
        name,
        language,
        next_state,
        io,
        comment,
        resource=resource,
        timeout_seconds=timeout,
        heartbeat_seconds=heartbeat,
        retry=retry,
        catch=catch,
        credentials=credentials,
    )


def _choice(
    fields: _Fields,
    name: str,
    language: str,
    next_state: str | None,
    io: Io,
    comment: str | None,
    states: dict[str, Any],
) -> State:
    raw = fields.get("Choices")
    if not isinstance(raw, list) or not raw:
        raise fields.error("Choices", "must be a non-empty list")
    choices: list[Choice] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise fields.error(f"Choices[{index}]", "a choice rule must be an object")
        sub = fields.sub(entry, f"Choices[{index}].")
        target = _target(sub, "Next", states)
        assign = _assign(sub, language == JSONATA)
        if language == JSONATA:
            if "Condition" not in sub:
                raise sub.error("Condition", "a JSONata choice rule needs a Condition")
            rule: ChoiceRule = Condition(_condition(sub))
            output = _jsonata_field(sub, "Output")
            sub.get("Comment")
            sub.refuse_unknown()
            choices.append(Choice(rule, target, output, assign))
            continue
        sub.prefix = f"Choices[{index}]"
        choices.append(Choice(_rule(sub), target, None, assign))
    default = _target(fields, "Default", states) if "Default" in fields else None
    return ChoiceState(name, language, None, io, comment, choices=tuple(choices), default=default)


def _condition(fields: _Fields) -> Value:
    value = fields.raw["Condition"]
    if isinstance(value, bool):
        fields.get("Condition")
        return Literal(value)
    if expression_text(value) is None:
        raise fields.error("Condition", "must be a JSONata expression {% ... %} or a boolean")
    return _jsonata(fields, "Condition", fields.get("Condition"))


def _rule(fields: _Fields) -> ChoiceRule:
    """One choice rule; `fields.prefix` is the rule's field name without a trailing dot."""
    where = fields.prefix
    for key, kind in (("And", AllOf), ("Or", AnyOf)):
        if key in fields:
            inner = fields.get(key)
            if not isinstance(inner, list) or not inner:
                raise fields.error_at(f"{where}.{key}", "must be a non-empty list")
            rules = tuple(
                _nested_rule(fields, f"{where}.{key}[{i}]", r) for i, r in enumerate(inner)
            )
            _rule_done(fields, where)
            return kind(rules)
    if "Not" in fields:
        rule = NotRule(_nested_rule(fields, f"{where}.Not", fields.get("Not")))
        _rule_done(fields, where)
        return rule
    operators = [key for key in fields.raw if key in _COMPARISONS]
    if len(operators) != 1:
        raise fields.error_at(where, "needs exactly one comparison operator")
    operator = operators[0]
    fields.prefix = f"{where}."
    variable = _path_ref(fields, "Variable")
    operand: Any = fields.get(operator)
    if operator.endswith("Path"):
        operand = _path_ref(fields, operator)
    else:
        _check_operand(fields, operator, operand)
    fields.prefix = where
    _rule_done(fields, where)
    return Comparison(variable, operator, operand)


def _check_operand(fields: _Fields, operator: str, operand: Any) -> None:
    if operator.startswith(("String", "Timestamp")):
        ok = isinstance(operand, str)
    elif operator.startswith("Numeric"):
        ok = isinstance(operand, int | float) and not isinstance(operand, bool)
    else:
        ok = isinstance(operand, bool)
    if not ok:
        raise fields.error(operator, "has the wrong type of operand")


def _nested_rule(parent: _Fields, where: str, raw: Any) -> ChoiceRule:
    if not isinstance(raw, dict):
        raise parent.error_at(where, "a choice rule must be an object")
    return _rule(parent.sub(raw, where))


def _rule_done(fields: _Fields, where: str) -> None:
    fields.prefix = f"{where}."
    fields.get("Next")  # checked by the caller on top-level rules only
    fields.get("Comment")
    fields.refuse_unknown()


def _wait(
    fields: _Fields,
    name: str,
    language: str,
    next_state: str | None,
    io: Io,
    comment: str | None,
    states: dict[str, Any],
) -> State:
    jsonata = language == JSONATA
    keys = (
        ("Seconds", "Timestamp")
        if jsonata
        else ("Seconds", "Timestamp", "SecondsPath", "TimestampPath")
    )
    given = [k for k in keys if k in fields]
    if len(given) != 1:
        raise fields.error("Seconds", f"exactly one of {', '.join(keys)}")
    seconds: Value | None = None
    timestamp: Value | None = None
    if jsonata:
        if given[0] == "Seconds":
            seconds = _number_or_expression(fields, "Seconds", integer=True)
        elif expression_text(fields.raw["Timestamp"]) is not None:
            timestamp = _jsonata_field(fields, "Timestamp")
        else:
            timestamp = Literal(fields.string("Timestamp", required=True))
    elif given[0] in ("Seconds", "SecondsPath"):
        seconds = _number_or_path(fields, "Seconds", integer=True)
    elif given[0] == "Timestamp":
        timestamp = Literal(fields.string("Timestamp", required=True))
    else:
        timestamp = _path_ref(fields, "TimestampPath")
    return WaitState(name, language, next_state, io, comment, seconds=seconds, timestamp=timestamp)


def _succeed(
    fields: _Fields,
    name: str,
    language: str,
    next_state: str | None,
    io: Io,
    comment: str | None,
    states: dict[str, Any],
) -> State:
    return SucceedState(name, language, None, io, comment)


def _fail(
    fields: _Fields,
    name: str,
    language: str,
    next_state: str | None,
    io: Io,
    comment: str | None,
    states: dict[str, Any],
) -> State:
    values: list[Value | None] = []
    for key in ("Error", "Cause"):
        if language == JSONATA:
            if key in fields and expression_text(fields.raw[key]) is not None:
                values.append(_jsonata_field(fields, key))
            else:
                values.append(Literal(fields.string(key)) if key in fields else None)
            continue
        if key in fields and f"{key}Path" in fields:
            raise fields.error(key, f"{key} and {key}Path are exclusive")
        if key in fields:
            values.append(Literal(fields.string(key)))
        elif f"{key}Path" in fields:
            values.append(_dynamic(fields, f"{key}Path", fields.get(f"{key}Path")))
        else:
            values.append(None)
    return FailState(name, language, None, io, comment, error=values[0], cause=values[1])


def _parallel(
    fields: _Fields,
    name: str,
    language: str,
    next_state: str | None,
    io: Io,
    comment: str | None,
    states: dict[str, Any],
) -> State:
    raw = fields.get("Branches")
    if not isinstance(raw, list) or not raw:
        raise fields.error("Branches", "must be a non-empty list")
    branches = []
    for index, branch in enumerate(raw):
        if not isinstance(branch, dict):
            raise fields.error(f"Branches[{index}]", "must be an object")
        branches.append(
            _machine(branch, name, language, top=False, base=f"{fields.base}/Branches/{index}")
        )
    return ParallelState(
        name,
        language,
        next_state,
        io,
        comment,
        branches=tuple(branches),
        retry=_retry(fields),
        catch=_catch(fields, states, language == JSONATA),
    )


def _map(
    fields: _Fields,
    name: str,
    language: str,
    next_state: str | None,
    io: Io,
    comment: str | None,
    states: dict[str, Any],
) -> State:
    key = "ItemProcessor" if "ItemProcessor" in fields else "Iterator"
    raw = fields.get(key)
    if not isinstance(raw, dict):
        raise fields.error("ItemProcessor", "a Map needs ItemProcessor (or Iterator)")
    processor = _machine(raw, name, language, top=False, base=f"{fields.base}/{key}")
    raw_config = raw.get("ProcessorConfig", {})
    if not isinstance(raw_config, dict):
        raise fields.error(f"{key}.ProcessorConfig", "must be an object")
    config = fields.sub(raw_config, f"{key}.ProcessorConfig.")
    mode = config.get("Mode", "INLINE")
    if mode not in ("INLINE", "DISTRIBUTED"):
        raise config.error("Mode", "must be INLINE or DISTRIBUTED")
    execution_type = config.get("ExecutionType", "STANDARD")
    if execution_type not in ("STANDARD", "EXPRESS"):
        raise config.error("ExecutionType", "must be STANDARD or EXPRESS")
    config.refuse_unknown()
    jsonata = language == JSONATA
    items: Value | None = None
    items_path = "$"
    if jsonata:
        item_selector = _jsonata_field(fields, "ItemSelector")
        items = _jsonata_field(fields, "Items")
        if isinstance(items, Literal) and not isinstance(items.value, list | dict):
            raise fields.error("Items", "must be an array, an object or a JSONata expression")
    else:
        if "ItemSelector" in fields and "Parameters" in fields:
            raise fields.error("Parameters", "ItemSelector and Parameters are exclusive")
        selector_key = "ItemSelector" if "ItemSelector" in fields else "Parameters"
        item_selector = _template_field(fields, selector_key)
        items_path = _path(fields, "ItemsPath") or "$"
    max_concurrency = _count(fields, "MaxConcurrency", jsonata)
    percentage = _count(fields, "ToleratedFailurePercentage", jsonata, integer=False)
    if isinstance(percentage, Literal) and percentage.value > 100:
        raise fields.error("ToleratedFailurePercentage", "must be <= 100")
    count = _count(fields, "ToleratedFailureCount", jsonata)
    distributed_only = (
        "ItemReader",
        "ItemBatcher",
        "ResultWriter",
        "ToleratedFailureCount",
        "ToleratedFailurePercentage",
        "ToleratedFailureCountPath",
        "ToleratedFailurePercentagePath",
        "Label",
    )
    if mode == "INLINE":
        for field_name in distributed_only:
            if field_name in fields:
                raise fields.error(field_name, "needs Mode DISTRIBUTED")
    label = fields.string("Label")
    return MapState(
        name,
        language,
        next_state,
        io,
        comment,
        processor=processor,
        mode=mode,
        execution_type=execution_type,
        label=label,
        items_path=items_path,
        items=items,
        item_selector=item_selector,
        max_concurrency=max_concurrency,
        reader=_reader(fields, jsonata),
        batcher=_batcher(fields, jsonata),
        writer=_writer(fields, jsonata),
        tolerated_failure_percentage=percentage,
        tolerated_failure_count=count,
        retry=_retry(fields),
        catch=_catch(fields, states, jsonata),
    )


def _reader(fields: _Fields, jsonata: bool) -> ItemReader | None:
    block = fields.block("ItemReader")
    if block is None:
        return None
    resource = block.get("Resource")
    if resource not in _READERS:
        raise block.error("Resource", f"unsupported reader {resource!r}")
    parameters = _payload(block, "Arguments" if jsonata else "Parameters", jsonata)
    config = block.block("ReaderConfig") or block.sub({}, "ItemReader.ReaderConfig.")
    input_type = config.get("InputType")
    if resource.endswith("getObject") and input_type not in _INPUT_TYPES:
        raise config.error("InputType", "must be JSON, JSONL, CSV, PARQUET or MANIFEST")
    manifest_type = config.get("ManifestType")
    if manifest_type is not None:
        allowed = _MANIFEST_INPUTS.get(manifest_type)
        if allowed is None or not resource.endswith("getObject"):
            raise config.error("ManifestType", "must be ATHENA_DATA or S3_INVENTORY (s3:getObject)")
        if input_type not in allowed:
            raise config.error(
                "InputType", f"must be one of {sorted(allowed)} with {manifest_type}"
            )
    location = config.choice("CSVHeaderLocation", ("FIRST_ROW", "GIVEN"), "FIRST_ROW")
    headers = config.get("CSVHeaders")
    if location == "GIVEN" and (
        not isinstance(headers, list) or not headers or not all(isinstance(h, str) for h in headers)
    ):
        raise config.error("CSVHeaders", "must be a non-empty list of strings")
    delimiter = config.choice(
        "CSVDelimiter", ("COMMA", "PIPE", "SEMICOLON", "SPACE", "TAB"), "COMMA"
    )
    max_items = _count(config, "MaxItems", jsonata)
    config.refuse_unknown()
    block.refuse_unknown()
    return ItemReader(
        resource,
        parameters,
        ReaderConfig(
            input_type,
            location,
            tuple(headers) if location == "GIVEN" else None,
            delimiter,
            max_items,
            manifest_type,
        ),
    )


def _batcher(fields: _Fields, jsonata: bool) -> ItemBatcher | None:
    block = fields.block("ItemBatcher")
    if block is None:
        return None
    batcher = ItemBatcher(
        _count(block, "MaxItemsPerBatch", jsonata),
        _count(block, "MaxInputBytesPerBatch", jsonata),
        _payload(block, "BatchInput", jsonata),
    )
    block.refuse_unknown()
    return batcher


def _writer(fields: _Fields, jsonata: bool) -> ResultWriter | None:
    block = fields.block("ResultWriter")
    if block is None:
        return None
    # AWS's combinations: WriterConfig alone (shape the output, export nothing), Resource with
    # Parameters (export to S3), or all three.
    # https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html
    key = "Arguments" if jsonata else "Parameters"
    exports = "Resource" in block or key in block
    if not exports and "WriterConfig" not in block:
        raise fields.error("ResultWriter", f"needs WriterConfig, or Resource and {key}")
    resource: str | None = None
    parameters: Value | None = None
    if exports:
        resource = block.get("Resource")
        if resource != _WRITER:
            raise block.error("Resource", f"must be {_WRITER}")
        raw = block.get(key, {})
        if not isinstance(raw, dict) or ("Bucket" not in raw and "Bucket.$" not in raw):
            raise block.error(key, "needs Bucket")
        parameters = _jsonata(block, key, raw) if jsonata else _template(block, key, raw)
    config = block.block("WriterConfig") or block.sub({}, "ResultWriter.WriterConfig.")
    output_type = config.choice("OutputType", ("JSON", "JSONL"), "JSON")
    transformation = config.choice("Transformation", ("NONE", "COMPACT", "FLATTEN"), "NONE")
    config.refuse_unknown()
    block.refuse_unknown()
    return ResultWriter(resource, parameters, output_type, transformation)


_BUILDERS = {
    "Pass": _pass,
    "Task": _task,
    "Choice": _choice,
    "Wait": _wait,
    "Succeed": _succeed,
    "Fail": _fail,
    "Parallel": _parallel,
    "Map": _map,
}
