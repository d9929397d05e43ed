"""ItemReader `InputType: PARQUET`, on one object and through an Athena manifest
(`ManifestType: ATHENA_DATA`), with boto3 against the standalone endpoint and S3 on moto.

AWS page followed: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html
(a Parquet row becomes one item keyed by column name; an Athena UNLOAD manifest lists one data
file URI a line, and the items are the rows of every listed file).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from sluice.local.workflow import InvokeResult, ThreadedWorkflowService
from sluice.local.workflow.adapters import Boto3SdkCaller
from tests.integration.workflow.support import client, run_to_end, served

ROLE = "arn:aws:iam::123456789012:role/sfn"


class Echo:
    """Stands in for a function: returns its input."""

    async def invoke(self, function_name_or_arn: str, payload: Any) -> InvokeResult:
        return InvokeResult(payload=payload)


@pytest.fixture
def sfn(moto_endpoint: str) -> Iterator[Any]:
    service = ThreadedWorkflowService(invoker=Echo(), sdk=Boto3SdkCaller(moto_endpoint)).start()
    with served(service) as url:
        yield client(url)


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


def _definition(reader_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "StartAt": "Each Row",
        "States": {
            "Each Row": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": reader_config,
                    "Parameters": {"Bucket": "data", "Key.$": "$.key"},
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                    "StartAt": "Echo",
                    "States": {
                        "Echo": {
                            "Type": "Task",
                            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:echo",
                            "End": True,
                        }
                    },
                },
                "End": True,
            }
        },
    }


def _run(sfn: Any, name: str, definition: dict[str, Any], key: str) -> dict[str, Any]:
    return run_to_end(sfn, name, definition, {"key": key})


def test_parquet_object_rows_become_items_keyed_by_column(sfn: Any, moto_endpoint: str) -> None:
    # GIVEN a Parquet object with typed columns
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    rows = [
        {"id": 1, "name": "ada", "score": 9.5, "day": date(2024, 1, 2)},
        {"id": 2, "name": "bob", "score": None, "day": date(2024, 1, 3)},
    ]
    s3.put_object(Bucket="data", Key="rows.parquet", Body=_parquet(rows))
    # WHEN a Distributed Map reads it with InputType PARQUET
    doc = _run(sfn, "parquet", _definition({"InputType": "PARQUET"}), "rows.parquet")
    # THEN each row is one child's input, as JSON with the column names as keys
    assert doc["status"] == "SUCCEEDED", doc.get("cause")
    assert json.loads(doc["output"]) == [
        {"id": 1, "name": "ada", "score": 9.5, "day": "2024-01-02"},
        {"id": 2, "name": "bob", "score": None, "day": "2024-01-03"},
    ]


def test_athena_manifest_reads_the_rows_of_every_listed_parquet_file(
    sfn: Any, moto_endpoint: str
) -> None:
    # GIVEN an Athena UNLOAD result: two Parquet files and the manifest listing them
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    s3.create_bucket(Bucket="unload")
    s3.put_object(Bucket="unload", Key="q/part-0.parquet", Body=_parquet([{"n": 1}, {"n": 2}]))
    s3.put_object(Bucket="unload", Key="q/part-1.parquet", Body=_parquet([{"n": 3}]))
    manifest = "s3://unload/q/part-0.parquet\ns3://unload/q/part-1.parquet\n"
    s3.put_object(Bucket="data", Key="q-manifest.csv", Body=manifest.encode())
    # WHEN the reader is given the manifest with ManifestType ATHENA_DATA
    config = {"InputType": "PARQUET", "ManifestType": "ATHENA_DATA", "MaxItems": 2}
    doc = _run(sfn, "athena", _definition(config), "q-manifest.csv")
    # THEN the items are the listed files' rows, in order (MaxItems still applies)
    assert doc["status"] == "SUCCEEDED", doc.get("cause")
    assert json.loads(doc["output"]) == [{"n": 1}, {"n": 2}]


def test_a_non_parquet_object_fails_the_map_with_item_reader_failed(
    sfn: Any, moto_endpoint: str
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="rows.parquet", Body=b"id,name\n1,ada\n")
    doc = _run(sfn, "notparquet", _definition({"InputType": "PARQUET"}), "rows.parquet")
    assert (doc["status"], doc["error"]) == ("FAILED", "States.ItemReaderFailed")


def test_athena_manifest_with_a_json_input_type_is_refused_at_create(sfn: Any) -> None:
    definition = _definition({"InputType": "JSON", "ManifestType": "ATHENA_DATA"})
    with pytest.raises(ClientError) as refused:
        sfn.create_state_machine(name="bad", definition=json.dumps(definition), roleArn=ROLE)
    assert refused.value.response["Error"]["Code"] == "InvalidDefinition"
    assert (
        "/States/Each Row/ItemReader/ReaderConfig/InputType"
        in refused.value.response["Error"]["Message"]
    )
