"""Contract tooling: generate JSON schemas, and check that contracts keep their promises.

    python -m contracts.tools generate               # write schema.json, record new examples
    python -m contracts.tools check [--against REF]  # exit 1 and list every problem

`check` reports (a) a `schema.json` that differs from its model, (b) a golden example that does
not parse, (c) an example changed or removed after it was recorded in `examples/CHECKSUMS`, and
(d) a breaking change within a major versus a baseline schema: the committed `schema.json` (git
HEAD), or the one at `--against REF`. Breaking means any change an existing reader or existing
event would trip over; it needs a new major folder, published alongside the old one.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from contracts.envelope import ContractModel
from contracts.errors import ContractError
from contracts.events import BUILTIN_MODELS
from contracts.registry import ContractRegistry, parse_envelope
from contracts.types import split_contract_type

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILE = "schema.json"
EXAMPLES_DIR = "examples"
CHECKSUMS_FILE = "CHECKSUMS"
NEEDS_NEW_MAJOR = "breaking within a major: add a new major folder"
# Keywords that document a schema without changing what it accepts.
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly"}
)


class ToolError(Exception):
    """The tool cannot run as asked (e.g. an unknown git ref)."""


@dataclass(frozen=True)
class ContractFolder:
    """A contract model and its folder (`.../<fact>/v<N>/`: schema.json, examples/)."""

    model: type[ContractModel]
    path: Path

    @classmethod
    def of(cls, model: type[ContractModel]) -> ContractFolder:
        """The folder of the module that defines `model`."""
        return cls(model=model, path=Path(inspect.getfile(model)).resolve().parent)

    @property
    def schema_path(self) -> Path:
        return self.path / SCHEMA_FILE

    @property
    def examples_path(self) -> Path:
        return self.path / EXAMPLES_DIR

    @property
    def checksums_path(self) -> Path:
        return self.examples_path / CHECKSUMS_FILE

    def example_files(self) -> list[Path]:
        if not self.examples_path.is_dir():
            return []
        return sorted(self.examples_path.glob("*.json"))


def builtin_folders() -> list[ContractFolder]:
    """The folders of every built-in contract."""
    return [ContractFolder.of(model) for model in BUILTIN_MODELS]


def schema_of(model: type[ContractModel]) -> dict[str, Any]:
    """The JSON schema (2020-12) of `model`'s data, with `$id` = its `dataschema` URI."""
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["$id"] = model.dataschema_uri()
    schema["x-sluice-type"] = model.TYPE
    return schema


