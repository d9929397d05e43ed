"""Compatibility of a data contract within its version: what may change in `v<N>.yaml` and what
needs a new `v<N+1>.yaml`.

A version is a promise to two sides: producers keep sending files in its layout, and consumers of
the output (Parquet, the catalog table) keep reading its columns. Within a version only changes
that neither side can trip over are allowed (`ADDITIVE`); anything else is `BREAKING` and goes into
a new version file, next to the old one (files name the version they were ingested with, so both
load until the old one is retired).

`check_against(root, ref)` compares each contract file with the same file at a git ref (default
HEAD), reusing the event contracts' git plumbing (`contracts.tools`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from contracts.datasets.lint import (
    ContractProblem,
    Location,
    contract_files,
    display_path,
    yaml_path,
)
from contracts.datasets.model import ColumnSpec, DatasetContract

if TYPE_CHECKING:
    from pathlib import Path

# The rules, as documented in contracts/README.md ("Changing a data contract"); each has a test
# named after it in tests/unit/contracts/test_dataset_compat.py.
ADDITIVE = (
    "a new nullable column (JSONL: a missing key reads as null)",
    "a column made nullable",
    "a relaxed constraint: min lowered or removed, max raised or removed, enum values added or "
    "the enum removed, max_length raised or removed, the regex removed",
    "a new derived or lookup column in the output",
    "description, owner and the quarantine policy",
)
BREAKING = (
    "a removed or renamed column (of the input or of the output)",
    "a new column in a CSV contract (a CSV record holds exactly the contract's columns, in order)",
    "a new column that is not nullable",
    "a type change (a column, a cast, a derived column's type)",
    "a tighter constraint: made non-nullable, min raised or added, max lowered or added, enum "
    "values removed or an enum added, max_length lowered or added, a regex added or changed",
    "a changed primary key or dedupe",
    "a changed partitioning",
    "a derived or lookup column computed differently, or a column dropped from the output",
    "a changed format (kind, header, delimiter, quote, encoding, null markers; compression may "
    "only become auto), a column's null markers or JSONL source key, the CSV column order",
)


@dataclass(frozen=True)
class Breaking:
    """One breaking change: where (YAML path of the new contract) and what."""

    loc: Location
    message: str


def _out_columns(contract: DatasetContract) -> dict[str, tuple[Any, ...]]:
    """The output's columns: name → how it is made (input column with its type after casts,
    derived with its definition, lookup with its join)."""
    spec = contract.transform
    out: dict[str, tuple[Any, ...]] = {}
    for col in contract.columns:
        out[col.name] = ("column", str(spec.casts.get(col.name, col.type)))
    for derived in spec.derived:
        kind = spec.casts.get(derived.name, derived.type)
        out[derived.name] = (
            "derived",
            derived.op,
            repr(derived.args),
            derived.separator,
            derived.digits,
            None if kind is None else str(kind),
        )
    for lookup in spec.lookups:
        for column in lookup.columns:
            out[f"{lookup.prefix}{column}"] = (
                "lookup",
                lookup.table,
                lookup.column,
                lookup.key,
                column,
            )
    for name in spec.drop:
        out.pop(name, None)
    return out


def _tighter(old: ColumnSpec, new: ColumnSpec) -> list[str]:
    before, after = old.constraints, new.constraints
    found: list[str] = []
    if old.nullable and not new.nullable:
        found.append("made non-nullable (files already sent may hold nulls)")
    if after.min is not None and (before.min is None or after.min > before.min):
        found.append(f"min raised from {before.min} to {after.min}")
    if after.max is not None and (before.max is None or after.max < before.max):
        found.append(f"max lowered from {before.max} to {after.max}")
    if after.enum is not None:
        if before.enum is None:
            found.append(f"narrowed to the enum {after.enum}")
        else:
            removed = [v for v in before.enum if v not in after.enum]
            if removed:
                found.append(f"enum values removed {removed}")
    if after.max_length is not None and (
        before.max_length is None or after.max_length < before.max_length
    ):
        found.append(f"max_length lowered from {before.max_length} to {after.max_length}")
    if after.regex is not None and after.regex != before.regex:
        found.append(f"regex changed from {before.regex!r} to {after.regex!r}")
    if old.null_values != new.null_values:
        found.append(f"null markers changed from {old.null_values} to {new.null_values}")
    if old.source != new.source:
        found.append(f"JSONL source key changed from {old.source!r} to {new.source!r}")
    return found


def check_dataset_compatibility(old: DatasetContract, new: DatasetContract) -> list[Breaking]:
    """The breaking changes from `old` to `new`, two states of one contract version
    (`BREAKING` lists them; everything in `ADDITIVE` is allowed). Empty when compatible."""
    found: list[Breaking] = []
    retyped: set[str] = set()  # input columns whose type change is reported already
    old_columns = {c.name: c for c in old.columns}
    new_index = {c.name: i for i, c in enumerate(new.columns)}
    for name in old_columns:
        if name not in new_index:
            found.append(
                Breaking(
                    ("columns",),
                    f"column {name!r} removed (or renamed): files and readers still have it",
                )
            )
    for index, col in enumerate(new.columns):
        loc: Location = ("columns", index)
        if col.name not in old_columns:
            if new.format.kind == "csv":
                found.append(
                    Breaking(
                        loc,
                        f"column {col.name!r} added to a CSV contract: files in the current "
                        "layout would no longer match (header_mismatch or a missing field)",
                    )
                )
            elif not col.nullable:
                found.append(
                    Breaking(
                        loc,
                        f"column {col.name!r} added as non-nullable: files already sent lack "
                        "it; add it as nullable",
                    )
                )
            continue
        before = old_columns[col.name]
        if before.type != col.type:
            retyped.add(col.name)
            found.append(
                Breaking(
                    (*loc, "type"), f"{col.name}: type changed from {before.type} to {col.type}"
                )
            )
        found.extend(Breaking(loc, f"{col.name}: {what}") for what in _tighter(before, col))
    if new.format.kind == "csv":
        kept = [c.name for c in old.columns if c.name in new_index]
        if kept != [c.name for c in new.columns if c.name in old_columns]:
            found.append(Breaking(("columns",), "CSV columns reordered"))
    old_format = old.format.model_dump(exclude={"compression"})
    new_format = new.format.model_dump(exclude={"compression"})
    for key in sorted(old_format):
        if old_format[key] != new_format[key]:
            found.append(
                Breaking(
                    ("format", key),
                    f"format.{key} changed from {old_format[key]!r} to {new_format[key]!r}",
                )
            )
    if old.format.compression != new.format.compression and new.format.compression != "auto":
        found.append(
            Breaking(
                ("format", "compression"),
                f"format.compression changed from {old.format.compression!r} to "
                f"{new.format.compression!r} (only a change to 'auto' accepts every file)",
            )
        )
    if old.primary_key != new.primary_key:
        found.append(
            Breaking(
                ("primary_key",),
                f"primary key changed from {old.primary_key} to {new.primary_key}",
            )
        )
    if old.transform.dedupe != new.transform.dedupe:
        found.append(Breaking(("transform", "dedupe"), f"dedupe changed to {new.transform.dedupe}"))
    old_parts = [p.model_dump() for p in old.partition_by]
    new_parts = [p.model_dump() for p in new.partition_by]
    if old_parts != new_parts:
        found.append(
            Breaking(
                ("partition_by",),
                "partitioning changed: the output's layout (and the catalog table's partition "
                "keys) would differ between files of one version",
            )
        )
    old_out, new_out = _out_columns(old), _out_columns(new)
    for name, made in old_out.items():
        if name in old_columns and (name not in new_index or name in retyped):
            continue  # reported as a removed or retyped column
        if name not in new_out:
            found.append(
                Breaking(("transform",), f"output column {name!r} removed: readers still have it")
            )
        elif new_out[name] != made:
            found.append(
                Breaking(
                    ("transform",),
                    f"output column {name!r} is computed differently ({_describe(made)} → "
                    f"{_describe(new_out[name])})",
                )
            )
    return found


def _describe(made: tuple[Any, ...]) -> str:
    kind, *rest = made
    if kind == "column":
        return f"column of type {rest[0]}"
    if kind == "derived":
        op, args, _, _, cast = rest
        return f"{op}{args}" + (f" as {cast}" if cast else "")
    table, column, key, picked = rest
    return f"lookup {table}.{picked} on {column}={key}"


def _load(data: bytes) -> DatasetContract | None:
    try:
        return DatasetContract.model_validate(yaml.safe_load(data.decode("utf-8")))
    except (UnicodeDecodeError, yaml.YAMLError, ValidationError):
        return None


def check_against(root: Path, against: str | None = None) -> list[ContractProblem]:
    """The breaking changes of every contract under `root` versus the same file at git ref
    `against` (default HEAD; outside a git work tree, nothing to compare). A contract that does
    not load on either side is left to the lint. Raises `contracts.tools.ToolError` when
    `against` is not a commit."""
    from contracts.tools import Baseline

    problems: list[ContractProblem] = []
    baseline: Baseline | None = None
    for _, version, path in contract_files(root):
        if baseline is None:
            baseline = Baseline(against, path.parent)
        committed = baseline.read(path)
        if committed is None:
            continue  # a new version file: nothing to keep compatible with
        old = _load(committed)
        new = _load(path.read_bytes())
        if old is None or new is None:
            continue
        label = baseline.ref or "HEAD"
        for change in check_dataset_compatibility(old, new):
            problems.append(
                ContractProblem(
                    display_path(path),
                    yaml_path(change.loc),
                    f"{change.message} (versus {label})",
                    f"breaking within v{version}: put the change in v{version + 1}.yaml and keep "
                    f"v{version}.yaml as it was",
                )
            )
    return problems
