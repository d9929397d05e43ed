"""A handler's import (Lambda's init phase) leaves the AWS client libraries and the Arrow data
path to the first invocation: each module here would add to every cold start's init time.

How long a cold start takes is measured by `python -m bench.cold_start`, not here: this checks
which modules the import loads, which does not depend on the machine's load.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.cold_start import FIRST_FILE_MODULES, FUNCTIONS, function_env

# Loaded with the clients (Runtime.deps; X-Ray patches them there) or with the first file (the
# domain steps' imports).
DEFERRED = ("aioboto3", "aiobotocore", "aiohttp", "boto3", "pyarrow", "yaml")

_PROBE = """
import json, sys
import sluice_{function}.handler
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {deferred!r})))
"""


@pytest.mark.parametrize("xray", [False, True], ids=["local", "xray-on"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_handler_import_defers_client_libraries_and_data_path(function: str, xray: bool) -> None:
    # GIVEN a fresh interpreter with the function's environment (X-Ray tracing on: as deployed,
    # where auto-patching would import every library X-Ray can patch)
    probe = _PROBE.format(function=function, deferred=DEFERRED)
    # WHEN it imports the handler module
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=function_env(function, xray=xray),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    # THEN none of the deferred libraries is loaded yet
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("function", [f for f in FUNCTIONS if FIRST_FILE_MODULES[f]])
def test_first_file_modules_are_importable_data_path(function: str) -> None:
    # The benchmark's data-path phase imports these: a rename must not leave it measuring nothing.
    for name in FIRST_FILE_MODULES[function]:
        module = __import__(name, fromlist=["_"])
        assert "pyarrow" in sys.modules, name
        assert module.__name__ == name


_PATCHED = """
import json
import sluice_{function}.handler as handler
runtime = handler.runtime if hasattr(handler, "runtime") else handler.service.runtime
runtime.run(runtime.deps())
from aws_xray_sdk.core import patcher
print(json.dumps(sorted(patcher._PATCHED_MODULES)))
runtime.close()
"""


@pytest.mark.parametrize("function", ["ingest", "output"])
def test_xray_on_the_opened_clients_are_traced(function: str) -> None:
    # GIVEN tracing on, as deployed; WHEN the first invocation opens the clients
    done = subprocess.run(
        [sys.executable, "-c", _PATCHED.format(function=function)],
        env=function_env(function, xray=True),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    # THEN X-Ray has patched the AWS SDK: every AWS call is a subsegment, as with auto-patching
    assert done.returncode == 0, done.stderr[-2000:]
    patched = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"aiobotocore", "botocore"} <= set(patched)
