"""Workflow variables (`Assign`, `$name`) and their scopes, as Step Functions documents them
(https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html):

- the top-level states of an execution share one scope;
- each Parallel branch and inline Map iteration runs in a scope of its own that reads the
  scopes around it but may not assign their variables (`States.Runtime`), and whose variables
  are gone when it ends;
- a Distributed Map child execution starts with no variables at all;
- a redriven branch or iteration resumes with the variables it had when it failed (the
  execution's resume points keep each one's scope, `redrive.py`);
- a state's `Assign` takes effect when the state ends: everything the state evaluates (its
  Output and Assign included) reads the values it was entered with.
"""

from __future__ import annotations

from collections import ChainMap
from typing import TYPE_CHECKING, Any

from sluice.local.workflow import limits
from sluice.local.workflow.errors import runtime_error
from sluice.local.workflow.models import dumps

if TYPE_CHECKING:
    from collections.abc import Mapping


class Variables:
    """One scope's values, chained to the scopes around it."""

    def __init__(self, values: dict[str, Any] | None = None, parent: Variables | None = None):
        self.values: dict[str, Any] = {} if values is None else values
        self.parent = parent
        # Bytes of each value's JSON (for the 10 MiB quota); filled lazily after a redrive.
        self.sizes: dict[str, int] = {}

    def stored_bytes(self, replacing: Mapping[str, str]) -> int:
        """Bytes of every variable in sight once `replacing` (name → JSON text) is assigned
        here."""
        total = sum(len(text.encode("utf-8")) for text in replacing.values())
        scope: Variables | None = self
        while scope is not None:
            for name, value in scope.values.items():
                if scope is self and name in replacing:
                    continue
                size = scope.sizes.get(name)
                if size is None:
                    size = scope.sizes[name] = len(dumps(value).encode("utf-8"))
                total += size
            scope = scope.parent
        return total

    def view(self) -> Mapping[str, Any]:
        """Every variable in sight, inner scopes first."""
        maps: list[dict[str, Any]] = []
        scope: Variables | None = self
        while scope is not None:
            maps.append(scope.values)
            scope = scope.parent
        return ChainMap(*maps)

    def assign(self, values: Mapping[str, Any], texts: Mapping[str, str], *, state: str) -> None:
        """Apply a state's `Assign` (at the end of the state); `texts` are the values' JSON.

        Raises:
            StatesError: `States.Runtime` when a name belongs to an outer scope;
            `States.DataLimitExceeded` when the variables in sight would exceed 10 MiB.
        """
        scope = self.parent
        while scope is not None:
            for name, value in values.items():
                if name in scope.values:
                    raise runtime_error(
                        f"Cannot bind value '{dumps(value)}' to variable '{name}' as it belongs "
                        "to an outer scope."
                    )
            scope = scope.parent
        limits.check_total(state, self.stored_bytes(texts))
        self.values.update(values)
        self.sizes.update({name: len(text.encode("utf-8")) for name, text in texts.items()})
