"""A forged fact whose count would make a consumer loop for ever: the v2 major bounds it, so it is
parked at parse, before any ledger read or S3 request; the unbounded v1 major is not routed to
consumers at all."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson
import pytest
from pydantic import ValidationError

from contracts.envelope import Envelope
from contracts.events import FileValidatedV1, published_majors
from contracts.types import DatasetRef
from sluice_shared.ports import REASON_ATTRIBUTE, REASON_CODE_ATTRIBUTE

if TYPE_CHECKING:
    from tests.reliability.scenario import Rig


def test_scenario_forged_bucket_count_parked_at_parse_v1_not_routed(rig: Rig) -> None:
    # GIVEN a validated fact claiming a billion hash buckets, in both majors on the bus
    rig.start()
    forged = FileValidatedV1(
        file_id="c" * 32,
        dataset=DatasetRef(name="orders", version=1),
        bucket=rig.stack.raw,
        key="orders/forged.csv",
        staged_prefix=f"s3://{rig.stack.work}/stage/{'c' * 32}/validated/",
        bucket_count=10**9,
        rows_in=1,
        rows_valid=1,
        rows_quarantined=0,
        bytes_in=10,
        object_created_at=datetime(2024, 3, 1, tzinfo=UTC),
    )
    v2 = Envelope.wrap(forged, correlationid="c" * 32).model_dump(mode="json")
    v2["type"] = "sluice.file.validated.v3"  # the routed major, as a forger would send it
    v2["dataschema"] = v2["dataschema"].replace(".v1.json", ".v3.json")
    v1 = Envelope.wrap(forged, correlationid="c" * 32).model_dump(mode="json")
    entries = [
        {
            "Source": "sluice.validate",
            "DetailType": detail["type"],
            "Detail": orjson.dumps(detail).decode(),
            "EventBusName": rig.stack.bus,
        }
        for detail in (v2, v1)
    ]
    put = rig.stack.client("events").put_events(Entries=entries)
    assert put["FailedEntryCount"] == 0
    # WHEN the pipeline runs until every queue is empty
    rig.settle(0)
    # THEN transform received only the routed (v3) fact and parked it as an invalid contract,
    # naming the field; the ledger and the work bucket were never touched
    sqs = rig.stack.client("sqs")
    got = sqs.receive_message(
        QueueUrl=rig.stack.dlqs["transform"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    (parked,) = got["Messages"]
    assert orjson.loads(parked["Body"])["detail-type"] == "sluice.file.validated.v3"
    attributes = parked["MessageAttributes"]
    assert attributes[REASON_CODE_ATTRIBUTE]["StringValue"] == "invalid_contract"
    assert "bucket_count" in attributes[REASON_ATTRIBUTE]["StringValue"]
    assert sum(len(ids) for service, ids, _ in rig.responses if service == "transform") == 1
    s3 = rig.stack.client("s3")
    assert s3.list_objects_v2(Bucket=rig.stack.work).get("KeyCount", 0) == 0
    # AND Sluice's own producers could never have sent it: publishing refuses the count
    with pytest.raises(ValidationError, match="bucket_count"):
        published_majors(forged)
