"""Mutations: the source of a module edited in memory before anything imports it.

An `Edit` replaces one exact snippet of a module's source (it must occur exactly once, so a
mutation that no longer matches the code fails loudly instead of proving nothing). `install`
puts an import hook first on `sys.meta_path` that loads each edited module from its mutated
source whenever it is first imported; every `from module import name` then gets the mutant.
Files on disk are never touched.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType


class MutationError(RuntimeError):
    """A mutation does not apply to the current source (its snippet is missing or repeated)."""


@dataclass(frozen=True)
class Edit:
    """Replace `old` by `new` in the source of `module` (a dotted module name)."""

    module: str
    old: str
    new: str

    def source_path(self) -> Path:
        """The module's source file, found without importing the module or its packages
        (`python -m tests.prove` checks every mutation before it forks the runs)."""
        parts = self.module.split(".")
        search: Sequence[str] | None = None
        spec = None
        for depth in range(1, len(parts) + 1):
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:depth]), search)
            if spec is None:
                break
            search = spec.submodule_search_locations
        if spec is None or spec.origin is None:
            raise MutationError(f"module {self.module} not found")
        return Path(spec.origin)

    def apply(self, source: str) -> str:
        """`source` with the edit made. Raises MutationError unless `old` occurs exactly once."""
        count = source.count(self.old)
        if count != 1:
            raise MutationError(
                f"{self.module}: the snippet to mutate occurs {count} times, not once: "
                f"{self.old.strip()[:80]!r}"
            )
        return source.replace(self.old, self.new)


@dataclass(frozen=True)
class Mutation:
    """A named way of switching a mechanism off: one or more edits."""

    name: str
    edits: tuple[Edit, ...]

    def check(self) -> None:
        """Raise MutationError when an edit does not apply to the current source."""
        for module, source in self._edited().items():
            compile(source, module, "exec")

    def _edited(self) -> dict[str, str]:
        sources: dict[str, str] = {}
        for edit in self.edits:
            text = sources.get(edit.module)
            if text is None:
                text = edit.source_path().read_text()
            sources[edit.module] = edit.apply(text)
        return sources

    def install(self) -> None:
        """Load every edited module from its mutated source from now on. Raises MutationError
        when one of them is imported already (the mutation must come first)."""
        modules = {edit.module for edit in self.edits}
        imported = sorted(modules & set(sys.modules))
        if imported:
            raise MutationError(f"{', '.join(imported)} imported before the mutation {self.name}")
        sys.meta_path.insert(0, _MutantFinder(self))

    def edits_of(self, module: str) -> list[Edit]:
        return [edit for edit in self.edits if edit.module == module]


class _MutantFinder(importlib.abc.MetaPathFinder):
    def __init__(self, mutation: Mutation) -> None:
        self.mutation = mutation

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        edits = self.mutation.edits_of(fullname)
        if not edits:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            raise MutationError(f"module {fullname} not found")
        source = Path(spec.origin).read_text()
        for edit in edits:
            source = edit.apply(source)
        spec.loader = _MutantLoader(source, spec.origin)
        return spec


class _MutantLoader(importlib.abc.Loader):
    def __init__(self, source: str, origin: str) -> None:
        self.source = source
        self.origin = origin

    def exec_module(self, module: ModuleType) -> None:
        exec(compile(self.source, self.origin, "exec"), module.__dict__)
