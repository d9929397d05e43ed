"""Properties the reliability promise rests on, for any input: the validator accounts for every
record of a file, and how the file is cut into blocks never changes the outcome."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sluice_shared.datapath.validate as validate_module
from contracts.datasets import DatasetCatalog
from sluice_shared.datapath.validate import ValidateResult, validate_file
from sluice_shared.limits import Limits

ORDERS = DatasetCatalog().load("orders")
HEADER = b"order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
GOOD = b"ORD-%06d,c%d,2024-03-01T10:00:00Z,S1,2,2.5,EUR,DE,\n"
# Pieces of records, good and bad, that hypothesis strings together into files.
PIECES = [
    b"ORD-000001,c,2024-03-01T10:00:00Z,S,1,1,EUR,DE,\n",
    b"ORD-000001,c,2024-03-01T10:00:00Z,S,1,1,EUR,DE,dup\n",
    b"ORD-1,c,2024-03-01T10:00:00Z,S,1,1,EUR,DE,\n",
    b"ORD-000002,c,not a time,S,1,1,EUR,DE,\n",
    b"ORD-000003,c,2024-03-01T10:00:00Z,S,0,1,EUR,DE,\n",
    b'ORD-000004,c,2024-03-01T10:00:00Z,S,1,1,EUR,DE,"multi\nline, quoted"\n',
    b"ORD-000005,c,2024-03-01T10:00:00Z,S,1,1,XXX,DE,\n",
    b"ORD-000006,c,2024-03-01T10:00:00Z\n",
    b"ORD-000007,c,2024-03-01T10:00:00Z,S,1,1,EUR,DE,\xff\xfe\n",
    b"\n",
    b'ORD-000008,"c""q",2024-03-01T10:00:00Z,S,1,1,GBP,,\n',
]
LENIENT = ORDERS.model_copy(
    update={"quarantine": ORDERS.quarantine.model_copy(update={"max_bad_ratio": 1.0})}
)


def run(data: bytes, block_bytes: int) -> tuple[ValidateResult, int, int]:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(validate_module, "BLOCK_BYTES", block_bytes)
        src = Path(tmp) / "in.csv"
        src.write_bytes(data)
        result = validate_file(src, LENIENT, Path(tmp) / "out", limits=Limits(), key="orders/x.csv")
        staged = sum(pa.ipc.open_stream(p).read_all().num_rows for p in result.staged.values())
        lines = 0
        if result.quarantine_path is not None:
            lines = sum(1 for line in result.quarantine_path.read_bytes().splitlines() if line)
        return result, staged, lines


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.sampled_from(PIECES), min_size=1, max_size=25),
    block_bytes=st.integers(min_value=64, max_value=512),
)
def test_validate_any_mix_of_records_accounts_for_every_row_at_any_block_size(
    pieces: list[bytes], block_bytes: int
) -> None:
    data = HEADER + b"".join(pieces)
    result, staged, lines = run(data, block_bytes)
    if result.rejection is not None:  # e.g. no data rows at all: a reason, never a crash
        assert result.rejection.reason_code
        return
    assert result.rows_in == result.rows_valid + result.rows_quarantined
    assert staged == result.rows_valid
    assert lines == result.rows_quarantined
    assert sum(result.reasons.values()) == result.rows_quarantined
    # the same file cut into other blocks gives the same outcome
    whole, _, _ = run(data, 1 << 20)
    assert (whole.rows_in, whole.rows_valid, whole.rows_quarantined, whole.reasons) == (
        result.rows_in,
        result.rows_valid,
        result.rows_quarantined,
        result.reasons,
    )
