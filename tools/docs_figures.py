"""README figures generated from the bench RESULTS files: one source for every figure.

    python -m tools.docs_figures            # rewrite README.md's figure blocks (make docs-figures)
    python -m tools.docs_figures --check    # exit 1, naming each block, when README disagrees

README.md holds blocks `<!-- begin:figures:NAME -->` … `<!-- end:figures:NAME -->`; each is
rendered here from a section of a RESULTS file (a `<!-- begin:SECTION -->` block that a benchmark
writes: `- date:`, `- tree:`, `- load:` lines and a markdown table). Every block states the run's
date, tree and load. Targets are stated once, in `TARGETS`, and judged from the figures: a verdict
is never typed by hand. `tests/unit/supply/test_docs_figures.py` runs the check in `make test`.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
BENCH = REPO_ROOT / "bench"

# Targets of the data path, the batch path, the event path and cold starts (issue-level goals;
# README and RESULTS state them met or not met from the figures).
TARGETS = {
    "floor_ratio": 3.0,  # Sluice CPU ≤ 3× the floor's (5M rows, 1 core)
    "pandas_ratio": 5.0,  # pandas uses ≥ 5× Sluice's CPU
    "two_core_speedup": 1.6,  # real-time path ≥ 1.6× faster on 2 cores than on 1 (wall)
    "peer_margin_2_cores": 0.10,  # within 10 % of the strongest polars and DuckDB at 2 cores
    "memory_mb": 300,  # peak RSS on a 2 GB CSV
    "batch_ratio": 0.65,  # 2 batch workers take ≤ 0.65× the 1-worker time
    "events_per_s": 500,  # custom events accepted by the bus, zero loss
    "files_per_s": 20,  # small files end to end
    "requests_per_file": 15,  # pipeline requests per small file (functions' + the upload)
    # Handler ms per small file, the four functions summed: half the 520 ms (ingest 55, validate
    # 166, transform 146, output 153) measured on an idle box before the small-file work.
    "handler_ms_per_file": 260,
    "import_s": 0.3,  # handler import, per function
}


# Sections computed from another section of the same file (no run of their own): they state no
# date, tree or load; the section they come from does.
DERIVED_SECTIONS = {"targets": "speed"}


class FiguresError(Exception):
    """A RESULTS file lacks a section, a fact or a row the README needs."""


@dataclass(frozen=True)
class Section:
    """One `<!-- begin:NAME -->` block of a RESULTS file."""

    source: str  # e.g. bench/RESULTS.md
    name: str
    facts: dict[str, str]  # the `- key: value` lines
    rows: list[dict[str, str]]  # the first table, by header
    text: str

    def fact(self, key: str) -> str:
        if key not in self.facts:
            raise FiguresError(f"{self.source} [{self.name}] states no `- {key}:` line")
        return self.facts[key]

    def provenance(self) -> str:
        """`<date>, tree <commit>, load <load>`: every figure block says where it came from."""
        return (
            f"[{self.source.removeprefix('bench/')}]({self.source}): {self.fact('date')}; "
            f"tree {self.fact('tree')}; load {self.fact('load')}"
        )


def section(path: Path, name: str) -> Section:
    """Parse the `name` block of the RESULTS file at `path`. Raises FiguresError if absent."""
    source = f"bench/{path.name}"  # every RESULTS file lives in bench/
    if not path.exists():
        raise FiguresError(f"{source} does not exist (run its benchmark with --write)")
    text = path.read_text(encoding="utf-8")
    found = re.search(
        rf"<!-- begin:{re.escape(name)} -->\n(.*?)<!-- end:{re.escape(name)} -->", text, re.S
    )
    if found is None:
        raise FiguresError(f"{source} has no `<!-- begin:{name} -->` section")
    body = found.group(1)
    facts: dict[str, str] = {}
    for line in body.splitlines():
        fact = re.match(r"^- ([a-z][a-z ]*): (.+)$", line)
        if fact:
            facts.setdefault(fact.group(1), fact.group(2).strip())
    return Section(source, name, facts, _first_table(body), body)


def _first_table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    if len(lines) < 2:
        return []
    header = _cells(lines[0])
    return [dict(zip(header, _cells(line), strict=False)) for line in lines[2:]]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def number(text: str) -> float:
    """The first number in a cell (`1,037`, `**13.42**`, `71.5 s`, `0.64x`)."""
    found = re.search(r"-?\d[\d,]*(?:\.\d+)?", text)
    if found is None:
        raise FiguresError(f"no number in {text!r}")
    return float(found.group(0).replace(",", ""))


def maybe_number(text: str) -> float | None:
    """`number(text)`, or None for a cell without one (`—`: the run gave no figure)."""
    try:
        return number(text)
    except FiguresError:
        return None


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _rows(speed: Section, *, prefix: str, cores: int) -> list[dict[str, str]]:
    """Rows of engines named `prefix…` at `cores`, with a CPU and a wall figure."""
    return [
        r
        for r in speed.rows
        if r.get("engine", "").startswith(prefix)
        and maybe_number(r.get("cores", "")) == cores
        and maybe_number(r.get("CPU s", "")) is not None
        and maybe_number(r.get("seconds", "")) is not None
    ]


def _one(speed: Section, engine: str, cores: int) -> dict[str, str] | None:
    exact = [r for r in _rows(speed, prefix=engine, cores=cores) if r["engine"] == engine]
    return exact[0] if exact else None


def _size(cell: str) -> str:
    """A `peak RSS MB` cell as MB or GB (`—` stays)."""
    mb = maybe_number(cell)
    if mb is None:
        return cell
    return f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb:.0f} MB"


# ------------------------------------------------------------------------------ the blocks


def block_speed() -> str:
    """Every engine of the speed run, 1 and 2 cores."""
    speed = section(BENCH / "RESULTS.md", "speed")
    lines = [
        f"The speed run ({speed.provenance()}). CPU seconds of the job, imports excluded, are",
        "the steadier measure on a shared box:",
        "",
        *_engine_table(speed),
    ]
    return "\n".join(lines)


def block_jsonl() -> str:
    """The JSON Lines job (sensor_readings), when RESULTS.md has its section."""
    try:
        jsonl = section(BENCH / "RESULTS.md", "jsonl")
    except FiguresError:
        return "The JSON Lines job (sensor_readings) has no run in bench/RESULTS.md yet."
    return "\n".join(
        [f"The JSON Lines job, sensor_readings ({jsonl.provenance()}):", "", *_engine_table(jsonl)]
    )


def _engine_table(run: Section) -> list[str]:
    lines = [
        "| engine | cores | CPU s | wall s | peak RSS | CPU × Sluice (1 core) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for row in run.rows:
        engine = row["engine"]
        label = f"**{engine}**" if engine == "sluice" else engine
        prefix = re.search(r"ran ([\d,]+) rows", row.get("note", ""))
        if prefix:
            label += " ¹"
            notes.append(
                f"¹ {engine}: run on the first {prefix.group(1)} rows; its time is extrapolated "
                "to the whole input and its peak RSS is that prefix's."
            )
        lines.append(
            f"| {label} | {row['cores']} | {row['CPU s']} | {row['seconds']} "
            f"| {_size(row['peak RSS MB'])} | {row['CPU × Sluice (1 core)']} |"
        )
    notes = list(dict.fromkeys(notes))  # one footnote per engine, not per row (1 and 2 cores)
    return [*lines, *(["", *notes] if notes else [])]


def block_targets() -> str:
    """The data-path targets: the targets section `bench.datapath` computes from the speed run
    when RESULTS.md has one (else the same judgement made here), plus pandas and memory."""
    speed = section(BENCH / "RESULTS.md", "speed")
    memory = section(BENCH / "RESULTS.md", "memory")
    sluice1 = _one(speed, "sluice", 1)
    if sluice1 is None:
        raise FiguresError("bench/RESULTS.md [speed] has no 1-core sluice row")
    cpu1 = number(sluice1["CPU s"])
    try:
        judged = section(BENCH / "RESULTS.md", "targets").rows
    except FiguresError:
        judged = []
    out = (
        [f"- {r['target']}: {r['result']} — {r['figures']}" for r in judged]
        if judged
        else _judge_speed(speed, sluice1)
    )

    pandas = _one(speed, "pandas", 1)
    if pandas is not None:
        ratio = number(pandas["CPU s"]) / cpu1
        out.append(
            f"- {TARGETS['pandas_ratio']:g}× less CPU than pandas:"
            f" {verdict(ratio >= TARGETS['pandas_ratio'])} — {ratio:.1f}×"
        )
    peak = re.search(r"Peak RSS ([\d,]+) MB for ([\d.]+ GB)", memory.text)
    if peak is None:
        raise FiguresError("bench/RESULTS.md [memory] states no `Peak RSS <n> MB for <size> GB`")
    mb = number(peak.group(1))
    out.append(
        f"- constant memory, peak RSS < {TARGETS['memory_mb']} MB on a {peak.group(2)} CSV:"
        f" {verdict(mb < TARGETS['memory_mb'])} — {mb:.0f} MB ({memory.provenance()})"
    )
    return "\n".join(["Against the data-path targets (judged from the runs above):", "", *out])


def _judge_speed(speed: Section, sluice1: dict[str, str]) -> list[str]:
    """The speed targets judged here, for a RESULTS.md without a targets section."""
    cpu1 = number(sluice1["CPU s"])

    def strongest(prefix: str, cores: int, column: str) -> tuple[str, float] | None:
        rows = _rows(speed, prefix=prefix, cores=cores)
        if not rows:
            return None
        best = min(rows, key=lambda r: number(r[column]))
        return best["engine"], number(best[column])

    out: list[str] = []
    peers = [p for p in (strongest("polars", 1, "CPU s"), strongest("duckdb", 1, "CPU s")) if p]
    if peers:
        ahead = all(cpu1 <= cpu for _, cpu in peers)
        against = ", ".join(f"{engine} {cpu:.1f}" for engine, cpu in peers)
        out.append(
            f"- ahead of the strongest polars and DuckDB forms at 1 core (CPU s): {verdict(ahead)}"
            f" — Sluice {cpu1:.1f} vs {against}"
        )
    floor = _one(speed, "floor: pyarrow read+write", 1) or next(
        iter(_rows(speed, prefix="floor", cores=1)), None
    )
    if floor is not None:
        ratio = cpu1 / number(floor["CPU s"])
        out.append(
            f"- CPU ≤ {TARGETS['floor_ratio']:g}× the floor's (typed read + one write, no checks):"
            f" {verdict(ratio <= TARGETS['floor_ratio'])} — {ratio:.1f}×"
            f" ({cpu1:.1f} vs {number(floor['CPU s']):.1f} CPU s)"
        )
    sluice2 = _one(speed, "sluice", 2)
    if sluice2 is not None:
        speedup = number(sluice1["seconds"]) / number(sluice2["seconds"])
        out.append(
            f"- real-time path ≥ {TARGETS['two_core_speedup']:g}× faster on 2 cores than on 1:"
            f" {verdict(speedup >= TARGETS['two_core_speedup'])} — {speedup:.2f}×"
            f" ({sluice1['seconds']} → {sluice2['seconds']} s)"
        )
        wall2 = number(sluice2["seconds"])
        peers2 = [
            p for p in (strongest("polars", 2, "seconds"), strongest("duckdb", 2, "seconds")) if p
        ]
        if peers2:
            margin = TARGETS["peer_margin_2_cores"]
            within = all(wall2 <= wall * (1 + margin) for _, wall in peers2)
            against = ", ".join(f"{engine} {wall:.2f}" for engine, wall in peers2)
            out.append(
                f"- within {margin:.0%} of the strongest polars and DuckDB at 2 cores (wall s):"
                f" {verdict(within)} — Sluice {wall2:.2f} vs {against}"
            )
    return out


def block_batch() -> str:
    batch = section(BENCH / "RESULTS-batch.md", "batch")
    by_workers = {int(number(r["workers"])): r for r in batch.rows}
    if 1 not in by_workers or 2 not in by_workers:
        raise FiguresError("bench/RESULTS-batch.md [batch] needs the 1- and 2-worker rows")
    one, two = number(by_workers[1]["wall time"]), number(by_workers[2]["wall time"])
    ratio = two / one
    peak = re.search(r"Peak RSS of any batch worker: \*\*([\d,]+) MB", batch.text)
    if peak is None:
        raise FiguresError("bench/RESULTS-batch.md [batch] states no peak RSS of any worker")
    mb = number(peak.group(1))
    identical = re.search(r"whole-file processing[^:]*: \*\*(\w+)\*\*", batch.text)
    same = identical.group(1) if identical else "not checked"
    return (
        f"The batch path on a 2 GB CSV through the local runtime ({batch.provenance()}): "
        f"2 workers take **{ratio:.2f}×** the 1-worker time ({one:.1f} → {two:.1f} s; target "
        f"{TARGETS['batch_ratio']:g}×: {verdict(ratio <= TARGETS['batch_ratio'])}), every worker "
        f"peaks at or under **{mb:.0f} MB** (target < {TARGETS['memory_mb']} MB: "
        f"{verdict(mb < TARGETS['memory_mb'])}), and the Parquet is identical row for row to the "
        f"whole-file run: {same}."
    )


def block_events() -> str:
    events = section(BENCH / "RESULTS-events.md", "latest")
    figures = {r["figure"]: r["value"] for r in events.rows}

    def get(name: str) -> str:
        if name not in figures:
            raise FiguresError(f"bench/RESULTS-events.md [latest] has no `{name}` row")
        return figures[name]

    files_s = number(get("small files/s"))
    events_s = number(get("custom events/s"))
    # The pipeline's own requests (the functions' and the upload) when the run told callers
    # apart; the benchmark's polling of the ledger is not a cost of the file.
    pipeline = figures.get("pipeline requests per file", "-")
    requests = number(pipeline if pipeline != "-" else get("endpoint requests per file"))
    handler_ms = sum(
        number(part.split()[-1]) for part in get("handler ms per file").split(",") if part.strip()
    )
    lost = int(number(get("events lost"))) + int(number(get("events duplicated")))
    return "\n".join(
        [
            f"Event path ({events.fact('command')}; {events.provenance()}):",
            "",
            f"- custom events accepted by the bus: **{get('custom events/s')} events/s**, "
            f"{get('events lost')} lost, {get('events duplicated')} duplicated (target "
            f"{TARGETS['events_per_s']}, zero loss: "
            f"{verdict(events_s >= TARGETS['events_per_s'] and lost == 0)})",
            f"- small files end to end: **{get('small files/s')} files/s** for a burst of "
            f"{get('files')} files of {get('rows per file')} rows, {get('files completed')} "
            f"completed (target {TARGETS['files_per_s']}: "
            f"{verdict(files_s >= TARGETS['files_per_s'])}; files/s depends on the machine)",
            f"- per small file, the figures of record: **{get('CPU-s per file')} CPU-s** "
            f"(runtime {get('runtime CPU-s per file')}, functions "
            f"{get('functions CPU-s per file')}) and **{requests:g} requests** "
            + (
                "made by the pipeline (the four functions' and the upload; "
                f"{get('endpoint requests per file')} at the endpoint in all, with the "
                "benchmark's polling"
                if pipeline != "-"
                else "at the endpoint (with the benchmark's polling"
            )
            + f"; by action: {get('requests per file by action')}"
            + (
                f"; by caller: {figures['requests per file by caller']}"
                if "requests per file by caller" in figures
                else ""
            )
            + f"; target ≤ {TARGETS['requests_per_file']}: "
            f"{verdict(requests <= TARGETS['requests_per_file'])})",
            f"- handler ms per file: {get('handler ms per file')}; **{handler_ms:.0f} ms** in all "
            f"(target ≤ {TARGETS['handler_ms_per_file']}, half of 520 ms before the small-file "
            f"work: {verdict(handler_ms <= TARGETS['handler_ms_per_file'])})",
            *(
                [f"- worker CPU ms per file: {figures['worker CPU ms per file by function']}"]
                if "worker CPU ms per file by function" in figures
                else []
            ),
        ]
    )


def block_cold_start() -> str:
    """Handler import per function (X-Ray off as locally, on as deployed), median of fresh
    interpreters, with the CPU seconds and the whole cold start's CPU."""
    cold = section(BENCH / "RESULTS-cold-start.md", "cold-start")
    lines = [
        f"Cold starts (`python -m bench.cold_start`; {cold.provenance()}), median of fresh "
        "interpreters:",
        "",
        "| function | handler import s | import CPU s "
        "| cold start CPU s (import, clients, data path) |",
        "|---|---:|---:|---:|",
    ]
    met = True
    for row in cold.rows:
        seconds = number(row["import s"])
        met = met and seconds <= TARGETS["import_s"]
        lines.append(
            f"| {row['function']} | {seconds:.2f} | {number(row['import CPU s']):.2f} "
            f"| {number(row['total CPU s']):.2f} |"
        )
    lines += [
        "",
        f"Target: handler import ≤ {TARGETS['import_s']:g} s per function: {verdict(met)} "
        "(wall time, which follows the shared box's load; CPU seconds much less).",
    ]
    return "\n".join(lines)


