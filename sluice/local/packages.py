"""What a local function may import: the packages its deployed layer ships, not the whole venv.

On Lambda a function imports the standard library, its own code and its layers (the runtime
layer holds `contracts`, `sluice_shared` and the locked runtime dependencies,
`tools/locks/layer/<platform>-py<version>.txt`). A local worker runs on the development venv,
which also holds the CLI's, the benchmarks' and the tests' packages (moto, click, numpy, pandas,
polars, ...). Visible to the function, they make local runs differ from AWS in two ways: a
function that imports one works locally and fails deployed, and libraries that use what they
find cost time the deployed function never spends (pyarrow imports numpy when it is installed:
80 ms of CPU in every new execution environment, while the layer has no numpy).

`hidden_packages` names the top-level modules of every installed distribution the layer lock
does not list (the project's own tree stays visible: it is where the function's code and the
layer's `contracts`/`sluice_shared` come from); the worker makes them unimportable
(`sluice.local.worker`), with the `ModuleNotFoundError` a deployed function would get.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import re
import sys
from pathlib import Path

log = logging.getLogger("sluice.local.packages")

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER_LOCKS = REPO_ROOT / "tools" / "locks" / "layer"
PROJECT = "sluice"
"""The project's own distribution (an editable install of this repository): never hidden."""
_PLATFORMS = {"arm64": "aarch64-manylinux_2_28", "x86_64": "x86_64-manylinux_2_28"}
_PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", re.MULTILINE)


def canonical(name: str) -> str:
    """A distribution name as package indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def layer_lock(runtime: str, architecture: str) -> Path:
    """The layer lock of a function's `Runtime` (`python3.12`) and `Architectures` (`arm64`)."""
    version = runtime.removeprefix("python")
    return LAYER_LOCKS / f"{_PLATFORMS.get(architecture, architecture)}-py{version}.txt"


def locked_names(lock: Path) -> frozenset[str]:
    """The canonical names of the distributions a lock pins."""
    return frozenset(canonical(name) for name in _PINNED.findall(lock.read_text()))


def top_level_names(dist: importlib.metadata.Distribution) -> set[str]:
    """The top-level modules a distribution installs (`top_level.txt`, else its file list)."""
    listed = dist.read_text("top_level.txt")
    if listed:
        return {line.strip() for line in listed.splitlines() if line.strip()}
    names: set[str] = set()
    for file in dist.files or ():
        parts = file.parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".dist-info"):
            continue
        if len(parts) == 1:
            stem = parts[0].split(".", 1)[0]
            if parts[0].endswith((".py", ".so", ".pyd")) and stem.isidentifier():
                names.add(stem)
        elif parts[0].isidentifier():
            names.add(parts[0])
    return names


@functools.cache
def hidden_packages(runtime: str, architecture: str) -> frozenset[str]:
    """Top-level modules installed here that a function of this runtime and architecture cannot
    import when deployed: every distribution's but the layer lock's and the project's, and never
    a name the standard library or a locked distribution also provides. Empty (nothing hidden,
    logged) when no layer lock exists for the runtime."""
    lock = layer_lock(runtime, architecture)
    if not lock.exists():
        log.warning("no layer lock %s: functions see every installed package", lock.name)
        return frozenset()
    shipped = locked_names(lock) | {PROJECT}
    hidden: set[str] = set()
    kept: set[str] = set(sys.stdlib_module_names)
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        (kept if canonical(name) in shipped else hidden).update(top_level_names(dist))
    return frozenset(name for name in hidden - kept if not name.startswith("__"))