def render_schema(model: type[ContractModel]) -> bytes:
    """`schema_of(model)` as deterministic JSON: sorted keys, 2-space indent, trailing newline."""
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
    return orjson.dumps(schema_of(model), option=options)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_checksums(text: str) -> dict[str, str]:
    """Parse a CHECKSUMS file (`sha256sum` format: `<hex>  <file name>` per line)."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        entries[name.strip()] = digest.strip()
    return entries


def _render_checksums(entries: Mapping[str, str]) -> str:
    return "".join(f"{entries[name]}  {name}\n" for name in sorted(entries))


def generate(folders: Iterable[ContractFolder] | None = None) -> list[Path]:
    """Write each folder's `schema.json` and record new examples in `examples/CHECKSUMS`.

    Recorded checksums are never rewritten: an example changed after it was recorded stays a
    `check` failure. Returns the files written (unchanged files are left alone).
    """
    written: list[Path] = []
    for folder in builtin_folders() if folders is None else folders:
        rendered = render_schema(folder.model)
        if not folder.schema_path.exists() or folder.schema_path.read_bytes() != rendered:
            folder.schema_path.write_bytes(rendered)
            written.append(folder.schema_path)
        examples = folder.example_files()
        if not examples:
            continue
        recorded = (
            read_checksums(folder.checksums_path.read_text())
            if folder.checksums_path.exists()
            else {}
        )
        updated = dict(recorded)
        for example in examples:
            updated.setdefault(example.name, _sha256(example.read_bytes()))
        if updated != recorded or not folder.checksums_path.exists():
            folder.checksums_path.write_text(_render_checksums(updated))
            written.append(folder.checksums_path)
    return written


# ---------------------------------------------------------------------------------------------
# Compatibility within a major


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    resolved = dict(schema)
    seen: set[str] = set()
    while "$ref" in resolved:
        ref = str(resolved.pop("$ref"))
        if ref in seen or not ref.startswith("#/"):
            break
        seen.add(ref)
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        resolved = {**target, **resolved}
    return resolved


def _strip(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in _ANNOTATIONS}


def _branches(schema: Mapping[str, Any], root: Mapping[str, Any]) -> list[dict[str, Any]]:
    resolved = _resolve(schema, root)
    for keyword in ("anyOf", "oneOf"):
        if keyword in resolved:
            return [_resolve(branch, root) for branch in resolved[keyword]]
    return [resolved]


def _is_null(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "null"


def _enum_values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "enum" in schema:
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    return None


def _describe_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type", "any")
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return str(kind)


def _canonical(schema: Mapping[str, Any], root: Mapping[str, Any]) -> bytes:
    def normalise(node: Any) -> Any:
        if isinstance(node, Mapping):
            node = _strip(_resolve(node, root)) if "$ref" in node else _strip(node)
            return {k: normalise(v) for k, v in node.items()}
        if isinstance(node, list):
            return [normalise(item) for item in node]
        return node

    return orjson.dumps(normalise(schema), option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class _Roots:
    old: Mapping[str, Any]
    new: Mapping[str, Any]


def _compare_object(
    old: Mapping[str, Any], new: Mapping[str, Any], roots: _Roots, path: str
) -> list[str]:
    problems: list[str] = []
    old_props: Mapping[str, Any] = old.get("properties", {})
    new_props: Mapping[str, Any] = new.get("properties", {})
    old_required = set(old.get("required", ()))
    new_required = set(new.get("required", ()))
    for name in old_props:
        if name not in new_props:
            problems.append(f"{path}{name}: field removed (v1 readers still need it)")
    for name in new_props:
        if name not in old_props and name in new_required:
            problems.append(
                f"{path}{name}: added as a required field (events already published lack it); "
                "add it as optional instead"
            )
    for name in old_props:
        if name not in new_props:
            continue
        if name in new_required and name not in old_required:
            problems.append(
                f"{path}{name}: optional field made required (events already published may lack it)"
            )
        problems.extend(_compare_value(old_props[name], new_props[name], roots, f"{path}{name}"))
    return problems


def _compare_value(
    old: Mapping[str, Any], new: Mapping[str, Any], roots: _Roots, path: str
) -> list[str]:
    old_branches = _branches(old, roots.old)
    new_branches = _branches(new, roots.new)
    problems: list[str] = []
    old_nullable = any(_is_null(b) for b in old_branches)
    new_nullable = any(_is_null(b) for b in new_branches)
    if old_nullable and not new_nullable:
        problems.append(f"{path}: no longer accepts null (events already published may hold null)")
    if new_nullable and not old_nullable:
        problems.append(f"{path}: now accepts null (v1 readers built from the old model reject it)")
    old_rest = [b for b in old_branches if not _is_null(b)]
    new_rest = [b for b in new_branches if not _is_null(b)]
    if len(old_rest) == 1 and len(new_rest) == 1:
        return problems + _compare_leaf(old_rest[0], new_rest[0], roots, path)
    old_set = sorted(_canonical(b, roots.old) for b in old_rest)
    new_set = sorted(_canonical(b, roots.new) for b in new_rest)
    if old_set != new_set:
        old_types = " | ".join(_describe_type(b) for b in old_rest)
        new_types = " | ".join(_describe_type(b) for b in new_rest)
        problems.append(f"{path}: type changed from {old_types} to {new_types}")
    return problems


def _compare_leaf(
    old: Mapping[str, Any], new: Mapping[str, Any], roots: _Roots, path: str
) -> list[str]:
    old_type, new_type = old.get("type"), new.get("type")
    if old_type != new_type:
        return [f"{path}: type changed from {_describe_type(old)} to {_describe_type(new)}"]
    if old_type == "object" and ("properties" in old or "properties" in new):
        return _compare_object(old, new, roots, f"{path}.")
    problems: list[str] = []
    if old_type == "array" and ("items" in old or "items" in new):
        problems.extend(_compare_value(old.get("items", {}), new.get("items", {}), roots, path))
    old_enum, new_enum = _enum_values(old), _enum_values(new)
    if old_enum is not None or new_enum is not None:
        if new_enum is not None and old_enum is None:
            problems.append(f"{path}: narrowed to the enum {new_enum}")
        elif old_enum is not None and new_enum is None:
            problems.append(f"{path}: enum {old_enum} widened to any {_describe_type(new)}")
        elif old_enum is not None and new_enum is not None:
            removed = [v for v in old_enum if v not in new_enum]
            added = [v for v in new_enum if v not in old_enum]
            if removed:
                problems.append(
                    f"{path}: enum narrowed, values removed {removed} "
                    "(events already published may hold them)"
                )
            if added:
                problems.append(
                    f"{path}: enum widened, values added {added} "
                    "(v1 readers built from the old model reject them)"
                )
    skip = {"type", "properties", "required", "items", "enum", "const"}
    old_rest = {k: v for k, v in _strip(old).items() if k not in skip}
    new_rest = {k: v for k, v in _strip(new).items() if k not in skip}
    for keyword in sorted(set(old_rest) | set(new_rest)):
        before, after = old_rest.get(keyword), new_rest.get(keyword)
        if before != after:
            problems.append(f"{path}: constraint {keyword!r} changed from {before!r} to {after!r}")
    return problems


def check_compatibility(old_schema: Mapping[str, Any], new_schema: Mapping[str, Any]) -> list[str]:
    """The breaking changes from `old_schema` to `new_schema` (JSON schemas of one major).

    Allowed within a major: new optional fields, and documentation (titles, descriptions).
    Breaking: a removed field, a new required field, optional made required, any change of a
    field's type or nullability, a narrowed or widened enum, a changed constraint (pattern,
    bounds, format). Returns one message per problem, empty when compatible.
    """
    roots = _Roots(old=old_schema, new=new_schema)
    return _compare_object(
        _resolve(old_schema, old_schema), _resolve(new_schema, new_schema), roots, ""
    )


# ---------------------------------------------------------------------------------------------
# git baselines


def _git(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)


def _git_toplevel(path: Path) -> Path | None:
    try:
        result = _git(["rev-parse", "--show-toplevel"], path)
    except OSError:
        return None
    if result.returncode != 0:
        return None
    return Path(result.stdout.decode().strip()).resolve()


class _Baseline:
    """Reads files as they were at a git ref (default HEAD), or from disk outside git."""

    def __init__(self, ref: str | None, anchor: Path) -> None:
        self.top = _git_toplevel(anchor)
        self.ref = ref or "HEAD"
        self.explicit = ref is not None
        if self.top is None:
            if self.explicit:
                raise ToolError(f"--against {ref}: {anchor} is not inside a git work tree")
            return
        verify = ["rev-parse", "--verify", "--quiet", f"{self.ref}^{{commit}}"]
        if _git(verify, self.top).returncode:
            if self.explicit:
                raise ToolError(f"--against {ref}: not a git commit")
            self.ref = ""  # a repository without commits: nothing is committed yet

    def read(self, path: Path) -> bytes | None:
        if self.top is None:
            return path.read_bytes() if path.exists() else None
        if not self.ref:
            return None
        try:
            relative = path.resolve().relative_to(self.top)
        except ValueError:
            return path.read_bytes() if path.exists() else None
        result = _git(["show", f"{self.ref}:{relative.as_posix()}"], self.top)
        return result.stdout if result.returncode == 0 else None


# The git baseline, shared with the data contracts' compatibility check.
Baseline = _Baseline


# ---------------------------------------------------------------------------------------------
# check


def _check_folder(folder: ContractFolder, baseline: _Baseline) -> list[str]:
    problems: list[str] = []
    model = folder.model
    _, major = split_contract_type(model.TYPE)
    if folder.path.name != f"v{major}":
        problems.append(f"{model.TYPE} lives in {folder.path.name}/, expected v{major}/")

    rendered = render_schema(model)
    if not folder.schema_path.exists():
        problems.append(f"{SCHEMA_FILE} is missing; run `python -m contracts.tools generate`")
    elif folder.schema_path.read_bytes() != rendered:
        problems.append(
            f"{SCHEMA_FILE} is stale (differs from {model.__name__}); "
            "run `python -m contracts.tools generate`"
        )

    old_schema = baseline.read(folder.schema_path)
    if old_schema is not None:
        for problem in check_compatibility(orjson.loads(old_schema), schema_of(model)):
            problems.append(f"{model.TYPE}: {problem}; {NEEDS_NEW_MAJOR}")

    examples = folder.example_files()
    if not examples:
        problems.append(f"{EXAMPLES_DIR}/ has no golden example (*.json)")
    registry = ContractRegistry([model])
    for example in examples:
        try:
            parse_envelope(example.read_bytes(), accepted=[model.TYPE], registry=registry)
        except ContractError as exc:
            problems.append(f"{EXAMPLES_DIR}/{example.name} does not parse: {exc}")

    recorded = (
        read_checksums(folder.checksums_path.read_text()) if folder.checksums_path.exists() else {}
    )
    previously = baseline.read(folder.checksums_path)
    if previously is not None:
        for name, digest in read_checksums(previously.decode()).items():
            if recorded.get(name) != digest:
                problems.append(
                    f"{EXAMPLES_DIR}/{CHECKSUMS_FILE}: the entry for {name} was changed or "
                    "removed; recorded examples are immutable"
                )
    present = {example.name: example for example in examples}
    for name, digest in sorted(recorded.items()):
        if name not in present:
            problems.append(f"{EXAMPLES_DIR}/{name} was removed; golden examples are immutable")
        elif _sha256(present[name].read_bytes()) != digest:
            problems.append(
                f"{EXAMPLES_DIR}/{name} changed after it was recorded; golden examples are "
                "immutable: add a new example file instead"
            )
    for name in sorted(set(present) - set(recorded)):
        problems.append(
            f"{EXAMPLES_DIR}/{name} is not recorded in {CHECKSUMS_FILE}; "
            "run `python -m contracts.tools generate`"
        )
    return problems


def check(
    folders: Iterable[ContractFolder] | None = None, *, against: str | None = None
) -> list[str]:
    """Every problem with the contracts in `folders` (default: the built-ins), one line each.

    `against` is the git ref whose `schema.json` files are the compatibility baseline (default:
    HEAD; outside a git work tree, the schema.json on disk). Raises ToolError when `against` is
    not a commit of the repository holding the folders.
    """
    chosen = builtin_folders() if folders is None else list(folders)
    problems: list[str] = []
    baseline: _Baseline | None = None
    for folder in chosen:
        if baseline is None:
            baseline = _Baseline(against, folder.path)
        label = _label(folder.path)
        problems.extend(f"{label}: {problem}" for problem in _check_folder(folder, baseline))
    return problems


def _label(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m contracts.tools`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m contracts.tools", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("generate", help="write schema.json files and record new examples")
    checker = commands.add_parser("check", help="report stale, broken or incompatible contracts")
    checker.add_argument("--against", metavar="GITREF", help="baseline commit (default: HEAD)")
    args = parser.parse_args(argv)
    if args.command == "generate":
        for path in generate():
            print(f"wrote {_label(path)}")
        return 0
    try:
        problems = check(against=args.against)
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} contract problem(s)", file=sys.stderr)
        return 1
    print(f"{len(builtin_folders())} contracts OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
