"""`python -m tests.prove`: run each mutation's catching tests with the mutation applied.

    python -m tests.prove                 # every mutation, two at a time; fails if one survives
    python -m tests.prove NAME [NAME...]  # only these
    python -m tests.prove --baseline      # first check the catching tests pass unmutated
    python -m tests.prove --list          # the registry
    python -m tests.prove --write-doc     # regenerate the promise table of docs/guarantees.md

Each mutation runs in one pytest process of its own (`-x`: the first failing test is the catch)
with the mutation installed before any module it edits is imported. Where the platform can fork,
that process is forked from this one after it has imported the third-party libraries every run
needs (pytest, hypothesis, moto, boto3, pyarrow, ...; never a module a mutation edits): each run
starts from those imports instead of paying ~2 s of interpreter start and imports again.
Otherwise it is a fresh interpreter with `boot/` on `PYTHONPATH`, whose `sitecustomize.py`
installs the mutation. Either way `SLUICE_PROVE_MUTATION` names the mutation and `boot/` is on
`PYTHONPATH`, so the Python processes a test starts (`mutation_env()`) run the mutant too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.prove import MUTATION_ENV
from tests.prove.registry import Mechanism, mutation_named, mutations
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


def _pytest_args(mechanism: Mechanism) -> list[str]:
    return [
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        "-o",
        f"timeout={TEST_TIMEOUT_S}",
        "-rf",
        *mechanism.caught_by,
    ]


def _mutation_environ(name: str) -> dict[str, str]:
    """What a process running the mutation `name` needs in its environment (and passes on)."""
    path = os.pathsep.join([str(BOOT), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {MUTATION_ENV: name, "PYTHONPATH": path}


def _verdict(
    name: str, mechanism: Mechanism, returncode: int, output: str, seconds: float
) -> Verdict:
    """The catch is the first failed test that is one of the mechanism's (exit 1: tests failed;
    any other exit, such as a collection error, catches nothing)."""
    caught = None
    if returncode == 1:
        failed = [line.split()[1] for line in output.splitlines() if line.startswith("FAILED ")]
        caught = next((test for test in failed if _listed(test, mechanism.caught_by)), None)
    return Verdict(name, caught, seconds, output)


def run_one(name: str, mechanism: Mechanism) -> Verdict:
    """Run the mechanism's catching tests under its mutation in a fresh interpreter."""
    env = {**os.environ, **_mutation_environ(name)}
    command = [sys.executable, "-m", "pytest", *_pytest_args(mechanism)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    return _verdict(name, mechanism, done.returncode, done.stdout + done.stderr, seconds)


# Imported once before the forks: third-party libraries the catching tests (or the modules they
# import) load anyway. Never a project module: a mutation must be installed before the module it
# edits, or anything importing it, is imported (`preload` checks).
PRELOAD = (
    "pytest",
    "hypothesis",
    "hypothesis.strategies",
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.csv",
    "aiohttp",
    "urllib3",
    "botocore.session",
    "boto3",
    "aiobotocore.session",
    "aioboto3",
    "pydantic",
    "aws_lambda_powertools",
    "moto",
    "moto.server",
    "tenacity",
    "orjson",
    "click",
    "yaml",
    "jsonschema",
)


def preload(edited: set[str]) -> None:
    """Import `PRELOAD` (what is not installed is skipped: this only saves time). Raises
    RuntimeError when that imported a module a mutation edits."""
    import importlib

    for module in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    early = sorted(edited & set(sys.modules))
    if early:
        raise RuntimeError(f"preloading imported {', '.join(early)}, which mutations edit")


def _fork(name: str, mechanism: Mechanism, log: Path) -> int:
    """Fork a process that installs the mutation `name`, runs the mechanism's catching tests with
    pytest (output to `log`) and exits with pytest's status; returns its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    pid = os.fork()
    if pid:
        os.close(fd)
        return pid
    status = 3
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.chdir(ROOT)
        os.environ.update(_mutation_environ(name))
        mutation_named(name).install()
        import pytest

        # pytest rewrites the asserts of its plugins' packages when it imports them; the ones
        # preloaded here (hypothesis) keep their plain asserts, which is all that warning says.
        args = ["-W", "ignore::pytest.PytestAssertRewriteWarning", *_pytest_args(mechanism)]
        status = int(pytest.main(args))
    except BaseException:  # reported in the log; the exit status says the run failed
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def run_forked(chosen: dict[str, Mechanism], jobs: int) -> list[Verdict]:
    """Every mutation in `chosen` in a forked process, `jobs` at a time, the slowest tiers first
    (so the last ones to finish are short); verdicts in the order of `chosen`."""
    preload({edit.module for m in chosen.values() for edit in m.mutation.edits})
    waiting = sorted(chosen, key=lambda name: _tier(chosen[name]))
    running: dict[int, tuple[str, float, Path]] = {}
    verdicts: dict[str, Verdict] = {}
    with tempfile.TemporaryDirectory(prefix="sluice-prove-") as logs:
        while waiting or running:
            while waiting and len(running) < jobs:
                name = waiting.pop(0)
                log = Path(logs) / f"{name}.log"
                running[_fork(name, chosen[name], log)] = (name, time.monotonic(), log)
            pid, status = os.wait()
            if pid not in running:
                continue
            name, started, log = running.pop(pid)
            output = log.read_text(errors="replace")
            returncode = os.waitstatus_to_exitcode(status)
            seconds = time.monotonic() - started
            verdicts[name] = _verdict(name, chosen[name], returncode, output, seconds)
    return [verdicts[name] for name in chosen]


TIERS = ("tests/e2e/", "tests/reliability/", "tests/integration/")


def _tier(mechanism: Mechanism) -> int:
    """How slow the mechanism's first catching test's tier is: 0 slowest (whole runtimes)."""
    first = mechanism.caught_by[0]
    return next((rank for rank, tier in enumerate(TIERS) if first.startswith(tier)), len(TIERS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.prove", description=__doc__)
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="print the registry and exit")
    parser.add_argument("--write-doc", action="store_true", help=f"regenerate {GUARANTEES}")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="mutations run at once")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="run each mutation in a fresh interpreter instead of a fork of this process",
    )
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
    jobs = max(1, args.jobs)
    if hasattr(os, "fork") and not args.fresh:
        verdicts = run_forked(chosen, jobs)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
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
