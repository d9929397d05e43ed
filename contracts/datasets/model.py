"""The data-contract model: what a dataset's files must look like and what happens to them.

A contract is the source of truth for one dataset and one major version. It is read from YAML
(`contracts/datasets/<name>/v<N>.yaml`) and validated here, so a bad contract fails at load time
with every problem listed, never half-way through a file.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class _Strict(BaseModel):
    # Contracts are authored by people: reject unknown keys so a typo is an error, not a no-op.
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnType(StrEnum):
    STRING = "string"
    INT64 = "int64"
    FLOAT64 = "float64"
    BOOL = "bool"
    DATE = "date"  # ISO 8601 calendar date, YYYY-MM-DD
    TIMESTAMP = "timestamp"  # ISO 8601 date-time; stored as timestamp[us, UTC]


class Constraints(_Strict):
    """Value constraints checked per row; a breach quarantines the row with a reason code."""

    min: float | None = None
    max: float | None = None
    enum: list[str] | None = None
    regex: str | None = None
    max_length: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Constraints:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ColumnSpec(_Strict):
    """One column of the dataset as it arrives (before transform)."""

    name: str = Field(pattern=NAME_PATTERN)
    type: ColumnType
    nullable: bool = True
    constraints: Constraints = Constraints()
    # Null markers for this column; None means the dataset's `format.null_values`.
    null_values: list[str] | None = None
    # JSONL only: the key in the source object, when it differs from `name`.
    source: str | None = None

    @model_validator(mode="after")
    def _regex_is_re2(self) -> ColumnSpec:
        if self.constraints.regex is not None:
            problem = re2_problem(self.constraints.regex)
            if problem is not None:
                raise ValueError(
                    f"column {self.name!r}: regex {self.constraints.regex!r} is not accepted: "
                    f"{problem}"
                )
        return self


def re2_problem(pattern: str) -> str | None:
    """Why RE2 cannot compile a contract regex, or None when it can.

    Contract regexes are evaluated by pyarrow's `match_substring_regex`, i.e. by RE2, which runs
    in time linear in the field length. RE2 has no backtracking constructs (lookaround,
    backreferences, possessive or atomic groups), so a pattern that needs them is refused here,
    at contract load, by the same engine that evaluates it: nothing falls back to a backtracking
    matcher at run time (`^(?=(a+)+$)b` took about a second on a 24-character field under
    Python's `re`).

    Args:
        pattern: the regex as written in the contract.

    Returns:
        RE2's reason (e.g. `invalid perl operator: (?=`), or None when the pattern compiles.
    """
    # pyarrow is a runtime dependency of every stage; imported here only when a contract has a
    # regex, so that loading contracts stays cheap elsewhere. An empty array compiles nothing:
    # one value (a null will do) makes the kernel build its matcher. `pa.nulls`, not `pa.array`
    # of a Python list: converting Python values makes pyarrow import pandas where it is
    # installed, a fifth of a CPU second in the first invocation of a function that loads a
    # contract (the deployed layer has no pandas).
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.match_substring_regex(pa.nulls(1, pa.string()), pattern)
    except pa.ArrowInvalid as error:
        reason = str(error).removeprefix("Invalid regular expression: ")
        return (
            f"RE2 (the linear-time engine that evaluates contract regexes) cannot compile it: "
            f"{reason}; lookaround, backreferences and other backtracking constructs are not "
            "supported"
        )
    return None


class FormatSpec(_Strict):
    """How the raw bytes are laid out."""

    kind: Literal["csv", "jsonl"]
    header: bool = True  # CSV: first record names the columns (must match `columns` by name)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote_char: str = Field(default='"', min_length=1, max_length=1)
    encoding: Literal["utf-8"] = "utf-8"
    # "auto": gzip when the key ends in .gz or the bytes start with the gzip magic number.
    compression: Literal["none", "gzip", "auto"] = "auto"
    # Values read as null (exact match, after nothing is stripped). Empty string by default only:
    # readers' built-in lists turn legitimate values such as "NA" or "null" into nulls.
    null_values: list[str] = [""]


class PartitionSpec(_Strict):
    """A Hive partition column of the output, derived from a column of the data."""

    name: str = Field(pattern=NAME_PATTERN)
    column: str
    transform: Literal["identity", "day", "month", "year"] = "identity"


class DerivedColumn(_Strict):
    """A column computed in the transform stage, from a small safe vocabulary of operations.

    ops: multiply, add, subtract, divide (numeric args, columns or literals), upper, lower, trim,
    concat (strings, `separator`), date_of (timestamp -> date), round (`digits`), coalesce.
    Arguments are column names; a literal is written as {"literal": value}.
    """

    name: str = Field(pattern=NAME_PATTERN)
    op: Literal[
        "multiply",
        "add",
        "subtract",
        "divide",
        "upper",
        "lower",
        "trim",
        "concat",
        "date_of",
        "round",
        "coalesce",
    ]
    args: list[str | dict[str, str | int | float | bool]] = Field(min_length=1)
    separator: str = ""
    digits: int = 2
    type: ColumnType | None = None  # cast the result; None keeps the natural type


class LookupJoin(_Strict):
    """A left join with a small lookup table shipped with the contract (`lookups/<table>.csv`)."""

    table: str = Field(pattern=NAME_PATTERN)
    column: str  # column of the data (YAML 1.1 reads a bare `on` key as true, hence not `on`)
    key: str  # column of the lookup table
    columns: list[str] = Field(min_length=1)  # lookup columns to add
    prefix: str = ""  # prepended to each added column's name


class TransformSpec(_Strict):
    casts: dict[str, ColumnType] = {}
    derived: list[DerivedColumn] = []
    lookups: list[LookupJoin] = []
    dedupe: bool = True  # on the primary key; later copies are quarantined (duplicate_primary_key)
    drop: list[str] = []  # columns not written to the output


class QuarantinePolicy(_Strict):
    """What happens to bad rows.

    - quarantine: bad rows go to the error bucket with a reason; the good rows go on.
    - skip: bad rows are counted (and their reasons summarised in the ledger) but their raw
      records are not kept.
    - fail: any bad row rejects the whole file.
    Above `max_bad_ratio` the whole file is rejected atomically: nothing of it reaches the output.
    The ratio counts every quarantined row of the file, validate's (invalid rows) and
    transform's (`cast_failed`, `duplicate_primary_key`) together; under `fail` a bad row found
    by either stage rejects the file.
    """

    policy: Literal["quarantine", "skip", "fail"] = "quarantine"
    max_bad_ratio: float = Field(default=0.1, ge=0.0, le=1.0)


class ReferenceProblems(ValueError):
    """Names in a contract that do not resolve; `problems` holds (YAML path, message, hint)."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str, str]]) -> None:
        super().__init__("; ".join(message for _, message, _ in problems))
        self.problems = problems


_DECLARE = "declare it in `columns`, or derive it (or bring it in with a lookup) before this"


def reference_problems(
    contract: DatasetContract,
) -> list[tuple[tuple[str | int, ...], str, str]]:
    """The names of `contract` that refer to no column at the point they are used: primary key,
    derived arguments, lookup join columns, casts and partition columns. One (YAML path,
    message, hint) per problem, in file order."""
    names = [c.name for c in contract.columns]
    problems: list[tuple[tuple[str | int, ...], str, str]] = []
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            problems.append(
                (("columns", index, "name"), f"duplicate column name {name!r}", "rename one")
            )
        seen.add(name)
    known = set(names)
    for index, key in enumerate(contract.primary_key):
        if key not in known:
            problems.append(
                (
                    ("primary_key", index),
                    f"primary_key column {key!r} is not a column",
                    "the primary key is made of columns declared in `columns`",
                )
            )
    spec = contract.transform
    for index, derived in enumerate(spec.derived):
        for position, arg in enumerate(derived.args):
            if isinstance(arg, str) and arg not in known:
                problems.append(
                    (
                        ("transform", "derived", index, "args", position),
                        f"derived {derived.name!r} uses unknown column {arg!r}",
                        f"{_DECLARE}; a literal is written as {{literal: value}}",
                    )
                )
        known.add(derived.name)
    for index, lookup in enumerate(spec.lookups):
        if lookup.column not in known:
            problems.append(
                (
                    ("transform", "lookups", index, "column"),
                    f"lookup {lookup.table!r} joins on unknown column {lookup.column!r}",
                    _DECLARE,
                )
            )
        known.update(f"{lookup.prefix}{c}" for c in lookup.columns)
    for cast in spec.casts:
        if cast not in known:
            problems.append(
                (("transform", "casts", cast), f"cast of unknown column {cast!r}", _DECLARE)
            )
    for index, part in enumerate(contract.partition_by):
        if part.column not in known:
            problems.append(
                (
                    ("partition_by", index, "column"),
                    f"partition {part.name!r} uses unknown column {part.column!r}",
                    "a partition is made from a column of the output",
                )
            )
    return problems


class DatasetContract(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    description: str = ""
    owner: str = ""
    format: FormatSpec
    columns: list[ColumnSpec] = Field(min_length=1)
    primary_key: list[str] = []
    partition_by: list[PartitionSpec] = []
    transform: TransformSpec = TransformSpec()
    quarantine: QuarantinePolicy = QuarantinePolicy()

    @model_validator(mode="after")
    def _references_resolve(self) -> DatasetContract:
        problems = reference_problems(self)
        if problems:
            raise ReferenceProblems(problems)
        return self

    @property
    def ref(self) -> str:
        return f"{self.name}/v{self.version}"

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)