BLOCKS = {
    "speed": block_speed,
    "jsonl": block_jsonl,
    "targets": block_targets,
    "batch": block_batch,
    "events": block_events,
    "cold-start": block_cold_start,
}


def render(readme: str) -> str:
    """`readme` with every figure block re-rendered. Raises FiguresError for a block README
    has not got or a RESULTS file that lacks what a block needs."""
    for name, build in BLOCKS.items():
        begin, end = f"<!-- begin:figures:{name} -->", f"<!-- end:figures:{name} -->"
        if readme.count(begin) != 1 or readme.count(end) != 1:
            raise FiguresError(f"README.md needs exactly one {begin} … {end} block")
        head, rest = readme.split(begin)
        _, tail = rest.split(end)
        readme = f"{head}{begin}\n{build()}\n{end}{tail}"
    return readme


def stale_blocks(readme: str, rendered: str) -> list[str]:
    """Names of the blocks whose text differs between `readme` and `rendered`."""
    names = []
    for name in BLOCKS:
        pattern = re.compile(rf"<!-- begin:figures:{name} -->.*?<!-- end:figures:{name} -->", re.S)
        mine, theirs = pattern.search(readme), pattern.search(rendered)
        if mine is None or theirs is None or mine.group(0) != theirs.group(0):
            names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when README disagrees")
    args = parser.parse_args(argv)
    current = README.read_text(encoding="utf-8")
    try:
        rendered = render(current)
    except FiguresError as error:
        print(f"docs figures: {error}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_blocks(current, rendered)
        if stale:
            print(
                f"README.md figures disagree with the RESULTS files: {', '.join(stale)} "
                "(run `make docs-figures`)",
                file=sys.stderr,
            )
            return 1
        return 0
    if rendered != current:
        README.write_text(rendered, encoding="utf-8")
        print("README.md figures rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
