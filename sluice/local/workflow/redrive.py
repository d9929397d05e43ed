"""What a redrive needs to restart only what failed: for every path of an execution (the
top level, each Parallel branch, each inline Map iteration, at any depth) the state it was in
and that state's input, the variables of each branch and iteration, and the outputs of the
branches and iterations that already succeeded.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html (a redrive
restarts from the unsuccessful step; in Parallel and inline Map states only the unsuccessful
branches and iterations run again) and
https://docs.aws.amazon.com/step-functions/latest/dg/redrive-map-run.html (a Distributed Map
redrives its unsuccessful STANDARD child executions in place).

A path is a tuple of steps, each `(state name, branch or iteration index)`; `()` is the
execution's own top level. Paths are indexed by parent so that finishing or resetting one
touches only its own subtree (an inline Map of many items stays linear).
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
    # The variables each branch or iteration assigned (its own scope), kept so that a
    # redriven one resumes with the values it failed with.
    variables: dict[Path, dict[str, Any]] = field(default_factory=dict)
    _children: dict[Path, set[Path]] = field(default_factory=dict)

    def scope_values(self, path: Path, *, redrive: bool) -> dict[str, Any]:
        """The variables of branch/iteration `path`: those it had when it failed if it is being
        redriven, else a fresh scope."""
        if redrive and path in self.variables:
            return self.variables[path]
        values: dict[str, Any] = {}
        self.variables[path] = values
        self._link(path)
        return values

    def enter(self, path: Path, state: str, data: Any) -> None:
        """`path` entered `state` with raw input `data`."""
        self.entered[path] = (state, data)
        self._link(path)

    def restart(self, path: Path) -> tuple[str, Any] | None:
        """Where a redriven path restarts (the state it failed in, with its input)."""
        return self.entered.get(path)

    def finish(self, path: Path, output: Any) -> None:
        """`path` (a branch or iteration) succeeded with `output`; its own resume points are
        no longer needed."""
        for child in self._children.pop(path, set()):
            self._forget(child)
        self.entered.pop(path, None)
        self.variables.pop(path, None)
        self.succeeded[path] = output
        self._link(path)

    def earlier(self, path: Path) -> tuple[bool, Any]:
        """(True, output) when `path` succeeded before the redrive."""
        if path in self.succeeded:
            return True, self.succeeded[path]
        return False, None

    def reset(self, path: Path, state: str) -> None:
        """Forget the branches/iterations of `state` at `path`: it runs afresh (a loop re-entered
        it) or finished (its outputs now live in its result)."""
        children = self._children.get(path)
        if not children:
            return
        for child in [c for c in children if c[-1][0] == state]:
            children.discard(child)
            self._forget(child)

    def _link(self, path: Path) -> None:
        if path:
            self._children.setdefault(path[:-1], set()).add(path)

    def _forget(self, path: Path) -> None:
        self.entered.pop(path, None)
        self.succeeded.pop(path, None)
        self.variables.pop(path, None)
        for child in self._children.pop(path, set()):
            self._forget(child)
