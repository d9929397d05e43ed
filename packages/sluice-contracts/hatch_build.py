"""Build hook: the event half of ../../contracts, renamed to `sluice_contracts`.

The repository imports the package as `contracts`; the wheel holds the same files with every
`contracts` import rewritten to `sluice_contracts`. The data contracts (`contracts/datasets`,
which need PyYAML and pyarrow) stay out: producers of events do not read dataset files.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

IMPORT_NAME = "sluice_contracts"
MODULES = (
    "__init__.py",
    "__main__.py",
    "_alias.py",
    "envelope.py",
    "errors.py",
    "publish.py",
    "registry.py",
    "tools.py",
    "types.py",
    "py.typed",
)
EVENTS = "events"
_IMPORT = re.compile(r"^(\s*)(from|import) contracts(?=[.\s])", re.MULTILINE)


def rewrite(source: str) -> str:
    """`source` with `from contracts...`/`import contracts...` naming `sluice_contracts`."""
    return _IMPORT.sub(rf"\1\2 {IMPORT_NAME}", source)


def stage(source: Path, target: Path) -> None:
    """Copy the event contracts from `source` (the contracts/ folder) into `target`."""
    for name in MODULES:
        (target / name).write_text(rewrite((source / name).read_text("utf-8")), "utf-8")

    for path in sorted((source / EVENTS).rglob("*")):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".py":
            out.write_text(rewrite(path.read_text("utf-8")), "utf-8")
        else:
            shutil.copyfile(path, out)


class ContractsHook(BuildHookInterface):  # type: ignore[type-arg]
    """Stages the renamed sources and force-includes them as the `sluice_contracts` package."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        source = Path(self.root).resolve().parents[1] / "contracts"
        if not (source / "envelope.py").is_file():
            raise RuntimeError(f"{source} is not Sluice's contracts folder")
        self._staging = Path(tempfile.mkdtemp(prefix="sluice-contracts-"))
        package = self._staging / IMPORT_NAME
        package.mkdir()
        stage(source, package)
        build_data["force_include"][str(package)] = IMPORT_NAME

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)
