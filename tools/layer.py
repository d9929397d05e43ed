"""Build the Lambda runtime layer: contracts + sluice_shared + the runtime dependencies.

The layer targets Lambda (python3.12, arm64) and is built on this x86_64 host from wheels only,
from a lock resolved for exactly that target and installed with every hash checked:

    uv pip install --target … --python-platform aarch64-manylinux_2_28 --python-version 3.12
        --only-binary :all: --require-hashes -r tools/locks/layer/aarch64-manylinux_2_28-py3.12.txt

The layer locks (`tools/locks/layer/<platform>-py<version>.txt`, `make locks`) are resolved
from pyproject's runtime `dependencies` for their own platform and Python version, constrained
to requirements.lock's versions, with hashes: a package the target needs that the lock lacks
fails the install instead of arriving unpinned.

The same trimmed tree is also built for the host (its platform, the venv's Python, from that
target's lock), so tests can import it and run the data path with nothing but that tree and the
standard library on sys.path.

Trimming: caches, tests, headers and Cython sources, console scripts, and the pyarrow parts the
data path never imports (Flight, the Substrait/ORC/cloud-filesystem Python bindings, the C++
test module, duplicate copies of libarrow_python). Every removal is checked against the ELF
dependency graph (a kept library must not need a removed one), then shared objects are stripped
with an aarch64-capable strip (llvm-strip, else aarch64-linux-gnu-strip; if neither exists the
build says so and leaves them unstripped).

    python -m tools.layer build [--zip]     # build/layer/python (+ build/layer.zip), report
    python -m tools.layer report            # print the sizes of the last build

The dependency trees are cached under build/.layer-cache/ keyed by the target's lock and this
file, so a rebuild after a code change only re-copies contracts and sluice_shared.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"
LAYER_DIR = BUILD / "layer"
HOST_LAYER_DIR = BUILD / "layer-host"
CACHE = BUILD / ".layer-cache"
REPORT = BUILD / "layer-report.json"
ZIP = BUILD / "layer.zip"
LOCKS = REPO / "tools" / "locks" / "layer"
UV = REPO / ".venv" / "bin" / "uv"

LAMBDA_PYTHON = "3.12"
LAMBDA_PLATFORM = "aarch64-manylinux_2_28"
UNZIPPED_LIMIT_BYTES = 262_144_000  # Lambda: function + layers, unzipped
# The runtime packages are pyproject's `dependencies`, as locked per target; numpy and pandas are
# not among them and must not appear.
FORBIDDEN_PACKAGES = ("numpy", "pandas")
PROJECT_PACKAGES = (
    (REPO / "contracts", "contracts"),
    (REPO / "services" / "shared" / "sluice_shared", "sluice_shared"),
)
FUNCTION_DIRS = ("ingest", "validate", "transform", "output", "batch")

# Removed everywhere in the dependency tree.
TRIM_DIR_NAMES = frozenset({"__pycache__", "tests", "test"})
TRIM_SUFFIXES = (".pyc", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cc", ".cpp", ".c")
# pyarrow parts the data path (csv, json, ipc, parquet, compute, dataset, acero) never uses.
PYARROW_TRIM = (
    re.compile(r"^_flight\..*\.so$"),
    re.compile(r"^libarrow_flight\.so.*$"),
    re.compile(r"^libarrow_python_flight\.so.*$"),
    re.compile(r"^_substrait\..*\.so$"),
    re.compile(r"^_orc\..*\.so$"),
    re.compile(r"^_s3fs\..*\.so$"),
    re.compile(r"^libarrow_s3\.so.*$"),
    re.compile(r"^_gcsfs\..*\.so$"),
    re.compile(r"^_azurefs\..*\.so$"),
    re.compile(r"^_hdfs\..*\.so$"),
    re.compile(r"^_pyarrow_cpp_tests\..*\.so$"),
    re.compile(r"^src$"),
    re.compile(r"^include$"),
)


@dataclass
class TreeReport:
    """What one build of one tree did."""

    platform: str
    python: str
    bytes_before_trim: int = 0
    bytes_after_trim: int = 0
    bytes_final: int = 0
    removed: list[str] = field(default_factory=list)
    stripped: int = 0
    strip_tool: str | None = None
    note: str = ""


def dir_size(path: Path) -> int:
    """Total size in bytes of the regular files under a directory (symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def lock_for(platform: str, python: str) -> Path:
    """The hashed lock of the runtime dependencies resolved for one target.

    Args:
        platform: a uv `--python-platform` (e.g. `aarch64-manylinux_2_28`).
        python: the target Python version (e.g. `3.12`).

    Returns:
        `tools/locks/layer/<platform>-py<python>.txt`.

    Raises:
        RuntimeError: no lock was resolved for that target.
    """
    lock = LOCKS / f"{platform}-py{python}.txt"
    if not lock.is_file():
        known = ", ".join(sorted(p.stem for p in LOCKS.glob("*.txt"))) or "none"
        raise RuntimeError(
            f"no layer lock for {platform} with Python {python} ({lock.relative_to(REPO)}; "
            f"locked targets: {known}): add the target to LAYER_TARGETS in the Makefile and run "
            "`make locks`"
        )
    return lock


def _cache_key(platform: str, python: str) -> str:
    digest = hashlib.sha256()
    digest.update(lock_for(platform, python).read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(f"{platform}|{python}".encode())
    return digest.hexdigest()[:16]


def _elf_machine(path: Path) -> int | None:
    with path.open("rb") as handle:
        header = handle.read(20)
    if header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little")


def _needed(path: Path) -> list[str]:
    readelf = shutil.which("readelf") or shutil.which("llvm-readelf")
    if readelf is None:
        return []
    out = subprocess.run(
        [readelf, "-d", str(path)], capture_output=True, text=True, check=False
    ).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def strip_tool(machine: int) -> str | None:
    """An installed strip that handles ELF files of this machine (183 = aarch64, 62 = x86-64).

    Args:
        machine: ELF e_machine.

    Returns:
        The executable, or None when none is installed.
    """
    candidates = ["llvm-strip", *(f"llvm-strip-{v}" for v in range(20, 13, -1))]
    candidates += ["aarch64-linux-gnu-strip"] if machine == 183 else ["strip"]
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    return None


def trim(tree: Path, report: TreeReport) -> None:
    """Remove what the runtime never loads, then check no kept library needs a removed one.

    Args:
        tree: a `--target` install directory.
        report: updated with what was removed.

    Raises:
        RuntimeError: a kept shared library depends on a removed one.
    """
    for item in sorted(tree.iterdir()):
        if item.name == "bin":
            shutil.rmtree(item)
            report.removed.append("bin/")
        elif item.name == ".lock":  # uv's install lock, not a package
            item.unlink()
    for root, dirs, files in os.walk(tree, topdown=True):
        for name in list(dirs):
            if name in TRIM_DIR_NAMES:
                shutil.rmtree(Path(root, name))
                dirs.remove(name)
                report.removed.append(str(Path(root, name).relative_to(tree)) + "/")
        for name in files:
            if name.endswith(TRIM_SUFFIXES):
                Path(root, name).unlink()
    pyarrow = tree / "pyarrow"
    removed_libs: set[str] = set()
    if pyarrow.is_dir():
        for item in sorted(pyarrow.iterdir()):
            if any(pattern.match(item.name) for pattern in PYARROW_TRIM):
                removed_libs.add(item.name)
                if item.is_dir():
                    shutil.rmtree(item)
                else:
                    item.unlink()
                report.removed.append(f"pyarrow/{item.name}")
        removed_libs |= _drop_duplicate_sonames(pyarrow, report)
    for library in tree.rglob("*.so*"):
        if library.is_file() and _elf_machine(library) is not None:
            missing = sorted(set(_needed(library)) & removed_libs)
            if missing:
                raise RuntimeError(f"{library} needs removed {missing}: keep them")


def _drop_duplicate_sonames(pyarrow: Path, report: TreeReport) -> set[str]:
    """Wheels cannot hold symlinks, so libX.so, libX.so.N and libX.so.N.M.P are three copies;
    the loader only asks for the SONAME (libX.so.N)."""
    removed: set[str] = set()
    for soname in sorted(pyarrow.glob("lib*.so.[0-9]*")):
        if not re.fullmatch(r"lib[\w-]+\.so\.\d+", soname.name):
            continue
        base = soname.name.rsplit(".so.", 1)[0] + ".so"
        copies = [pyarrow / base, *pyarrow.glob(soname.name + ".*")]
        for copy in copies:
            if copy.is_file() and copy.stat().st_size == soname.stat().st_size:
                copy.unlink()
                removed.add(copy.name)
                report.removed.append(f"pyarrow/{copy.name} (copy of {soname.name})")
    return removed


def strip_shared_objects(tree: Path, report: TreeReport) -> None:
    """Strip unneeded symbols from every ELF shared object in the tree.

    Args:
        tree: the trimmed tree.
        report: updated with the tool used and the count, or a note when no tool exists.
    """
    libraries = [p for p in tree.rglob("*.so*") if p.is_file() and _elf_machine(p) is not None]
    if not libraries:
        return
    machine = _elf_machine(libraries[0]) or 0
    tool = strip_tool(machine)
    if tool is None:
        report.note = (
            "no strip for this architecture is installed (llvm-strip or "
            "binutils-aarch64-linux-gnu): shared objects left unstripped"
        )
        print(f"layer: NOTE: {report.note}")
        return
    report.strip_tool = Path(tool).name
    for library in libraries:
        result = subprocess.run(
            [tool, "--strip-unneeded", str(library)], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            report.stripped += 1
        else:
            print(f"layer: could not strip {library.name}: {result.stderr.strip()}")


def build_dependencies(platform: str, python: str) -> tuple[Path, TreeReport]:
    """Install, trim and strip the runtime dependencies for one platform (cached).

    Args:
        platform: a uv `--python-platform` (e.g. `aarch64-manylinux_2_28`).
        python: the target Python version (e.g. `3.12`).

    Returns:
        (the cached tree, its report).

    Raises:
        subprocess.CalledProcessError: the install failed (a hash did not match, or a package
            the target needs is missing from its lock).
        RuntimeError: no lock for the target, a forbidden package was pulled in, or trimming
            broke a dependency.
    """
    key = _cache_key(platform, python)
    tree = CACHE / f"{platform}-py{python}-{key}"
    report_file = tree.parent / (tree.name + ".json")
    if tree.is_dir() and report_file.is_file():
        data = json.loads(report_file.read_text("utf-8"))
        return tree, TreeReport(**data)
    if CACHE.is_dir():
        for stale in CACHE.glob(f"{platform}-py{python}-*"):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    staging = tree.with_name(tree.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "--quiet",
            "--target",
            str(staging),
            "--python-platform",
            platform,
            "--python-version",
            python,
            "--only-binary",
            ":all:",
            "--require-hashes",
            "--requirement",
            str(lock_for(platform, python)),
        ],
        check=True,
    )
    for name in FORBIDDEN_PACKAGES:
        if (staging / name).exists():
            raise RuntimeError(f"{name} was pulled into the layer; it must stay out")
    report = TreeReport(platform=platform, python=python, bytes_before_trim=dir_size(staging))
    trim(staging, report)
    report.bytes_after_trim = dir_size(staging)
    strip_shared_objects(staging, report)
    report.bytes_final = dir_size(staging)
    staging.rename(tree)
    report_file.write_text(json.dumps(asdict(report), indent=2), "utf-8")
    return tree, report


def assemble(deps: Path, target: Path) -> None:
    """Lay out `<target>/python/` = dependencies + contracts + sluice_shared (no caches).

    Args:
        deps: the cached dependency tree.
        target: the layer directory (its `python/` is replaced).
    """
    stamp = target / ".inputs"
    inputs = _inputs_digest(deps)
    if (target / "python").is_dir() and stamp.is_file() and stamp.read_text("utf-8") == inputs:
        return
    # Build beside the target and swap it in, so a reader never sees a half-copied tree.
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(deps, staging / "python", symlinks=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")
    for source, name in PROJECT_PACKAGES:
        shutil.copytree(source, staging / "python" / name, ignore=ignore)
    # Outside python/: Lambda only puts /opt/python on sys.path, and the stamp is tiny.
    (staging / ".inputs").write_text(inputs, "utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _inputs_digest(deps: Path) -> str:
    """Identity of what `assemble` copies: the cached deps tree and the project sources."""
    digest = hashlib.sha256(deps.name.encode())
    for source, _ in PROJECT_PACKAGES:
        for path in sorted(source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(REPO)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def host_platform() -> tuple[str, str]:
    """uv platform and Python version of this interpreter (for the host smoke-test tree)."""
    machine = sysconfig.get_platform().split("-")[-1]
    return f"{machine}-manylinux_2_28", f"{sys.version_info.major}.{sys.version_info.minor}"


def largest_function() -> tuple[str, int]:
    """The largest function code directory (services/<svc>/), name and bytes."""
    sizes = {
        name: dir_size(REPO / "services" / name)
        for name in FUNCTION_DIRS
        if (REPO / "services" / name).is_dir()
    }
    if not sizes:
        return "-", 0
    name = max(sizes, key=lambda n: sizes[n])
    return name, sizes[name]


def build(make_zip: bool = False, host: bool = True) -> dict[str, object]:
    """Build the Lambda layer (and the host twin), write and print the size report.

    Args:
        make_zip: also write build/layer.zip.
        host: also build build/layer-host for the smoke test.

    Returns:
        The report (also written to build/layer-report.json).

    Raises:
        RuntimeError: the unzipped function + layer exceed Lambda's 250 MB limit.
    """
    BUILD.mkdir(exist_ok=True)
    # Several test runs may share this working tree: one builder at a time.
    with (BUILD / ".layer.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(make_zip, host)


def _build_locked(make_zip: bool, host: bool) -> dict[str, object]:
    deps, lambda_report = build_dependencies(LAMBDA_PLATFORM, LAMBDA_PYTHON)
    assemble(deps, LAYER_DIR)
    layer_bytes = dir_size(LAYER_DIR)
    report: dict[str, object] = {"lambda": asdict(lambda_report), "layer_bytes": layer_bytes}
    if host:
        host_deps, host_report = build_dependencies(*host_platform())
        assemble(host_deps, HOST_LAYER_DIR)
        report["host"] = asdict(host_report)
        report["host_layer_bytes"] = dir_size(HOST_LAYER_DIR)
    function, function_bytes = largest_function()
    report.update(
        largest_function=function,
        largest_function_bytes=function_bytes,
        total_unzipped_bytes=layer_bytes + function_bytes,
        limit_bytes=UNZIPPED_LIMIT_BYTES,
    )
    if make_zip:
        _zip(LAYER_DIR, ZIP)
        report["zip_bytes"] = ZIP.stat().st_size
    REPORT.write_text(json.dumps(report, indent=2), "utf-8")
    print_report(report)
    problem = size_problem(layer_bytes, function_bytes)
    if problem:
        raise RuntimeError(problem)
    return report


def size_problem(layer_bytes: int, function_bytes: int) -> str | None:
    """Why function + layer would not deploy, or None when they fit.

    Args:
        layer_bytes: unzipped layer size.
        function_bytes: unzipped size of the largest function's own code.

    Returns:
        A message when the total exceeds Lambda's unzipped limit, else None.
    """
    total = layer_bytes + function_bytes
    if total > UNZIPPED_LIMIT_BYTES:
        return (
            f"function + layer = {total} bytes exceed the {UNZIPPED_LIMIT_BYTES}-byte (250 MB) "
            "unzipped Lambda limit"
        )
    return None


def _zip(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(source))


def _mb(value: object) -> str:
    return f"{int(str(value)) / 1_000_000:9.3f} MB"


def print_report(report: dict[str, object]) -> None:
    """Print the size report of a build."""
    lam = report["lambda"]
    assert isinstance(lam, dict)
    print(f"layer: arm64 deps before trim   {_mb(lam['bytes_before_trim'])}")
    print(f"layer: arm64 deps after trim    {_mb(lam['bytes_after_trim'])}")
    print(
        f"layer: arm64 deps after strip   {_mb(lam['bytes_final'])} ({lam['stripped']} .so "
        f"stripped with {lam['strip_tool'] or 'nothing'})"
    )
    print(f"layer: build/layer unzipped     {_mb(report['layer_bytes'])}")
    if "zip_bytes" in report:
        print(f"layer: build/layer.zip          {_mb(report['zip_bytes'])}")
    print(
        f"layer: largest function ({report['largest_function']}) "
        f"{_mb(report['largest_function_bytes'])}"
    )
    print(
        f"layer: function + layer         {_mb(report['total_unzipped_bytes'])} "
        f"(limit {_mb(report['limit_bytes'])})"
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring).

    Args:
        argv: arguments (default: sys.argv[1:]).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m tools.layer")
    parser.add_argument("command", choices=["build", "report"])
    parser.add_argument("--zip", action="store_true", help="also write build/layer.zip")
    args = parser.parse_args(argv)
    if args.command == "report":
        print_report(json.loads(REPORT.read_text("utf-8")))
        return 0
    try:
        build(make_zip=args.zip)
    except RuntimeError as error:
        print(f"layer: FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
