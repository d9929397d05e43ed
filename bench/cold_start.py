"""Cold-start benchmark: what each real-time function's execution environment pays before its
first record, measured from a fresh interpreter per run.

    .venv/bin/python -m bench.cold_start                 # 7 runs per function, medians
    .venv/bin/python -m bench.cold_start --runs 11 --functions validate,output
    .venv/bin/python -m bench.cold_start --write         # also bench/RESULTS-cold-start.md

Each run starts a fresh `python -c` (`CHILD`) with the environment the local
runtime gives a function worker (`sluice.local.runner`: dummy credentials, X-Ray tracing off)
plus the variables the function's template sets, and with numpy and pandas made unimportable
(the deployed layer ships neither, `tools/layer.py`); every function is measured again with
X-Ray tracing on, as deployed (`Tracing: Active`; the rows marked "X-Ray on"). The child
measures, with `time.perf_counter` (wall) and `time.process_time` (CPU of the process):

- **import**: `import sluice_<function>.handler`, what Lambda's init phase runs (the target,
  ≤ 0.3 s per handler on the project's 2-core box);
- **clients**: opening the function's dependencies (`Runtime.deps()`: the AWS clients and their
  libraries, the contract catalog), which the first invocation does before its first record.
  Nothing is sent: creating a client makes no request;
- **data path**: importing the data-path modules the stage loads with its first file
  (`FIRST_FILE_MODULES`: pyarrow and the stage's Arrow code), not at import;
- **total**: the three together, what a cold execution environment spends before its first
  record's own work.

The parent runs the configurations round-robin (a burst of load costs each one sample) and
prints the median, minimum and maximum of each over the runs, with the load average before and
after (wall times move with the load; CPU seconds much less).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

from bench import sections

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "RESULTS-cold-start.md"
FUNCTIONS = ("ingest", "validate", "transform", "output")
TARGET_IMPORT_S = 0.3
# The deployed layer has neither (tools/layer.py FORBIDDEN_PACKAGES).
ABSENT = frozenset({"numpy", "pandas"})
# What each function imports on its first file rather than at import (its domain step's lazy
# imports): measured apart, so moving an import out of the init phase shows where it went.
FIRST_FILE_MODULES: dict[str, tuple[str, ...]] = {
    "ingest": (),
    "validate": ("sluice_shared.datapath.validate",),
    "transform": ("sluice_shared.datapath.transform",),
    "output": ("sluice_shared.datapath.output",),
}


def function_env(function: str, *, xray: bool = False) -> dict[str, str]:
    """A function worker's environment: the local runner's base plus the template's variables
    (resource names are placeholders; nothing is contacted). `xray`: tracing on, as deployed
    (`Tracing: Active`: Lambda sets LAMBDA_TASK_ROOT and Powertools traces), instead of the
    local runner's POWERTOOLS_TRACE_DISABLED."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONUNBUFFERED": "1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": function,
        "POWERTOOLS_METRICS_NAMESPACE": "Sluice",
        "LOG_LEVEL": "INFO",
        "SLUICE_RAW_BUCKET": "sluice-bench-raw",
        "SLUICE_WORK_BUCKET": "sluice-bench-work",
        "SLUICE_PROCESSED_BUCKET": "sluice-bench-processed",
        "SLUICE_ERROR_BUCKET": "sluice-bench-error",
        "SLUICE_EVENT_BUS": "sluice-bench-bus",
        "SLUICE_LEDGER_TABLE": "sluice-bench-ledger",
        "SLUICE_DLQ_URL": f"http://127.0.0.1:9/123456789012/sluice-bench-{function}-dlq",
    }
    if xray:
        del env["POWERTOOLS_TRACE_DISABLED"]
        env["LAMBDA_TASK_ROOT"] = str(REPO_ROOT)
        env["AWS_XRAY_CONTEXT_MISSING"] = "IGNORE_ERROR"
    if function == "ingest":
        env["SLUICE_BATCH_THRESHOLD_BYTES"] = str(100 * 2**20)
        env["SLUICE_BATCH_STATE_MACHINE_ARN"] = (
            "arn:aws:states:us-east-1:123456789012:stateMachine:sluice-bench-batch"
        )
    return env


# What the child runs: nothing is imported before the clock starts but what every interpreter
# has loaded at start-up (`sys`, `time`), so no module the handler needs is pre-loaded.
CHILD = """
import sys, time
class Absent:
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in {absent!r}:
            raise ModuleNotFoundError("No module named " + repr(fullname), name=fullname)
        return None
sys.meta_path.insert(0, Absent())
wall0, cpu0 = time.perf_counter(), time.process_time()
import sluice_{function}.handler as handler
wall1, cpu1 = time.perf_counter(), time.process_time()
runtime = handler.runtime if hasattr(handler, "runtime") else handler.service.runtime
runtime.run(runtime.deps())
wall2, cpu2 = time.perf_counter(), time.process_time()
import importlib
for name in {first_file!r}:
    importlib.import_module(name)
wall3, cpu3 = time.perf_counter(), time.process_time()
runtime.close()
import json
print(json.dumps({{"import_s": wall1 - wall0, "import_cpu_s": cpu1 - cpu0,
    "clients_s": wall2 - wall1, "clients_cpu_s": cpu2 - cpu1,
    "datapath_s": wall3 - wall2, "datapath_cpu_s": cpu3 - cpu2,
    "total_s": wall3 - wall0, "total_cpu_s": cpu3 - cpu0}}))
"""


