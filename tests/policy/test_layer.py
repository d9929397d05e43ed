"""The runtime layer: under Lambda's size limit, built for arm64/python3.12, trimmed, stripped,
and (through its x86_64 twin, trimmed and stripped the same way) still able to run the data path
with nothing but the layer and the standard library importable."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools import layer

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "tools" / "layer_smoke.py"
ELF_AARCH64 = 183


@pytest.fixture(scope="session")
def built() -> dict[str, Any]:
    """Build (or re-assemble from the cache) build/layer and build/layer-host once."""
    return layer.build(make_zip=False, host=True)


def _shared_objects(tree: Path) -> list[Path]:
    return [p for p in tree.rglob("*.so*") if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"]


def _section_names(path: Path) -> set[str]:
    """Section names of a little-endian ELF64 file."""
    data = path.read_bytes()
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [data[shoff + i * shentsize : shoff + (i + 1) * shentsize] for i in range(shnum)]
    strtab_offset = struct.unpack_from("<Q", headers[shstrndx], 0x18)[0]
    names = set()
    for header in headers:
        (name_offset,) = struct.unpack_from("<I", header, 0)
        end = data.index(b"\0", strtab_offset + name_offset)
        names.add(data[strtab_offset + name_offset : end].decode())
    return names


def test_layer_function_plus_layer_under_250_mb_unzipped(built: dict[str, Any]) -> None:
    layer_bytes = layer.dir_size(layer.LAYER_DIR)
    _, function_bytes = layer.largest_function()
    assert layer_bytes == built["layer_bytes"]
    assert layer_bytes + function_bytes < layer.UNZIPPED_LIMIT_BYTES
    assert layer.size_problem(layer_bytes, function_bytes) is None


def test_layer_size_over_limit_reported() -> None:
    problem = layer.size_problem(layer.UNZIPPED_LIMIT_BYTES - 10, 11)
    assert problem is not None
    assert "250 MB" in problem


def test_layer_built_for_arm64_python312(built: dict[str, Any]) -> None:
    python_dir = layer.LAYER_DIR / "python"
    assert (python_dir / "pyarrow" / "lib.cpython-312-aarch64-linux-gnu.so").is_file()
    machines = {layer._elf_machine(p) for p in _shared_objects(python_dir)}
    assert machines == {ELF_AARCH64}
    assert built["lambda"]["platform"].startswith("aarch64-")


def test_layer_contains_project_packages_and_no_numpy_pandas(built: dict[str, Any]) -> None:
    python_dir = layer.LAYER_DIR / "python"
    assert (python_dir / "contracts" / "events").is_dir()
    assert (python_dir / "sluice_shared" / "errors.py").is_file()
    for forbidden in ("numpy", "pandas"):
        assert not (python_dir / forbidden).exists()
        assert not list(python_dir.glob(f"{forbidden}-*.dist-info"))


def test_layer_trimmed_of_unused_pyarrow_parts_tests_and_caches(built: dict[str, Any]) -> None:
    python_dir = layer.LAYER_DIR / "python"
    pyarrow_dir = python_dir / "pyarrow"
    assert not list(pyarrow_dir.glob("*flight*.so*"))
    assert not (pyarrow_dir / "include").exists()
    assert not list(pyarrow_dir.glob("*.pyx"))
    assert not list(python_dir.rglob("__pycache__"))
    assert not [p for p in python_dir.rglob("tests") if p.is_dir()]
    # What the data path needs stays.
    for kept in ("_csv", "_json", "_parquet", "_compute", "_dataset", "_acero", "_feather"):
        assert list(pyarrow_dir.glob(f"{kept}.cpython-312-aarch64-linux-gnu.so")), kept
    assert built["lambda"]["bytes_after_trim"] < built["lambda"]["bytes_before_trim"]


def test_layer_shared_objects_stripped_or_skip_explained(built: dict[str, Any]) -> None:
    report = built["lambda"]
    if report["strip_tool"] is None:
        # No aarch64-capable strip on this machine: the build must have said so.
        assert "unstripped" in report["note"]
        return
    objects = _shared_objects(layer.LAYER_DIR / "python")
    assert report["stripped"] == len(objects)
    with_symtab = [p.name for p in objects if ".symtab" in _section_names(p)]
    assert with_symtab == []


def test_layer_trim_refuses_to_remove_a_needed_library(tmp_path: Path) -> None:
    import pyarrow

    source = Path(pyarrow.__file__).parent
    flight_binding = next(source.glob("_flight.cpython-*.so"))
    tree = tmp_path / "tree"
    (tree / "pyarrow").mkdir(parents=True)
    # A kept library that NEEDS libarrow_flight, which the trim list removes.
    shutil.copy(flight_binding, tree / "pyarrow" / "keeps_flight.so")
    (tree / "pyarrow" / "libarrow_flight.so.2600").write_bytes(b"\x7fELF placeholder")
    with pytest.raises(RuntimeError, match="libarrow_flight"):
        layer.trim(tree, layer.TreeReport(platform="test", python="test"))


def test_layer_host_twin_same_packages_as_lambda_tree(built: dict[str, Any]) -> None:
    def packages(tree: Path) -> set[str]:
        return {p.name for p in (tree / "python").iterdir() if not p.name.endswith(".so")}

    def pyarrow_modules(tree: Path) -> set[str]:
        return {p.name.split(".")[0] for p in (tree / "python" / "pyarrow").iterdir()}

    assert packages(layer.HOST_LAYER_DIR) == packages(layer.LAYER_DIR)
    assert pyarrow_modules(layer.HOST_LAYER_DIR) == pyarrow_modules(layer.LAYER_DIR)
    assert built["host"]["stripped"] > 0 or built["host"]["note"]


def test_layer_host_twin_runs_data_path_with_only_layer_on_path(built: dict[str, Any]) -> None:
    tree = layer.HOST_LAYER_DIR / "python"
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", str(SMOKE), str(tree)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["pyarrow_file"].startswith(str(tree))
    assert facts["modules_from_outside"] == []
    assert (facts["rows"], facts["deduped_rows"], facts["germany_rows"]) == (4, 3, 2)
    assert facts["total"] == pytest.approx(24.0)
    assert facts["parquet_rows"] == facts["dataset_rows"] == 3
    assert (facts["staged_rows"], facts["jsonl_rows"]) == (4, 2)
    assert "sluice_shared.errors" in facts["imported"]
    assert "contracts.registry" in facts["imported"]
    assert facts["orders_contract"] == "orders"
    assert facts["clients"] == ["s3", "sqs", "dynamodb", "events", "stepfunctions", "ssm"]
    assert facts["numpy_loaded"] is False
    assert facts["pandas_loaded"] is False
