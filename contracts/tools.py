"""Contract tooling: generate JSON schemas, and check that contracts keep their promises.

    python -m contracts.tools generate [DIR]               # write schema.json, record examples
    python -m contracts.tools check [DIR] [--against REF]  # exit 1 and list every problem

Without DIR, the built-in contracts; with DIR, a team's own contract folder anywhere
(`DIR/<fact>/v<N>/model.py`, see `discover`). The installed package runs the same as
`python -m sluice_contracts generate|check DIR`.

`check` reports (a) a `schema.json` that differs from its model, (b) a golden example that does
not parse, (c) an example changed or removed after it was recorded in `examples/CHECKSUMS`, and
(d) a breaking change within a major versus a baseline schema: the committed `schema.json` (git
HEAD), or the one at `--against REF`. Breaking means any change an existing reader or existing
event would trip over; it needs a new major folder, published alongside the old one.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contracts.envelope import SCHEMA_BASE_URI, ContractModel, Envelope, envelope_class
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


MODEL_FILE = "model.py"
_MAJOR_DIR = re.compile(r"^v[1-9][0-9]*$")


def discover(root: Path) -> list[ContractFolder]:
    """The contract folders under a team's `root`: every `<fact>/v<N>/model.py` (at any depth)
    and the one ContractModel with a `TYPE` it defines, sorted by path.

    When `root` and every folder down to a model are packages (`__init__.py`), the models are
    imported by their dotted names with `root`'s parent on `sys.path`, so a v2 model can import
    its v1 (`from acme_events.order_placed.v1.model import OrderPlacedV1`); otherwise each
    `model.py` is loaded from its file. Raises ToolError when `root` is not a folder, holds no
    model, a model file fails to import, or defines no model or more than one.
    """
    root = root.resolve()
    if not root.is_dir():
        raise ToolError(f"{root} is not a folder")
    model_files = sorted(
        path
        for path in root.rglob(MODEL_FILE)
        if _MAJOR_DIR.match(path.parent.name) and "__pycache__" not in path.parts
    )
    if not model_files:
        raise ToolError(f"{root} holds no contract (expected <fact>/v<N>/{MODEL_FILE})")
    folders = []
    for path in model_files:
        module = _import_model_file(root, path)
        models = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, ContractModel)
            and value.__module__ == module.__name__
            and isinstance(getattr(value, "TYPE", None), str)
        ]
        where = path.relative_to(root).as_posix()
        if len(models) != 1:
            found = ", ".join(m.__name__ for m in models) or "none"
            raise ToolError(
                f"{where}: expected one ContractModel with a TYPE, found {found} "
                "(one model per <fact>/v<N>/ folder)"
            )
        folders.append(ContractFolder(model=models[0], path=path.parent))
    return folders


def _import_model_file(root: Path, path: Path) -> Any:
    relative = path.relative_to(root).with_suffix("").parts
    packages = [root, *(root.joinpath(*relative[:i]) for i in range(1, len(relative)))]
    try:
        if all((folder / "__init__.py").is_file() for folder in packages):
            if str(root.parent) not in sys.path:
                sys.path.insert(0, str(root.parent))
            module = importlib.import_module(".".join((root.name, *relative)))
            origin = getattr(module, "__file__", None)
            if origin is None or Path(origin).resolve() != path:
                raise ToolError(
                    f"{module.__name__} is already imported from {origin}, not {path}; "
                    "run the tool in a fresh process"
                )
            return module
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        name = f"_sluice_team_contracts_{digest}." + ".".join(relative)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ToolError(f"{path}: cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    except ToolError:
        raise
    except Exception as exc:
        raise ToolError(
            f"{path.relative_to(root).as_posix()}: import failed: {type(exc).__name__}: {exc}"
        ) from None


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


def detail_schema_of(model: type[ContractModel]) -> dict[str, Any]:
    """The JSON schema (2020-12) of what a consumer receives as EventBridge `detail`: the whole
    envelope, its `type` pinned to `model.TYPE` and its `data` the model (in `$defs`).

    This is what the Schema Registry holds per DetailType (deploy/gen_schemas.py), so code
    generated from it reads the event as it arrives, not only its payload.
    """
    schema = envelope_class(model).model_json_schema(mode="validation")
    properties = schema["properties"]
    properties["type"] = {**properties["type"], "const": model.TYPE}
    schema["title"] = f"{model.TYPE} (EventBridge detail)"
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["$id"] = f"{SCHEMA_BASE_URI}{model.TYPE}.detail.json"
    schema["x-sluice-type"] = model.TYPE
    return schema


def render_schema(model: type[ContractModel]) -> bytes:
    """`schema_of(model)` as deterministic JSON: sorted keys, 2-space indent, trailing newline."""
    rendered = json.dumps(schema_of(model), indent=2, sort_keys=True, ensure_ascii=False)
    return (rendered + "\n").encode()


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


FIRST_EXAMPLE = "first.json"
EXAMPLE_CORRELATION_ID = "golden-example"


def first_example(model: type[ContractModel]) -> bytes | None:
    """A golden example (a whole envelope, as JSON) built from the first of each field's
    `examples` (`Field(examples=[...])`); fields with a default and no examples are left out.

    Returns None when a required field has no examples, or the model declares no `SOURCE`.
    Raises ToolError when the examples do not validate against the model.
    """
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if info.examples:
            data[key] = info.examples[0]
        elif info.is_required():
            return None
    if not model.SOURCE:
        return None
    try:
        instance = model.model_validate(data)
    except ValidationError as exc:
        raise ToolError(f"{model.TYPE}: the fields' examples do not validate: {exc}") from None
    envelope = Envelope.wrap(
        instance,
        correlationid=EXAMPLE_CORRELATION_ID,
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, model.dataschema_uri())),
    )
    rendered = json.dumps(envelope.model_dump(mode="json"), indent=2, ensure_ascii=False)
    return (rendered + "\n").encode()


def generate(folders: Iterable[ContractFolder] | None = None) -> list[Path]:
    """Write each folder's `schema.json`, a first golden example when the folder has none and
    every required field gives `examples` (`first_example`), and record new examples in
    `examples/CHECKSUMS`.

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
        starter = None if examples else first_example(folder.model)
        if starter is not None:
            folder.examples_path.mkdir(exist_ok=True)
            path = folder.examples_path / FIRST_EXAMPLE
            path.write_bytes(starter)
            written.append(path)
            examples = [path]
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

    return json.dumps(normalise(schema), sort_keys=True, separators=(",", ":")).encode()


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
        for problem in check_compatibility(json.loads(old_schema), schema_of(model)):
            problems.append(f"{model.TYPE}: {problem}; {NEEDS_NEW_MAJOR}")

    examples = folder.example_files()
    if not examples:
        problems.append(
            f"{EXAMPLES_DIR}/ has no golden example (*.json): write one, or give every required "
            "field `examples=[...]` and a SOURCE, and run generate"
        )
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


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m contracts.tools") -> int:
    """Entry point of `python -m contracts.tools` (and `python -m sluice_contracts`); returns
    the exit code: 0 fine, 1 contract problems, 2 bad arguments."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    generator = commands.add_parser("generate", help="write schema.json files and record examples")
    checker = commands.add_parser("check", help="report stale, broken or incompatible contracts")
    for sub in (generator, checker):
        sub.add_argument(
            "path",
            nargs="?",
            type=Path,
            metavar="DIR",
            help="a team's contract folder (<fact>/v<N>/model.py); default: the built-ins",
        )
    checker.add_argument("--against", metavar="GITREF", help="baseline commit (default: HEAD)")
    args = parser.parse_args(argv)
    try:
        folders = builtin_folders() if args.path is None else discover(args.path)
        if args.command == "generate":
            for path in generate(folders):
                print(f"wrote {_label(path)}")
            return 0
        problems = check(folders, against=args.against)
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} contract problem(s)", file=sys.stderr)
        return 1
    print(f"{len(folders)} contracts OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
