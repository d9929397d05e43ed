"""Scenarios about a full ephemeral disk (/tmp on Lambda): a write that fails with ENOSPC ends in
a parked message with the reason `ephemeral_storage_exhausted`, never in a retry loop."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice_shared.ports import REASON_ATTRIBUTE, REASON_CODE_ATTRIBUTE

if TYPE_CHECKING:
    from pathlib import Path

    from tests.reliability.scenario import Rig

ORDERS = (
    b"order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
    b"ORD-000001,c1,2024-03-01T10:00:00Z,S1,2,2.5,EUR,DE,\n"
    b"ORD-000002,c2,2024-03-02T10:00:00Z,S2,1,10,USD,US,\n"
)


def _disk_full() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


class _FullStream:
    """A real Arrow IPC stream writer on a disk that fills up at the first batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._writer = _REAL_NEW_STREAM(*args, **kwargs)

    def write_batch(self, *args: Any, **kwargs: Any) -> None:
        raise _disk_full()

    def close(self) -> None:
        self._writer.close()


class _FullParquet(pq.ParquetWriter):  # type: ignore[misc]
    """A real Parquet writer on a disk that fills up at the first row group."""

    def write_table(self, *args: Any, **kwargs: Any) -> None:
        raise _disk_full()


_REAL_NEW_STREAM = pa.ipc.new_stream


def _messages(rig: Rig, url: str) -> int:
    attrs = rig.stack.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


@pytest.mark.parametrize("stage", ["validate", "output"])
def test_scenario_disk_full_parks_the_message_with_the_reason(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stage: str
) -> None:
    # GIVEN every stage's scratch space under one folder, and the disk full at the write of
    # validate's staged Arrow files or of output's Parquet files
    scratch = tmp_path / "scratch"
    monkeypatch.setenv("SLUICE_SCRATCH_DIR", str(scratch))
    if stage == "validate":
        monkeypatch.setattr(pa.ipc, "new_stream", _FullStream)
    else:
        monkeypatch.setattr(pq, "ParquetWriter", _FullParquet)
    rig.start()
    # WHEN a file arrives and the pipeline runs until the message left the stage's queue
    rig.upload("orders/full.csv", ORDERS)
    dlq = rig.stack.dlqs[stage]
    rig.pump(until=lambda: _messages(rig, dlq) == 1 and rig.queues_empty(), timeout=40)
    # THEN the stage's message is parked with the reason, after a single delivery
    sqs = rig.stack.client("sqs")
    (parked,) = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"]
    attributes = parked["MessageAttributes"]
    assert attributes[REASON_CODE_ATTRIBUTE]["StringValue"] == "ephemeral_storage_exhausted"
    assert "No space left on device" in attributes[REASON_ATTRIBUTE]["StringValue"]
    assert str(scratch) in attributes[REASON_ATTRIBUTE]["StringValue"]
    deliveries = [failed for service, _, failed in rig.responses if service == stage]
    assert deliveries == [[]]  # handled once, reported as done: nothing redelivered
    assert (rig.handler_errors, rig.crashes) == (0, 0)
    # AND nothing was written to the processed bucket, and no file is left in scratch space
    s3 = rig.stack.client("s3")
    assert s3.list_objects_v2(Bucket=rig.stack.processed).get("KeyCount", 0) == 0
    assert [p for p in scratch.rglob("*") if p.is_file()] == []
