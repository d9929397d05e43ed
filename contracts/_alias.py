"""`sluice_contracts` inside the repository: the same module objects as `contracts`.

The installable package (`packages/sluice-contracts`) is built from this folder under the import
name `sluice_contracts`; a team's model imports it under that name. In the repository the package
is `contracts`, and a second copy of the modules under the other name would hold other classes
(`ContractModel`, the registry), so a team's model would not be a ContractModel to the CLI. This
finder answers every `sluice_contracts[.x]` import with the module `contracts[.x]` itself.
In the built package the two names are one and nothing is installed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

PACKAGE_NAME = "sluice_contracts"


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, alias: str, target: str) -> None:
        self.alias = alias
        self.target = target

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname != self.alias and not fullname.startswith(self.alias + "."):
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        # The module already loaded (or loaded now) under its real name; its __name__ and
        # __spec__ stay those of `contracts`, so pickling and inspect see one module.
        return importlib.import_module(self.target + spec.name[len(self.alias) :])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: `create_module` returned a module that is already executed."""


def install(package: str) -> None:
    """Make `sluice_contracts` import as `package` (idempotent; a no-op when they are the same)."""
    if package == PACKAGE_NAME:
        return
    if any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        return
    # First in line: the path finder would find the files again through the parent's __path__
    # and load a second copy under the alias.
    sys.meta_path.insert(0, _AliasFinder(PACKAGE_NAME, package))
