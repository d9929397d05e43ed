"""atheris target: the CSV/JSONL readers and validator on arbitrary bytes.

For any input, `validate_file` must either reject the file with a reason or account for every
record (`rows_in == rows_valid + rows_quarantined`, the staged rows and the quarantine lines
matching the counts) — never crash with anything but a rejection.

    python fuzz/fuzz_readers.py fuzz/corpus/orders -max_total_time=60       # CSV (orders)
    SLUICE_FUZZ_DATASET=sensor_readings python fuzz/fuzz_readers.py fuzz/corpus/sensor_readings

`make fuzz` runs both for a bounded time. Without atheris installed, running a file path
replays it through the same check (to reproduce a crash found elsewhere).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pyarrow as pa

try:
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]
except ImportError:  # replay mode (see the module docstring)
    atheris = None

if atheris is not None:
    # Coverage feedback from Sluice's own code only; without it libFuzzer mutates blind.
    with atheris.instrument_imports(include=["sluice_shared", "contracts"]):
        from contracts.datasets import DatasetCatalog
        from sluice_shared.datapath import validate as validate_module
        from sluice_shared.datapath.validate import validate_file
        from sluice_shared.limits import Limits
else:
    from contracts.datasets import DatasetCatalog
    from sluice_shared.datapath import validate as validate_module
    from sluice_shared.datapath.validate import validate_file
    from sluice_shared.limits import Limits

DATASET = os.environ.get("SLUICE_FUZZ_DATASET", "orders")
CONTRACT = DatasetCatalog().load(DATASET)
LIMITS = Limits(max_record_bytes=4096, max_field_bytes=1024)
# Small blocks so short inputs still cross block boundaries (where record cuts can go wrong).
validate_module.BLOCK_BYTES = 256


def check(data: bytes) -> None:
    """Validate `data` as one file of the dataset and assert the accounting invariant."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "input"
        src.write_bytes(data)
        result = validate_file(src, CONTRACT, Path(tmp) / "out", limits=LIMITS, key=f"{DATASET}/f")
        if result.rejection is not None:
            assert result.rejection.reason_code, "a rejection needs a reason code"
            return
        assert result.rows_in == result.rows_valid + result.rows_quarantined, result
        staged = sum(pa.ipc.open_stream(p).read_all().num_rows for p in result.staged.values())
        assert staged == result.rows_valid, (staged, result)
        lines = 0
        if result.quarantine_path is not None:
            lines = sum(1 for line in result.quarantine_path.read_bytes().splitlines() if line)
        assert lines == result.rows_quarantined, (lines, result)
        assert sum(result.reasons.values()) == result.rows_quarantined, result


def main() -> None:
    if atheris is None:
        for name in sys.argv[1:]:
            check(Path(name).read_bytes())
        return
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
