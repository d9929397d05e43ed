"""Cross-check the corpus's definitions with statelint and asl-validator.

Every definition AWS accepts (a case with `runs`, or one the local engine refuses as
`unsupported`) must be accepted by both linters, and every definition AWS refuses (a case with
`rejected`) refused by both — unless the case lists
the linter under `"linters": {"<statelint|asl-validator>": "<why it differs>"}`, in which case
the linter must still differ (a stale note fails too). statelint's known ItemReader InputType gap
is filtered as in `make check-templates` (tools/lint_asl.py).

    python -m tests.conformance.crosscheck --statelint .tools/statelint/bin/statelint \
        --asl-validator .tools/asl-validator/node_modules/.bin/asl-validator
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conformance.corpus import CASES, states_cases
from tools.lint_asl import statelint_problems_of

LINTERS = ("statelint", "asl-validator")


VERDICT = re.compile(r'^(✓|✕) State machine definition "(.+)" is (?:valid|invalid)')


def asl_validator_findings(asl_validator: str, paths: list[Path]) -> dict[str, str]:
    """asl-validator's findings per file ('' = accepted), from one run per CPU, each over its
    share of the files (a run checks its files one after another on one core). Raises
    RuntimeError when a file gets no verdict."""
    shares = [paths[i :: os.cpu_count() or 1] for i in range(os.cpu_count() or 1)]
    with ThreadPoolExecutor(len(shares)) as pool:
        results = list(pool.map(lambda share: _asl_validator_run(asl_validator, share), shares))
    findings = {path: found for result in results for path, found in result.items()}
    missing = [str(p) for p in paths if str(p) not in findings]
    if missing:
        raise RuntimeError(f"asl-validator gave no verdict for {missing}")
    return findings


def _asl_validator_run(asl_validator: str, paths: list[Path]) -> dict[str, str]:
    if not paths:
        return {}
    args = [asl_validator]
    for path in paths:
        args += ["--json-path", str(path)]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    findings: dict[str, str] = {}
    current: str | None = None
    for line in (result.stdout + result.stderr).splitlines():
        verdict = VERDICT.match(line.strip())
        if verdict:
            current = verdict.group(2)
            findings[current] = "" if verdict.group(1) == "✓" else "invalid:"
        elif current is not None and findings[current] and line.strip():
            findings[current] += f" {line.strip()}"
    missing = [str(p) for p in paths if str(p) not in findings]
    if missing:
        raise RuntimeError(f"asl-validator gave no verdict for {missing}: {result.stdout}")
    return findings


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring).

    Args:
        argv: arguments (default: sys.argv[1:]).

    Returns:
        0 when every verdict is as the corpus says, 1 otherwise.
    """
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.crosscheck")
    parser.add_argument("--statelint", required=True)
    parser.add_argument("--asl-validator", required=True)
    args = parser.parse_args(argv)
    wrong = 0
    cases = states_cases()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {case.name: Path(tmp) / f"{case.name}.asl.json" for case in cases}
        for case in cases:
            paths[case.name].write_text(json.dumps(case.definition), "utf-8")
        validated = asl_validator_findings(args.asl_validator, list(paths.values()))
        problems = statelint_problems_of(args.statelint, list(paths.values()))
        linted = {name: "; ".join(problems[path]) for name, path in paths.items()}
        for case in cases:
            path = paths[case.name]
            notes = json.loads((CASES / "states" / f"{case.name}.json").read_text("utf-8")).get(
                "linters", {}
            )
            found = {
                "statelint": linted[case.name],
                "asl-validator": validated[str(path)],
            }
            for linter in LINTERS:
                refuses = bool(found[linter])
                expected = case.aws_rejects != (linter in notes)
                if refuses == expected:
                    continue
                wrong += 1
                what = "refuses" if refuses else "accepts"
                engine = "refuses" if case.aws_rejects else "accepts"
                note = f" (note: {notes[linter]})" if linter in notes else ""
                print(f"crosscheck: {case.name}: {linter} {what} a definition AWS {engine}{note}")
                if found[linter]:
                    print(f"  {found[linter].strip()}")
    print(f"crosscheck: {len(cases)} definitions, {wrong} verdicts differing from the corpus")
    if wrong:
        print(
            'crosscheck: a linter gap goes in the case as "linters": {"<linter>": "<why>"}; '
            "a stale note (the linter now agrees) is removed"
        )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