def measure(
    function: str, runs: int, *, xray: bool = False, tree: Path | None = None
) -> list[dict[str, float]]:
    """`runs` fresh interpreters for `function`, one after another; `tree`: import the
    project from that checkout instead of this one (a before/after comparison)."""
    env = function_env(function, xray=xray)
    if tree is not None:
        code = [tree, *sorted(p for p in (tree / "services").iterdir() if p.is_dir())]
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in code)
    results = []
    for _ in range(runs):
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD.format(
                    function=function,
                    absent=sorted(ABSENT),
                    first_file=FIRST_FILE_MODULES[function],
                ),
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{function}: the child failed:\n{proc.stderr[-2000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def table(measured: dict[str, list[dict[str, float]]]) -> list[str]:
    """Markdown rows: per function, median (min–max) of each figure and the verdict."""
    phases = ("import", "clients", "datapath", "total")
    lines = [
        "| function | import s | import CPU s | clients s | clients CPU s | data path s "
        "| data path CPU s | total s | total CPU s | import ≤ 0.3 s |",
        "|---|" + "---:|" * 2 * len(phases) + "---|",
    ]
    for function, runs in measured.items():
        cells = [
            _stats([r[f"{phase}{unit}"] for r in runs])
            for phase in phases
            for unit in ("_s", "_cpu_s")
        ]
        imports = statistics.median(r["import_s"] for r in runs)
        verdict = "met" if imports <= TARGET_IMPORT_S else "not met"
        lines.append(f"| {function} | {' | '.join(cells)} | {verdict} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per function")
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS-cold-start.md")
    parser.add_argument(
        "--tree", type=Path, help="measure another checkout of the project (e.g. an older commit)"
    )
    args = parser.parse_args(argv)
    functions = [f.strip() for f in args.functions.split(",") if f.strip()]
    unknown = sorted(set(functions) - set(FUNCTIONS))
    if args.tree is not None and args.write:
        parser.error("--tree measures another checkout: its figures are not this tree's RESULTS")
    if unknown or args.runs < 1:
        parser.error(f"unknown functions {unknown}" if unknown else "--runs must be ≥ 1")
    started, load_before = sections.now(), sections.load()
    # Round-robin, one run of every configuration per round: a burst of load on the shared box
    # then costs each configuration one sample, not one configuration all of its samples.
    configs = [(function, xray) for function in functions for xray in (False, True)]
    measured: dict[str, list[dict[str, float]]] = {
        f"{function}{', X-Ray on' if xray else ''}": [] for function, xray in configs
    }
    for _ in range(args.runs):
        for function, xray in configs:
            label = f"{function}{', X-Ray on' if xray else ''}"
            measured[label] += measure(function, 1, xray=xray, tree=args.tree)
    header = [
        f"- date: {started}",
        f"- tree: {sections.tree() if args.tree is None else args.tree}",
        f"- load: before {load_before}; after {sections.load()}",
        f"- machine: {platform.machine()}, Python {platform.python_version()}; "
        f"{args.runs} fresh interpreters per function, median (min–max)",
    ]
    rows = table(measured)
    print("\n".join([*header, "", *rows]))
    if args.write:
        if not RESULTS.exists():
            RESULTS.write_text(render(header, rows), encoding="utf-8")
        # The figures between the markers; the reading around them stays.
        sections.replace_section(RESULTS, "cold-start", "\n".join([*header, "", *rows]))
        print(f"wrote {RESULTS.relative_to(REPO_ROOT)}")
    return 0


def render(header: list[str], rows: list[str]) -> str:
    """The RESULTS file: how it was measured, then the figures."""
    return "\n".join(
        [
            "# Cold starts of the real-time functions",
            "",
            "Written by `python -m bench.cold_start --write` (see its docstring). Each run is a",
            "fresh interpreter with a function worker's environment (X-Ray off, as locally; the",
            "rows marked X-Ray on have tracing on, as deployed) and without numpy or pandas (as in",
            "the deployed layer). **import** is",
            "`import sluice_<function>.handler` (Lambda's init phase; target ≤ 0.3 s); **clients**",
            "is opening the AWS clients and their libraries, which the first invocation does",
            "before its first record (no request is sent); **data path** is importing the Arrow",
            "code the stage loads with its first file; **total** is all three. Wall seconds move",
            "with the load; CPU seconds (of the process) much less.",
            "",
            "<!-- begin:cold-start -->",
            *header,
            "",
            *rows,
            "<!-- end:cold-start -->",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
