"""Module durations, so that `make test`'s xdist workers start the long modules first.

`--dist loadfile` hands whole modules to the workers in collection order; a long module handed
out last keeps one worker busy while the other has nothing left (a one-test module of a minute
did). `tests/conftest.py` orders the collection of each worker by the seconds recorded here,
longest first, and `make test` passes `--no-loadscope-reorder` (xdist would otherwise order by
test count). Only the order changes: every module still runs whole, on one worker.

Refresh after modules are added or change much (the figures need not be exact; the modules of
the report replace theirs, the others are kept):

    .venv/bin/pytest -q -p no:cacheprovider -n 3 --dist loadfile --junitxml=/tmp/t.xml [PATHS]
    .venv/bin/python -m tests.durations /tmp/t.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

FILE = Path(__file__).with_name("durations.json")


@cache
def recorded() -> dict[str, float]:
    """Seconds per module path (`tests/.../test_x.py`), as last recorded."""
    data: dict[str, float] = json.loads(FILE.read_text())
    return data


def seconds(module: str) -> float:
    """A module's recorded seconds; one not recorded yet counts as a long one (it may be)."""
    known = recorded()
    return known.get(module, max(known.values(), default=0.0) / 2)


def from_junit(path: Path) -> dict[str, float]:
    """Seconds per module from a pytest JUnit XML report (setup, call and teardown of each test)."""
    root = FILE.parents[1]
    totals: dict[str, float] = {}
    for case in ET.parse(path).iter("testcase"):
        parts = case.get("classname", "").split(".")  # a class's tests: module.Class
        module = next(
            (
                name
                for depth in range(len(parts), 0, -1)
                if (root / (name := "/".join(parts[:depth]) + ".py")).is_file()
            ),
            None,
        )
        if module is not None:
            totals[module] = totals.get(module, 0.0) + float(case.get("time", 0))
    return {module: round(totals[module], 1) for module in sorted(totals)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.durations JUNIT_XML", file=sys.stderr)
        return 2
    measured = from_junit(Path(argv[0]))
    root = FILE.parents[1]
    # The report's modules replace their figures; the others stay unless their file is gone.
    merged = {m: s for m, s in recorded().items() if (root / m).is_file()} | measured
    FILE.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
    print(f"wrote {len(merged)} module durations ({len(measured)} from the report) to {FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
