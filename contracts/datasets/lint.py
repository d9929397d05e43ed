"""Offline lint of data contracts and their lookup tables: every problem, with its YAML path.

    contracts/datasets/orders/v1.yaml: transform.lookups[0].on: the key `on` was read as the
    boolean true (line 31) — hint: ...

What is checked, for each `<root>/<dataset>/v<N>.yaml`:

- the YAML parses, and every mapping key is a string (YAML 1.1 reads a bare `on`, `off`, `yes`,
  `no`, `y`, `n`, `true`, `false` as a boolean: the classic is a lookup written with `on:`);
- the model's rules (`DatasetContract`): unknown keys, types, ranges, RE2 regexes, references
  (primary key, derived arguments, lookup join columns, casts, partition columns);
- the file declares the dataset and version its path names;
- each lookup table exists (`lookups/<table>.csv`), has the join key and the columns asked
  for, and its keys are present and unique (a left join with a repeated key multiplies rows);
- `transform.drop` names a column that exists at that point, and no partition column is dropped.

The same problems are what a contract that fails to load at run time reports
(`DatasetContractInvalid`), so the lint and the pipeline never disagree about a contract.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from pydantic import ValidationError

from contracts.datasets.model import DatasetContract, ReferenceProblems, reference_problems

# What a YAML path looks like in a problem: `transform.lookups[0].column`.
Location = tuple[str | int, ...]
STR_TAG = "tag:yaml.org,2002:str"
LOOKUPS_DIR = "lookups"
_BOOL_WORDS = frozenset({"on", "off", "yes", "no", "y", "n", "true", "false"})
_TRUE_WORDS = frozenset({"on", "yes", "y", "true"})


@dataclass(frozen=True)
class ContractProblem:
    """One problem of one contract file: where (the YAML path), what, and how to fix it."""

    file: str  # the contract's path as shown (relative to the working directory when under it)
    where: str  # the YAML path, e.g. `transform.lookups[0].column`; "" for the whole file
    message: str
    hint: str = ""
    line: int | None = None  # 1-based line of the YAML node, when known

    def __str__(self) -> str:
        where = f" {self.where}:" if self.where else ""
        line = f" (line {self.line})" if self.line else ""
        hint = f" — hint: {self.hint}" if self.hint else ""
        return f"{self.file}:{where} {self.message}{line}{hint}"


# Extra checks a caller adds (e.g. the derived columns' types, known to the data path only):
# each returns (YAML path, message, hint) triples for a contract that loaded.
ExtraCheck = Callable[[DatasetContract], list[tuple[Location, str, str]]]


def yaml_path(loc: Sequence[str | int]) -> str:
    """`('transform', 'lookups', 0, 'column')` → `transform.lookups[0].column`."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def display_path(path: Path) -> str:
    """`path` relative to the working directory when under it (as problems show files)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


class _Nodes:
    """Line numbers of the YAML nodes by path, and the mapping keys that are not strings."""

    def __init__(self, root: yaml.Node) -> None:
        self.lines: dict[Location, int] = {}
        self.bad_keys: list[tuple[Location, yaml.ScalarNode]] = []
        self._walk(root, ())

    def _walk(self, node: yaml.Node, loc: Location) -> None:
        self.lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag == STR_TAG:
                    self._walk(value, (*loc, key.value))
                    continue
                if isinstance(key, yaml.ScalarNode):
                    self.bad_keys.append((loc, key))
                    self.lines[(*loc, key.value)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, (*loc, index))

    def line(self, loc: Location) -> int | None:
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get(())


def _bad_key_problem(
    file: str, loc: Location, key: yaml.ScalarNode, nodes: _Nodes
) -> ContractProblem:
    kind = key.tag.rsplit(":", 1)[-1]
    where = yaml_path((*loc, key.value))
    if kind == "bool" and key.value.lower() in _BOOL_WORDS:
        value = "true" if key.value.lower() in _TRUE_WORDS else "false"
        message = (
            f"the key `{key.value}` was read as the boolean {value} "
            "(YAML 1.1 reads on/off/yes/no/y/n as booleans), and keys must be strings"
        )
        if key.value.lower() == "on" and len(loc) >= 2 and loc[-2] == "lookups":
            hint = (
                "a lookup names the data column with `column:` and the lookup table's column "
                "with `key:` (e.g. `{table: countries, column: country, key: code, ...}`); "
                f'write "{key.value}": in quotes if you really mean the string'
            )
        else:
            hint = f'quote it: "{key.value}": (a quoted key is always a string)'
    else:
        message = f"the key `{key.value}` was read as a {kind}, and keys must be strings"
        hint = f'quote it: "{key.value}":'
    return ContractProblem(file, where, message, hint, nodes.line((*loc, key.value)))


def _hint_for(error: Any, loc: Location) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return (
            "unknown key (contracts reject unknown keys so that a typo is an error): check its "
            "spelling and indentation against contracts/README.md"
        )
    if kind == "missing":
        return f"add `{loc[-1]}:`" if loc else ""
    if kind in {"enum", "literal_error"}:
        return "use one of the values listed"
    if kind == "string_pattern_mismatch":
        return "names are lower-case snake_case: a letter, then letters, digits or _ (at most 63)"
    return ""


def _validation_problems(
    file: str, error: ValidationError, nodes: _Nodes, bad_key_mappings: set[Location]
) -> list[ContractProblem]:
    problems: list[ContractProblem] = []
    for item in error.errors():
        loc: Location = tuple(item["loc"])
        if item["type"] == "invalid_key":
            continue  # reported from the YAML itself, with the key as written
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, ReferenceProblems):
            for ref_loc, message, hint in cause.problems:
                full = (*loc, *ref_loc)
                problems.append(
                    ContractProblem(file, yaml_path(full), message, hint, nodes.line(full))
                )
            continue
        message = str(item["msg"]).removeprefix("Value error, ")
        hint = _hint_for(item, loc)
        if item["type"] == "missing" and loc[:-1] in bad_key_mappings:
            hint = f"{hint}; a key of this mapping was read as a boolean (see its problem)"
        problems.append(ContractProblem(file, yaml_path(loc), message, hint, nodes.line(loc)))
    return problems


def lint_text(
    text: str,
    *,
    file: str,
    expected: tuple[str, int] | None = None,
    lookups_dir: Path | None = None,
    extra: Sequence[ExtraCheck] = (),
) -> list[ContractProblem]:
    """Every problem of one contract's YAML `text` (shown as `file`).

    `expected`: the dataset name and version the file's path names. `lookups_dir`: where its
    lookup tables live (their checks are skipped when None). `extra`: more checks, run on a
    contract that loads.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        return [
            ContractProblem(
                file, "", f"not valid YAML: {reason}", "check indentation and quoting", line
            )
        ]
    if root is None:
        return [ContractProblem(file, "", "the file is empty", "see contracts/README.md")]
    nodes = _Nodes(root)
    problems = [_bad_key_problem(file, loc, key, nodes) for loc, key in nodes.bad_keys]
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        problems.append(
            ContractProblem(file, "", "a contract is a mapping (name:, version:, columns: ...)")
        )
        return problems
    try:
        contract = DatasetContract.model_validate(data)
    except ValidationError as exc:
        bad_mappings = {loc for loc, _ in nodes.bad_keys}
        problems += _validation_problems(file, exc, nodes, bad_mappings)
        # pydantic checks references only once every field is valid: check them on the raw
        # mapping too, so that one run lists every problem
        reported = {p.where for p in problems}
        for loc, message, hint in _raw_reference_problems(data):
            where = yaml_path(loc)
            if where not in reported:
                problems.append(ContractProblem(file, where, message, hint, nodes.line(loc)))
        return problems
    if problems:
        return problems
    if expected is not None and (contract.name, contract.version) != expected:
        name, version = expected
        where = "name" if contract.name != name else "version"
        problems.append(
            ContractProblem(
                file,
                where,
                f"declares {contract.ref}, but its path names {name}/v{version}",
                "the folder is the dataset name and the file the version: keep them in step",
                nodes.line((where,)),
            )
        )
    checks: list[tuple[Location, str, str]] = _transform_problems(contract)
    if lookups_dir is not None:
        checks.extend(_lookup_problems(contract, lookups_dir))
    for check in extra:
        checks.extend(check(contract))
    problems.extend(
        ContractProblem(file, yaml_path(loc), message, hint, nodes.line(loc))
        for loc, message, hint in checks
    )
    return problems


