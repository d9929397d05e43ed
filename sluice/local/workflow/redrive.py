"""What a redrive needs to restart only what failed: for every path of an execution (the
top level, each Parallel branch, each inline Map iteration, at any depth) the state it was in
and that state's input, and the outputs of the branches and iterations that already succeeded.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html (a redrive
restarts from the unsuccessful step; in Parallel and inline Map states only the unsuccessful
branches and iterations run again) and
https://docs.aws.amazon.com/step-functions/latest/dg/redrive-map-run.html (a Distributed Map
redrives its unsuccessful STANDARD child executions in place).

A path is a tuple of steps, each `(state name, branch or iteration index)`; `()` is the
execution's own top level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Path = tuple[tuple[str, int], ...]


@dataclass
class ResumePoints:
    """Per execution: where each path stood, and what finished paths returned."""

    entered: dict[Path, tuple[str, Any]] = field(default_factory=dict)
    succeeded: dict[Path, Any] = field(default_factory=dict)

    def enter(self, path: Path, state: str, data: Any) -> None:
        """`path` entered `state` with raw input `data`."""
        self.entered[path] = (state, data)

    def restart(self, path: Path) -> tuple[str, Any] | None:
        """Where a redriven path restarts (the state it failed in, with its input)."""
        return self.entered.get(path)

    def finish(self, path: Path, output: Any) -> None:
        """`path` (a branch or iteration) succeeded with `output`."""
        self.succeeded[path] = output
        for key in [k for k in self.entered if k[: len(path)] == path]:
            del self.entered[key]

    def earlier(self, path: Path) -> tuple[bool, Any]:
        """(True, output) when `path` succeeded before the redrive."""
        if path in self.succeeded:
            return True, self.succeeded[path]
        return False, None

    def reset(self, path: Path, state: str) -> None:
        """Forget the branches/iterations of `state` at `path`: it runs afresh (a loop re-entered
        it) or finished (its outputs now live in its result)."""
        for store in (self.entered, self.succeeded):
            for key in [k for k in store if len(k) > len(path) and k[: len(path)] == path]:
                if key[len(path)][0] == state:
                    del store[key]
