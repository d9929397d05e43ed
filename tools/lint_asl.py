"""Lint rendered ASL files (placeholders already substituted) with statelint and asl-validator.

statelint 3.1.0 (PyPI) predates the Distributed Map ItemReader `ReaderConfig.InputType`
field (CSV | JSON | JSONL | MANIFEST | PARQUET, documented by Step Functions): it reports every
use as "Field "InputType" not allowed". Exactly that message is accepted here, and only for a
value Step Functions documents; every other statelint finding fails the run. asl-validator
(npm) knows InputType and checks the JSONPaths too, so both run. The local workflow engine's
own parse (what CreateStateMachine runs locally) must accept every file as well.

    python -m tools.lint_asl --statelint .tools/statelint/bin/statelint \
        --asl-validator .tools/asl-validator/node_modules/.bin/asl-validator build/asl/*.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

READER_INPUT_TYPES = frozenset({"CSV", "JSON", "JSONL", "MANIFEST", "PARQUET"})
KNOWN_GAP = re.compile(
    r'^Field "InputType" not allowed in State Machine\.States\.(.+)\.ItemReader\.ReaderConfig$'
)


def _input_types(definition: dict[str, Any]) -> dict[str, str]:
    """Top-level state name -> ItemReader InputType, for the states that set one."""
    found: dict[str, str] = {}
    for name, state in definition.get("States", {}).items():
        value = state.get("ItemReader", {}).get("ReaderConfig", {}).get("InputType")
        if value is not None:
            found[name] = str(value)
    return found


def statelint_problems(statelint: str, path: Path) -> list[str]:
    """statelint's findings for one file, minus its documented InputType gap.

    Args:
        statelint: the statelint executable.
        path: a rendered ASL file.

    Returns:
        The findings that count (empty = clean).
    """
    return statelint_problems_of(statelint, [path])[path]


def statelint_problems_of(statelint: str, paths: list[Path]) -> dict[Path, list[str]]:
    """statelint's findings for several files from one run (statelint names each file with
    findings before them when given several), minus its documented InputType gap.

    Args:
        statelint: the statelint executable.
        paths: rendered ASL files (distinct).

    Returns:
        The findings that count for each file (empty = clean).
    """
    result = subprocess.run(
        [statelint, *map(str, paths)], capture_output=True, text=True, check=False
    )
    raw: dict[Path, list[str]] = {path: [] for path in paths}
    by_name = {str(path): path for path in paths}
    current = paths[0] if len(paths) == 1 else None
    for line in result.stdout.splitlines() + result.stderr.splitlines():
        if line in by_name:
            current = by_name[line]
            continue
        line = line.strip()
        if not line or re.fullmatch(r"(?:\d+|One) errors?:", line):
            continue
        if current is None:
            raise RuntimeError(f"statelint finding for no file: {line}")
        raw[current].append(line)
    found: dict[Path, list[str]] = {}
    for path, lines in raw.items():
        input_types = _input_types(json.loads(path.read_text("utf-8"))) if lines else {}
        problems = []
        for line in lines:
            gap = KNOWN_GAP.match(line)
            if not (gap and input_types.get(gap.group(1)) in READER_INPUT_TYPES):
                problems.append(line)
        found[path] = problems
    if result.returncode != 0 and not any(raw.values()):
        first = paths[0]
        found[first] = [f"statelint exited {result.returncode} without a finding it explains"]
    return found


def local_engine_refusal(path: Path) -> str:
    """Why the local workflow engine would refuse the definition at CreateStateMachine ('' when
    it accepts it): the project's own definitions must run locally as they deploy."""
    from sluice.local.workflow.definition import parse
    from sluice.local.workflow.errors import DefinitionError

    try:
        parse(path.read_text(encoding="utf-8"))
    except DefinitionError as exc:
        return str(exc)
    return ""


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring).

    Args:
        argv: arguments (default: sys.argv[1:]).

    Returns:
        0 when every file is clean, 1 otherwise.
    """
    parser = argparse.ArgumentParser(prog="python -m tools.lint_asl")
    parser.add_argument("--statelint", required=True)
    parser.add_argument("--asl-validator", required=True)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    failed = False
    for path in args.files:
        problems = statelint_problems(args.statelint, path)
        for problem in problems:
            print(f"statelint: {path}: {problem}")
        validator = subprocess.run(
            [args.asl_validator, "--json-path", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if validator.returncode != 0:
            print(f"asl-validator: {path}:\n{validator.stdout}{validator.stderr}")
        refused = local_engine_refusal(path)
        if refused:
            print(f"local engine: {path}: {refused}")
        failed = failed or bool(problems) or validator.returncode != 0 or bool(refused)
        status = "FAILED" if problems or validator.returncode or refused else "ok"
        print(f"lint_asl: {path}: statelint + asl-validator + local engine {status}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
