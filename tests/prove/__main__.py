"""`python -m tests.prove`: run each mutation's catching tests with the mutation applied.

    python -m tests.prove                 # every mutation, two at a time; fails if one survives
    python -m tests.prove NAME [NAME...]  # only these
    python -m tests.prove --baseline      # first check the catching tests pass unmutated
    python -m tests.prove --list          # the registry
    python -m tests.prove --write-doc     # regenerate the promise table of docs/guarantees.md

Each mutation runs in one pytest process (`-x`: the first failing test is the catch), with
`boot/` on `PYTHONPATH` and `SLUICE_PROVE_MUTATION` naming the mutation, which `boot/
sitecustomize.py` installs before anything is imported.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.prove import MUTATION_ENV
from tests.prove.registry import Mechanism, mutations
from tests.prove.table import GUARANTEES, write_table

ROOT = Path(__file__).resolve().parents[2]
BOOT = Path(__file__).resolve().parent / "boot"
TEST_TIMEOUT_S = 180


@dataclass(frozen=True)
class Verdict:
    mutation: str
    caught_by: str | None
    seconds: float
    output: str


def _listed(test: str, node_ids: tuple[str, ...]) -> bool:
    """Whether `test` is one of `node_ids`, or a parametrized case of one of them."""
    return any(test == node or test.startswith(f"{node}[") for node in node_ids)


def run_one(name: str, mechanism: Mechanism) -> Verdict:
    """Run the mechanism's catching tests under its mutation; the first failure is the catch."""
    env = dict(os.environ)
    env[MUTATION_ENV] = name
    env["PYTHONPATH"] = os.pathsep.join([str(BOOT), str(ROOT), env.get("PYTHONPATH", "")])
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        "-o",
        f"timeout={TEST_TIMEOUT_S}",
        "-rf",
        *mechanism.caught_by,
    ]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    caught = None
    if done.returncode == 1:
        failed = [
            line.split()[1] for line in done.stdout.splitlines() if line.startswith("FAILED ")
        ]
        caught = next((test for test in failed if _listed(test, mechanism.caught_by)), None)
    return Verdict(name, caught, seconds, output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.prove", description=__doc__)
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="print the registry and exit")
    parser.add_argument("--write-doc", action="store_true", help=f"regenerate {GUARANTEES}")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="mutations run at once")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="first run the catching tests unmutated: a failing one would prove nothing",
    )
    args = parser.parse_args(argv)
    registry = mutations()
    if args.write_doc:
        write_table()
        print(f"wrote the promise table of {GUARANTEES}")
        return 0
    if args.list:
        for name, (promise, mechanism) in registry.items():
            print(f"{promise.number:>2}  {name:<32} {', '.join(mechanism.caught_by)}")
        return 0
    unknown = sorted(set(args.names) - set(registry))
    if unknown:
        parser.error(f"unknown mutation(s): {', '.join(unknown)}")
    chosen = {n: registry[n][1] for n in (args.names or registry)}
    for mechanism in chosen.values():
        mechanism.mutation.check()  # fails fast when a snippet no longer matches the code
    started = time.monotonic()
    if args.baseline:
        tests = sorted({test for m in chosen.values() for test in m.caught_by})
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
        if subprocess.run(command, cwd=ROOT, check=False).returncode != 0:
            print("the catching tests fail without any mutation: nothing can be proved")
            return 2
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        verdicts = list(pool.map(lambda item: run_one(*item), chosen.items()))
    survivors = [v for v in verdicts if v.caught_by is None]
    for verdict in verdicts:
        where = verdict.caught_by or "SURVIVED: no catching test failed"
        mark = "caught  " if verdict.caught_by else "SURVIVED"
        print(f"{mark} {verdict.mutation:<32} {verdict.seconds:5.1f}s  {where}")
    for verdict in survivors:
        print(f"\n--- {verdict.mutation}: output of its run ---\n{verdict.output[-4000:]}")
    print(
        f"\n{len(verdicts) - len(survivors)}/{len(verdicts)} mutations caught "
        f"in {time.monotonic() - started:.0f}s"
    )
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
