"""Memory stays flat: validating a ~200 MB CSV peaks well under the Lambda-sized budget."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from sluice.generate import generate

if TYPE_CHECKING:
    from pathlib import Path

RSS_BUDGET_MB = 300  # the budget for any file size (a 2 GB file measured at ~250 MB)

# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork+exec, so a child of a
# large pytest process would report the parent's size; VmHWM belongs to the child's own memory.
CHILD = """
import sys
from pathlib import Path
from contracts.datasets.loader import load_contract
from sluice_shared.datapath.validate import validate_file
from sluice_shared.limits import Limits
result = validate_file(Path(sys.argv[1]), load_contract("orders"), Path(sys.argv[2]),
                       limits=Limits(), bucket_count=2)
assert result.rejection is None, result.rejection
status = Path("/proc/self/status").read_text()
peak_mb = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmHWM:")) / 1024
print(result.rows_in, result.bytes_in, int(peak_mb))
"""


@pytest.mark.slow
def test_validate_200mb_csv_peak_rss_is_bounded(tmp_path: Path) -> None:
    # GIVEN a ~200 MB orders file with bad rows, duplicates and quoted newlines
    src = tmp_path / "orders.csv"
    truth = generate("orders", src, size_bytes=200_000_000, bad_ratio=0.01, duplicate_ratio=0.01)
    # WHEN a fresh process validates it into two buckets, as the validate function runs it:
    # inside a function process the data path's first import applies the memory settings
    # deployed with it (services/shared/sluice_shared/datapath/memory.py)
    function_env = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "sluice-dev-validate"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(src), str(tmp_path / "out")],
        env=function_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows_in, bytes_in, peak_mb = (int(v) for v in out.stdout.split())
    # THEN it read everything, and its peak RSS is a small fraction of the file
    assert rows_in == truth.rows_total
    assert bytes_in == src.stat().st_size
    assert peak_mb < RSS_BUDGET_MB, f"peak RSS {peak_mb} MB"