def _raw_reference_problems(data: dict[Any, Any]) -> list[tuple[Location, str, str]]:
    """`reference_problems` of a mapping that is not (yet) a valid contract: the names it uses
    that resolve to no column, as far as its shape can be read."""

    class Loose(SimpleNamespace):
        def __getattr__(self, name: str) -> None:  # a key the mapping lacks reads as None
            return None

    def view(node: Any) -> Any:
        if isinstance(node, dict):
            return Loose(**{str(k): view(v) for k, v in node.items()})
        if isinstance(node, list):
            return [view(item) for item in node]
        return node

    raw_transform = data.get("transform")
    transform: dict[Any, Any] = raw_transform if isinstance(raw_transform, dict) else {}
    shaped = {
        "columns": data.get("columns", []),
        "primary_key": data.get("primary_key", []),
        "partition_by": data.get("partition_by", []),
        "transform": {
            "derived": [
                {"args": [], **derived} if isinstance(derived, dict) else derived
                for derived in transform.get("derived", []) or []
            ],
            "lookups": [
                {"prefix": "", "columns": [], **lookup} if isinstance(lookup, dict) else lookup
                for lookup in transform.get("lookups", []) or []
            ],
            # only the names are used; a list keeps them out of the namespace conversion
            "casts": list(transform.get("casts") or {}),
        },
    }
    try:
        found = reference_problems(view(shaped))
    except (AttributeError, TypeError):
        return []  # a shape too far from a contract: the field problems say why
    return [p for p in found if "None" not in p[1]]


