"""Process-wide memory settings of a function process (sluice_shared.datapath.memory).

Each case runs in a fresh interpreter: the settings are per process and pyarrow remembers its
pandas probe for the life of the process, so the test process itself proves nothing. pandas is
installed in the development environment (the bench extra) and the box runs glibc, as Lambda does.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sluice_shared.datapath.memory import WORKER_POOL

FUNCTION_ENV = "AWS_LAMBDA_FUNCTION_NAME"


def _run(code: str, **env: str) -> list[str]:
    base = {
        k: v for k, v in os.environ.items() if k not in (FUNCTION_ENV, "ARROW_DEFAULT_MEMORY_POOL")
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.split()


_REPORT = (
    "import sys, pyarrow as pa\n"
    "import sluice_batch.work\n"
    "pa.scalar(1)\n"
    "print(pa.default_memory_pool().backend_name, 'pandas' in sys.modules)\n"
)


def _default_backend() -> str:
    return _run("import pyarrow as pa; print(pa.default_memory_pool().backend_name)")[0]


def test_batch_package_in_function_process_uses_worker_pool_without_pandas() -> None:
    backend, pandas_loaded = _run(_REPORT, **{FUNCTION_ENV: "sluice-dev-batch-run-partition"})
    assert backend == WORKER_POOL
    assert pandas_loaded == "False"


@pytest.mark.parametrize(
    ("domain", "module", "function"),
    [
        ("sluice_validate.domain", "sluice_shared.datapath.validate", "sluice-dev-validate"),
        ("sluice_transform.domain", "sluice_shared.datapath.transform", "sluice-dev-transform"),
        ("sluice_output.domain", "sluice_shared.datapath.output", "sluice-dev-output"),
    ],
)
def test_realtime_stage_in_function_process_runs_worker_pool_without_pandas(
    domain: str, module: str, function: str
) -> None:
    # the deployed real-time functions run the allocator settings the benchmark measures: the
    # stage loads the data path with its first file, and that import applies them
    code = _REPORT.replace("import sluice_batch.work\n", f"import {domain}\nimport {module}\n")
    backend, pandas_loaded = _run(code, **{FUNCTION_ENV: function})
    assert backend == WORKER_POOL
    assert pandas_loaded == "False"


def test_prepare_process_outside_function_process_changes_nothing() -> None:
    backend, pandas_loaded = _run(_REPORT)
    assert backend == _default_backend()
    assert pandas_loaded == "True"


def test_use_worker_pool_explicit_env_pool_wins() -> None:
    backend, _ = _run(
        _REPORT, **{FUNCTION_ENV: "sluice-dev-transform", "ARROW_DEFAULT_MEMORY_POOL": "system"}
    )
    assert backend == "system" != WORKER_POOL


def test_skip_pandas_probe_later_import_of_pandas_still_works() -> None:
    out = _run(
        "import sys, pyarrow as pa\n"
        "from sluice_shared.datapath.memory import skip_pandas_probe\n"
        "took = skip_pandas_probe()\n"
        "pa.array([1, 2])\n"
        "print(took, 'pandas' in sys.modules)\n"
        "import pandas as pd\n"
        "print(pa.Table.from_pandas(pd.DataFrame({'a': [1, 2]})).num_rows)\n"
    )
    assert out == ["True", "False", "2"]


def test_skip_pandas_probe_pandas_already_imported_is_noop() -> None:
    out = _run(
        "import pandas\n"
        "from sluice_shared.datapath.memory import skip_pandas_probe\n"
        "print(skip_pandas_probe())\n"
    )
    assert out == ["False"]


def test_limit_malloc_arenas_on_glibc_takes_effect() -> None:
    out = _run(
        "from sluice_shared.datapath.memory import limit_malloc_arenas, release_memory\n"
        "print(limit_malloc_arenas(1)); release_memory()\n"
    )
    assert out == ["True"]


def _jemalloc_narenas(code: str, **env: str) -> str | None:
    """jemalloc's `opt.narenas` in a fresh interpreter that runs `code`, then allocates from
    jemalloc, as jemalloc's exit statistics print it (None when it printed none: its options
    lacked `stats_print`)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in (FUNCTION_ENV, "ARROW_DEFAULT_MEMORY_POOL", "JE_ARROW_MALLOC_CONF")
    }
    done = subprocess.run(
        [sys.executable, "-c", code + "import pyarrow as pa\npa.array([1, 2, 3])\n"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = [line for line in done.stderr.splitlines() if "opt.narenas:" in line]
    return found[0].split(":")[1].strip() if found else None


# jemalloc's options with its exit statistics added, to read back what it started with
_WITH_STATS = (
    "from sluice_shared import jemalloc_options\n"
    "jemalloc_options.JEMALLOC_CONF += ',stats_print:true'\n"
)


def test_realtime_stage_in_function_process_starts_jemalloc_with_one_arena() -> None:
    # GIVEN a function process importing a stage and its data path (pyarrow not yet imported)
    code = _WITH_STATS + "import sluice_validate.domain\nimport sluice_shared.datapath.validate\n"
    # WHEN it allocates from jemalloc THEN jemalloc started with one arena
    assert _jemalloc_narenas(code, **{FUNCTION_ENV: "sluice-dev-validate"}) == "1"


def test_jemalloc_options_operator_value_wins_and_outside_functions_untouched() -> None:
    code = "import sluice_shared.datapath\n"
    operator = "narenas:3,stats_print:true"
    assert (
        _jemalloc_narenas(
            code, **{FUNCTION_ENV: "sluice-dev-output", "JE_ARROW_MALLOC_CONF": operator}
        )
        == "3"
    )
    # outside a function process nothing is set (no statistics asked for, none printed)
    assert _jemalloc_narenas(_WITH_STATS + code) is None


def test_set_jemalloc_options_after_pyarrow_import_reports_no_effect() -> None:
    out = _run(
        "import pyarrow\nfrom sluice_shared.jemalloc_options import set_jemalloc_options\n"
        "print(set_jemalloc_options(force=True))\n"
    )
    assert out == ["False"]


# What glibc has mapped for single allocations (mallinfo2's hblkhd) while a 6 MiB bytes object
# is alive: a fresh mapping under glibc's defaults, a piece of the heap after heap_block_buffers.
_MAPPED_WHILE_6MIB = (
    "import ctypes, ctypes.util\n"
    "class Info(ctypes.Structure):\n"
    "    _fields_ = [(n, ctypes.c_size_t) for n in ('arena ordblks smblks hblks hblkhd usmblks "
    "fsmblks uordblks fordblks keepcost').split()]\n"
    "libc = ctypes.CDLL(ctypes.util.find_library('c'))\n"
    "libc.mallinfo2.restype = Info\n"
    "PREPARE\n"
    "before = libc.mallinfo2().hblkhd\n"
    "block = bytes(6 << 20)\n"
    "print(libc.mallinfo2().hblkhd - before >= len(block))\n"
)


def test_heap_block_buffers_serves_blocks_from_the_heap_not_a_mapping_each() -> None:
    assert _run(_MAPPED_WHILE_6MIB.replace("PREPARE", "pass")) == ["True"]
    took, mapped = _run(
        _MAPPED_WHILE_6MIB.replace(
            "PREPARE",
            "from sluice_shared.datapath.memory import heap_block_buffers\n"
            "print(heap_block_buffers())",
        )
    )
    assert (took, mapped) == ("True", "False")


def test_function_process_serves_blocks_from_the_heap() -> None:
    # the data path's import applies the function-process settings, this one among them
    code = _MAPPED_WHILE_6MIB.replace("PREPARE", "import sluice_shared.datapath")
    assert _run(code, **{FUNCTION_ENV: "sluice-dev-validate"}) == ["False"]
