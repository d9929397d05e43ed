"""The local runtime provisions the platform's query catalog (Glue database and tables, Athena
workgroup) on the moto server, from the template's generated section, and updates it in place."""

from __future__ import annotations

import copy
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aioboto3
import boto3

from contracts.datasets import DatasetCatalog
from deploy.gen_catalog import catalog_columns
from sluice.local.providers import PROVIDERS, Limits, ProvisionContext, ResourceReport
from sluice.local.providers.base import ResourceRequest
from tests.policy.checks import resolve_intrinsics
from tools.templates import load_template, template_paths

REGION = "us-east-1"
VALUES = {
    "Stage": "dev",
    "AWS::AccountId": "123456789012",
    "ProcessedBucket": "processed",
    "WorkBucket": "work",
    "DataKey.Arn": "arn:aws:kms:us-east-1:123456789012:key/k",
    "CatalogDatabase": "sluice_dev",
}


def _resources() -> dict[str, dict[str, Any]]:
    """The catalog resources of deploy/platform.yaml, intrinsics resolved as CloudFormation would
    (`${!dt}` is the literal `${dt}`)."""
    template = load_template(template_paths()["platform"])
    wanted = ("AWS::Glue::Database", "AWS::Glue::Table", "AWS::Athena::WorkGroup")
    found = {}
    for rid, resource in template["Resources"].items():
        if resource["Type"] in wanted:
            props = resolve_intrinsics(resource["Properties"], VALUES)
            found[rid] = {"Type": resource["Type"], "Properties": _unescape(props)}
    return found


def _unescape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value.replace("${!", "${") if isinstance(value, str) else value


async def _provision(endpoint: str, resources: dict[str, dict[str, Any]]) -> list[ResourceReport]:
    session = aioboto3.Session(region_name=REGION)
    async with AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(session.client(name, endpoint_url=endpoint))
            for name in ("glue", "athena")
        }
        ctx = ProvisionContext(clients.__getitem__, None, Path("."), Limits())  # type: ignore[arg-type]
        reports = []
        for rid, resource in resources.items():
            report = ResourceReport("platform", rid, resource["Type"], "", "created")
            request = ResourceRequest("platform", rid, resource["Properties"], report)
            provider = PROVIDERS[resource["Type"]](ctx)
            await provider.create(request, provider.check(request))
            reports.append(report)
        return reports


async def test_catalog_is_provisioned_as_the_template_declares(moto_endpoint: str) -> None:
    resources = _resources()

    reports = await _provision(moto_endpoint, resources)

    assert {r.action for r in reports} == {"created"}
    glue = boto3.client("glue", region_name=REGION, endpoint_url=moto_endpoint)
    catalog = DatasetCatalog()
    for name in catalog.names():
        table = glue.get_table(DatabaseName="sluice_dev", Name=name)["Table"]
        columns, keys = catalog_columns(catalog.load(name))
        assert [
            {"Name": c["Name"], "Type": c["Type"]} for c in table["StorageDescriptor"]["Columns"]
        ] == columns
        assert table["PartitionKeys"] == keys
        assert table["Parameters"]["projection.dt.type"] == "date"
        assert (
            table["Parameters"]["storage.location.template"]
            == f"s3://processed/dataset={name}/dt=${{dt}}/"
        )
    athena = boto3.client("athena", region_name=REGION, endpoint_url=moto_endpoint)
    config = athena.get_work_group(WorkGroup="sluice-dev")["WorkGroup"]["Configuration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["ResultConfiguration"] == {
        "OutputLocation": "s3://work/athena-results/",
        "EncryptionConfiguration": {"EncryptionOption": "SSE_KMS", "KmsKey": VALUES["DataKey.Arn"]},
    }


async def test_reprovisioning_updates_tables_and_workgroup_in_place(moto_endpoint: str) -> None:
    resources = _resources()
    await _provision(moto_endpoint, resources)
    changed = copy.deepcopy(resources)
    orders = changed["CatalogTableOrders"]["Properties"]["TableInput"]
    orders["StorageDescriptor"]["Columns"].append({"Name": "channel", "Type": "string"})
    orders["Parameters"]["sluice.contract_version"] = "2"
    group = changed["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    group["ResultConfiguration"]["OutputLocation"] = "s3://work/athena-results-v2/"

    reports = await _provision(moto_endpoint, changed)

    assert {r.action for r in reports} == {"updated"}
    glue = boto3.client("glue", region_name=REGION, endpoint_url=moto_endpoint)
    table = glue.get_table(DatabaseName="sluice_dev", Name="orders")["Table"]
    assert table["StorageDescriptor"]["Columns"][-1]["Name"] == "channel"
    assert table["Parameters"]["sluice.contract_version"] == "2"
    athena = boto3.client("athena", region_name=REGION, endpoint_url=moto_endpoint)
    config = athena.get_work_group(WorkGroup="sluice-dev")["WorkGroup"]["Configuration"]
    assert config["ResultConfiguration"]["OutputLocation"] == "s3://work/athena-results-v2/"
