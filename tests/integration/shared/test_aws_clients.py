"""How a function's AWS clients are opened (`sluice_shared.aws.clients`), on a moto server."""

from __future__ import annotations

from typing import Any

from sluice_shared.aws import open_aws_deps
from sluice_shared.published_contracts import PublishedCatalog
from sluice_shared.settings import SluiceSettings


async def test_adapters_and_contract_reader_parse_each_service_model_once(
    moto_endpoint: str,
) -> None:
    # GIVEN a function's adapters (aioboto3) and its contract reader (plain botocore)
    settings = SluiceSettings(
        raw_bucket="sluice-raw",
        work_bucket="sluice-work",
        processed_bucket="sluice-processed",
        error_bucket="sluice-error",
        event_bus="sluice-bus",
        ledger_table="sluice-ledger",
        contracts_prefix="_contracts/",
    )
    async with open_aws_deps(settings) as deps:
        adapters_s3: Any = deps.objects._client  # type: ignore[attr-defined]
        reader_s3: Any = PublishedCatalog(settings.processed_bucket)._s3()

        # THEN both S3 clients stand on the very same parsed model, read once for the process
        model = adapters_s3.meta.service_model._service_description
        assert reader_s3.meta.service_model._service_description is model
        # and both still work against the endpoint
        await adapters_s3.create_bucket(Bucket=settings.processed_bucket)
        listed = reader_s3.list_buckets()["Buckets"]
        assert settings.processed_bucket in [bucket["Name"] for bucket in listed]
