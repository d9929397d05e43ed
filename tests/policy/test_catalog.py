"""The query catalog of the platform template (deploy/gen_catalog.py): one Glue table per data
contract with the columns `sluice query` shows, partition projection instead of crawlers, and an
Athena workgroup that enforces encrypted results in a bucket with a lifecycle."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from contracts.datasets import DatasetCatalog
from deploy.gen_catalog import catalog_columns, glue_type, logical_id
from tests.policy import checks

REPO = Path(__file__).resolve().parents[2]
GEN_CATALOG = REPO / "deploy" / "gen_catalog.py"
ENCRYPTIONS = {"SSE_KMS", "SSE_S3"}


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GEN_CATALOG), *args], capture_output=True, text=True, check=False
    )


def _sub_text(value: Any) -> str:
    return str(value["Fn::Sub"]) if isinstance(value, dict) and "Fn::Sub" in value else str(value)


def check_catalog_tables(cfn: checks.Template, catalog: DatasetCatalog) -> list[str]:
    """Every data contract has its table: columns and keys as `sluice query` shows them, the
    newest contract version, partition projection and a location template for each key."""
    problems: list[str] = []
    tables = {
        str(props["TableInput"]["Name"]): (rid, props)
        for rid, props in checks.resources_of(cfn, "AWS::Glue::Table")
    }
    for name in catalog.names():
        contract = catalog.load(name)
        if name not in tables:
            problems.append(f"dataset {name}: no AWS::Glue::Table")
            continue
        rid, props = tables[name]
        table_input = props["TableInput"]
        columns, keys = catalog_columns(contract)
        if table_input["StorageDescriptor"]["Columns"] != columns:
            problems.append(f"{rid}: columns differ from the output of {name} v{contract.version}")
        if table_input.get("PartitionKeys", []) != keys:
            problems.append(f"{rid}: partition keys differ from {name}'s partition_by")
        params = table_input.get("Parameters", {})
        if params.get("sluice.contract_version") != str(contract.version):
            problems.append(f"{rid}: not the newest contract version v{contract.version}")
        if keys:
            if params.get("projection.enabled") != "true":
                problems.append(f"{rid}: partition projection is not enabled")
            template = _sub_text(params.get("storage.location.template", ""))
            for key in keys:
                if f"projection.{key['Name']}.type" not in params:
                    problems.append(f"{rid}: no projection type for partition key {key['Name']}")
                if f"{key['Name']}=${{!{key['Name']}}}" not in template:
                    problems.append(f"{rid}: storage.location.template lacks {key['Name']}")
    return problems


def check_workgroups(cfn: checks.Template) -> list[str]:
    """Every Athena workgroup enforces its configuration and encrypted results written to a
    bucket of the template whose lifecycle expires objects."""
    problems: list[str] = []
    expiring = {
        rid
        for rid, bucket in checks.resources_of(cfn, "AWS::S3::Bucket")
        if any(
            rule.get("ExpirationInDays") is not None and rule.get("Status") == "Enabled"
            for rule in bucket.get("LifecycleConfiguration", {}).get("Rules", [])
        )
    }
    groups = list(checks.resources_of(cfn, "AWS::Athena::WorkGroup"))
    if not groups:
        problems.append("no AWS::Athena::WorkGroup")
    for rid, group in groups:
        config = group.get("WorkGroupConfiguration", {})
        if config.get("EnforceWorkGroupConfiguration") is not True:
            problems.append(f"{rid}: EnforceWorkGroupConfiguration is not true")
        result = config.get("ResultConfiguration", {})
        encryption = result.get("EncryptionConfiguration", {}).get("EncryptionOption")
        if encryption not in ENCRYPTIONS:
            problems.append(f"{rid}: results are not encrypted (EncryptionOption {encryption})")
        location = re.fullmatch(r"s3://\$\{(\w+)\}/.+", _sub_text(result.get("OutputLocation")))
        if location is None or location.group(1) not in expiring:
            problems.append(
                f"{rid}: results location is not in a bucket with an expiring lifecycle"
            )
    return problems


def test_platform_catalog_section_matches_contracts() -> None:
    result = _check("--check")
    assert result.returncode == 0, result.stderr


def test_catalog_has_a_table_per_data_contract(translated: dict[str, Any]) -> None:
    assert check_catalog_tables(translated["platform"], DatasetCatalog()) == []


def test_workgroup_enforces_encrypted_expiring_results(translated: dict[str, Any]) -> None:
    assert check_workgroups(translated["platform"]) == []


def test_glue_types_of_the_contract_column_types() -> None:
    import pyarrow as pa

    assert [glue_type(t) for t in (pa.string(), pa.int64(), pa.float64(), pa.bool_())] == [
        "string",
        "bigint",
        "double",
        "boolean",
    ]
    assert glue_type(pa.date32()) == "date"
    assert glue_type(pa.timestamp("us", tz="UTC")) == "timestamp"
    with pytest.raises(ValueError, match="no Glue type"):
        glue_type(pa.list_(pa.string()))


# ---------------------------------------------------------------- each check catches its breach


def test_a_new_contract_version_makes_the_section_stale_until_regenerated(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    shutil.copytree(REPO / "contracts" / "datasets", datasets)
    v1 = (datasets / "orders" / "v1.yaml").read_text("utf-8")
    v2 = v1.replace("version: 1", "version: 2").replace(
        "  - {name: note, type: string, nullable: true, constraints: {max_length: 500}}",
        "  - {name: note, type: string, nullable: true, constraints: {max_length: 500}}\n"
        "  - {name: channel, type: string, nullable: true}",
    )
    assert "channel" in v2
    assert "version: 2" in v2
    (datasets / "orders" / "v2.yaml").write_text(v2, "utf-8")
    template = tmp_path / "platform.yaml"
    shutil.copy(REPO / "deploy" / "platform.yaml", template)

    stale = _check("--check", "--template", str(template), "--datasets", str(datasets))
    assert stale.returncode == 1
    assert "out of date" in stale.stderr

    assert _check("--template", str(template), "--datasets", str(datasets)).returncode == 0
    text = template.read_text("utf-8")
    assert 'sluice.contract_version: "2"' in text
    assert '{Name: channel, Type: "string"}' in text
    fresh = _check("--check", "--template", str(template), "--datasets", str(datasets))
    assert fresh.returncode == 0, fresh.stderr


def test_table_with_stale_columns_reported(translated: dict[str, Any]) -> None:
    cfn = copy.deepcopy(translated["platform"])
    table = cfn["Resources"][logical_id("orders")]["Properties"]["TableInput"]
    table["StorageDescriptor"]["Columns"].pop()
    table["Parameters"]["projection.enabled"] = "false"
    assert check_catalog_tables(cfn, DatasetCatalog()) == [
        "CatalogTableOrders: columns differ from the output of orders v1",
        "CatalogTableOrders: partition projection is not enabled",
    ]


def test_missing_table_reported(translated: dict[str, Any]) -> None:
    cfn = copy.deepcopy(translated["platform"])
    del cfn["Resources"][logical_id("sensor_readings")]
    assert check_catalog_tables(cfn, DatasetCatalog()) == [
        "dataset sensor_readings: no AWS::Glue::Table"
    ]


def test_workgroup_without_enforcement_or_encryption_reported(translated: dict[str, Any]) -> None:
    cfn = copy.deepcopy(translated["platform"])
    config = cfn["Resources"]["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    config["EnforceWorkGroupConfiguration"] = False
    del config["ResultConfiguration"]["EncryptionConfiguration"]
    config["ResultConfiguration"]["OutputLocation"] = {"Fn::Sub": "s3://${ProcessedBucket}/r/"}
    assert check_workgroups(cfn) == [
        "AthenaWorkGroup: EnforceWorkGroupConfiguration is not true",
        "AthenaWorkGroup: results are not encrypted (EncryptionOption None)",
        "AthenaWorkGroup: results location is not in a bucket with an expiring lifecycle",
    ]