def _transform_problems(contract: DatasetContract) -> list[tuple[Location, str, str]]:
    spec = contract.transform
    known = {c.name for c in contract.columns}
    known.update(d.name for d in spec.derived)
    for lookup in spec.lookups:
        known.update(f"{lookup.prefix}{c}" for c in lookup.columns)
    found: list[tuple[Location, str, str]] = []
    for index, name in enumerate(spec.drop):
        if name not in known:
            found.append(
                (
                    ("transform", "drop", index),
                    f"drops unknown column {name!r}",
                    "drop names a column of `columns`, a derived column or a lookup column",
                )
            )
    partitioned = {p.column for p in contract.partition_by}
    for index, name in enumerate(spec.drop):
        if name in partitioned:
            found.append(
                (
                    ("transform", "drop", index),
                    f"drops {name!r}, which a partition column is made from",
                    "keep it in the output, or partition by another column",
                )
            )
    return found


def _lookup_problems(
    contract: DatasetContract, lookups_dir: Path
) -> list[tuple[Location, str, str]]:
    found: list[tuple[Location, str, str]] = []
    for index, lookup in enumerate(contract.transform.lookups):
        loc: Location = ("transform", "lookups", index)
        path = lookups_dir / f"{lookup.table}.csv"
        if not path.is_file():
            found.append(
                (
                    (*loc, "table"),
                    f"lookup table {lookup.table!r} does not exist ({display_path(path)})",
                    f"add {LOOKUPS_DIR}/{lookup.table}.csv beside the contract (CSV with header)",
                )
            )
            continue
        try:
            with path.open(encoding="utf-8", newline="") as handle:
                rows = list(csv.reader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            found.append(((*loc, "table"), f"lookup table {lookup.table!r} unreadable: {exc}", ""))
            continue
        header = rows[0] if rows else []
        if lookup.key not in header:
            found.append(
                (
                    (*loc, "key"),
                    f"lookup table {lookup.table!r} has no key column {lookup.key!r} "
                    f"(its columns: {header})",
                    "`key:` names the lookup table's column; `column:` the data's",
                )
            )
        for position, column in enumerate(lookup.columns):
            if column not in header:
                found.append(
                    (
                        (*loc, "columns", position),
                        f"lookup table {lookup.table!r} has no column {column!r} "
                        f"(its columns: {header})",
                        "",
                    )
                )
        if lookup.key in header:
            at = header.index(lookup.key)
            keys = [row[at] if at < len(row) else "" for row in rows[1:] if row]
            repeated = sorted({k for k in keys if keys.count(k) > 1})
            if "" in keys:
                found.append(
                    (
                        (*loc, "key"),
                        f"lookup table {lookup.table!r} has an empty {lookup.key!r}",
                        "",
                    )
                )
            if repeated:
                found.append(
                    (
                        (*loc, "key"),
                        f"lookup table {lookup.table!r} repeats {lookup.key!r} values "
                        f"{repeated[:5]}",
                        "a left join with a repeated key would multiply rows: keep one row per key",
                    )
                )
    return found


def contract_files(root: Path) -> list[tuple[str, int, Path]]:
    """(dataset, version, path) of every `<root>/<dataset>/v<N>.yaml`, sorted."""
    from contracts.datasets.loader import version_of_file

    found: list[tuple[str, int, Path]] = []
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            version = version_of_file(path.name)
            if version is not None:
                found.append((folder.name, version, path))
    return found


def lint_file(
    path: Path,
    *,
    expected: tuple[str, int] | None = None,
    extra: Sequence[ExtraCheck] = (),
    shown_as: str | None = None,
) -> list[ContractProblem]:
    """Every problem of the contract file at `path` (its lookups are in `lookups/` beside it);
    problems name the file `shown_as` (default: `display_path(path)`)."""
    file = display_path(path) if shown_as is None else shown_as
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [ContractProblem(file, "", f"cannot be read: {exc}")]
    return lint_text(
        text, file=file, expected=expected, lookups_dir=path.parent / LOOKUPS_DIR, extra=extra
    )


def lint_catalog(root: Path, *, extra: Sequence[ExtraCheck] = ()) -> list[ContractProblem]:
    """Every problem of every contract under `root` (`<dataset>/v<N>.yaml` and its lookups)."""
    problems: list[ContractProblem] = []
    if not root.is_dir():
        return [ContractProblem(display_path(root), "", "is not a folder of data contracts")]
    for folder in sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    ):
        files = [f for f in contract_files(root) if f[0] == folder.name]
        if not files:
            stray = sorted(p.name for p in folder.glob("*.y*ml"))
            if stray:
                problems.append(
                    ContractProblem(
                        display_path(folder),
                        "",
                        f"holds {stray} but no v<N>.yaml",
                        "name a contract file after its version: v1.yaml, v2.yaml, ...",
                    )
                )
            continue
        for name, version, path in files:
            problems.extend(lint_file(path, expected=(name, version), extra=extra))
    return problems
