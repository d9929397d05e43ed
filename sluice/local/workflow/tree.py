"""The typed tree of an ASL definition: a machine, its states and their fields.

`definition.parse` builds it once (validation is that parse); the interpreter and the
Distributed Map walk it and never read the definition's dicts. Field values that are evaluated
at run time are `values.Value` nodes; everything else is plain typed data.

```
Machine(start_at, states, timeout_seconds, query_language)
└── State: Pass | Task | Choice | Wait | Succeed | Fail | Parallel | Map
    ├── Io              InputPath/Parameters/ResultSelector/ResultPath/OutputPath (JSONPath),
    │                   Arguments/Output (JSONata), Assign (both)
    ├── Retrier, Catcher
    ├── ChoiceRule: Comparison | AllOf (And) | AnyOf (Or) | NotRule (Not) | Condition (JSONata)
    └── Map: ItemReader(ReaderConfig), ItemBatcher, ResultWriter, ProcessorConfig
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sluice.local.workflow.values import PathRef, Value

JSONPATH = "JSONPath"
JSONATA = "JSONata"


@dataclass(frozen=True)
class Io:
    """Input and output processing of a state.

    JSONPath: `input_path`/`output_path` are a path, `None` for JSON null (an empty object), and
    default to `$`; `result_path` `None` discards the result. JSONata: `arguments` and `output`.
    """

    input_path: str | None = "$"
    parameters: Value | None = None
    result_selector: Value | None = None
    result_path: str | None = "$"
    output_path: str | None = "$"
    arguments: Value | None = None
    output: Value | None = None
    assign: Value | None = None


@dataclass(frozen=True)
class Retrier:
    error_equals: tuple[str, ...]
    interval_seconds: float = 1
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_seconds: float | None = None
    jitter: str = "NONE"


@dataclass(frozen=True)
class Catcher:
    error_equals: tuple[str, ...]
    next: str
    result_path: str | None = "$"
    output: Value | None = None
    assign: Value | None = None


@dataclass(frozen=True)
class State:
    """Fields every state has. `next` is None for a terminal state (End, Succeed, Fail)."""

    name: str
    query_language: str
    next: str | None
    io: Io
    comment: str | None = None

    @property
    def type(self) -> str:
        """The ASL `Type` of this state."""
        return type(self).__name__.removesuffix("State")

    @property
    def jsonata(self) -> bool:
        """True when this state's fields are JSONata."""
        return self.query_language == JSONATA


@dataclass(frozen=True)
class PassState(State):
    result: Any = None
    has_result: bool = False


@dataclass(frozen=True)
class TaskState(State):
    resource: str = ""
    timeout_seconds: Value | None = None
    heartbeat_seconds: Value | None = None
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()
    credentials: Value | None = None


# -- Choice ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """`Variable` + one operator. `operand` is the literal, or a `PathRef` for `...Path` forms."""

    variable: PathRef
    operator: str
    operand: Any


@dataclass(frozen=True)
class AllOf:
    rules: tuple[ChoiceRule, ...]


@dataclass(frozen=True)
class AnyOf:
    rules: tuple[ChoiceRule, ...]


@dataclass(frozen=True)
class NotRule:
    rule: ChoiceRule


@dataclass(frozen=True)
class Condition:
    """A JSONata `Condition` (must evaluate to a boolean)."""

    expression: Value


ChoiceRule = Comparison | AllOf | AnyOf | NotRule | Condition


@dataclass(frozen=True)
class Choice:
    """One entry of `Choices`: a rule and where it leads."""

    rule: ChoiceRule
    next: str
    output: Value | None = None
    assign: Value | None = None


@dataclass(frozen=True)
class ChoiceState(State):
    choices: tuple[Choice, ...] = ()
    default: str | None = None


@dataclass(frozen=True)
class WaitState(State):
    """Exactly one of `seconds` (number or path) or `timestamp` (text or path) is set."""

    seconds: Value | None = None
    timestamp: Value | None = None


@dataclass(frozen=True)
class SucceedState(State):
    pass


@dataclass(frozen=True)
class FailState(State):
    """`error`/`cause`: Literal text, a PathRef/Intrinsic (ErrorPath/CausePath) or JSONata."""

    error: Value | None = None
    cause: Value | None = None


@dataclass(frozen=True)
class ParallelState(State):
    branches: tuple[Machine, ...] = ()
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()


# -- Map ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderConfig:
    input_type: str | None = None
    csv_header_location: str = "FIRST_ROW"
    csv_headers: tuple[str, ...] | None = None
    csv_delimiter: str = "COMMA"
    max_items: Value | None = None
    manifest_type: str | None = None


@dataclass(frozen=True)
class ItemReader:
    resource: str
    parameters: Value | None = None
    config: ReaderConfig = field(default_factory=ReaderConfig)

    @property
    def action(self) -> str:
        """`listObjectsV2` or `getObject`."""
        return self.resource.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class ItemBatcher:
    max_items_per_batch: Value | None = None
    max_input_bytes_per_batch: Value | None = None
    batch_input: Value | None = None


@dataclass(frozen=True)
class ResultWriter:
    """`resource`/`parameters` may be absent: a WriterConfig alone shapes the Map's output."""

    resource: str | None = None
    parameters: Value | None = None
    output_type: str = "JSON"
    transformation: str = "NONE"


@dataclass(frozen=True)
class MapState(State):
    processor: Machine | None = None
    mode: str = "INLINE"
    execution_type: str = "STANDARD"
    label: str | None = None
    items_path: str = "$"
    items: Value | None = None
    item_selector: Value | None = None
    max_concurrency: Value | None = None
    reader: ItemReader | None = None
    batcher: ItemBatcher | None = None
    writer: ResultWriter | None = None
    tolerated_failure_percentage: Value | None = None
    tolerated_failure_count: Value | None = None
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()

    @property
    def distributed(self) -> bool:
        """True for `ProcessorConfig.Mode: DISTRIBUTED`."""
        return self.mode == "DISTRIBUTED"


@dataclass(frozen=True)
class Machine:
    """A state machine, a Parallel branch or a Map's ItemProcessor."""

    start_at: str
    states: dict[str, State]
    query_language: str = JSONPATH
    timeout_seconds: int | None = None
    comment: str | None = None


def retriers(state: State) -> tuple[Retrier, ...]:
    """Retry of a Task, Parallel or Map state; () for the others."""
    return getattr(state, "retry", ())


def catchers(state: State) -> tuple[Catcher, ...]:
    """Catch of a Task, Parallel or Map state; () for the others."""
    return getattr(state, "catch", ())
