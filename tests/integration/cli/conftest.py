"""A provisioned stage on the moto server (SSM names, ledger, buckets, bus, DLQs) and a runner
for the `sluice` CLI pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aioboto3
import boto3
import pytest
from click.testing import CliRunner, Result

from sluice.cli import cli
from sluice.context import NAME_PARAMETERS
from sluice_shared.aws.dynamodb import DynamoDbLedger, create_ledger_table
from tests.integration.cli.support import REGION, STAGE, Invoke, Platform

SERVICES = ("ingest", "validate", "transform", "output")


@pytest.fixture
async def platform(moto_endpoint: str) -> AsyncIterator[Platform]:
    """GIVEN a stage `it` provisioned the way the platform stack does it."""
    names = {
        "raw_bucket": "it-raw",
        "work_bucket": "it-work",
        "processed_bucket": "it-processed",
        "error_bucket": "it-error",
        "event_bus": "sluice-it",
        "ledger_table": "sluice-it-ledger",
    }
    ssm = boto3.client("ssm", region_name=REGION, endpoint_url=moto_endpoint)
    for key, value in names.items():
        name = f"/sluice/{STAGE}/{NAME_PARAMETERS[key]}"
        ssm.put_parameter(Name=name, Value=value, Type="String")
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)
    for key in ("raw_bucket", "work_bucket", "processed_bucket", "error_bucket"):
        s3.create_bucket(Bucket=names[key])
    boto3.client("events", region_name=REGION, endpoint_url=moto_endpoint).create_event_bus(
        Name=names["event_bus"]
    )
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_endpoint)
    dlqs = {
        svc: sqs.create_queue(QueueName=f"sluice-{STAGE}-{svc}-dlq")["QueueUrl"] for svc in SERVICES
    }
    session = aioboto3.Session(region_name=REGION)
    async with session.client("dynamodb", endpoint_url=moto_endpoint) as dynamodb:
        await create_ledger_table(dynamodb, names["ledger_table"])
        yield Platform(moto_endpoint, names, DynamoDbLedger(dynamodb, names["ledger_table"]), dlqs)


@pytest.fixture
def sluice(moto_endpoint: str) -> Invoke:
    """Run `sluice --endpoint-url <moto> --stage it ARGS…` in-process."""

    def run(*args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            cli, ["--endpoint-url", moto_endpoint, "--stage", STAGE, *args], input=input
        )

    return run
