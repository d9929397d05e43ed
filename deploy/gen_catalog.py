"""Generate the query-catalog section of deploy/platform.yaml from the data contracts.

What Athena needs to query the processed Parquet, with nothing to crawl or repair:

- a Glue database `sluice_<stage>` and, per data contract (`contracts/datasets/<d>/v<N>.yaml`,
  newest version), a Glue table named as the dataset: the columns of the output after transform
  with their Glue types (`sluice.ops.query.table_schema`, the schema `sluice query` uses locally),
  the Hive partition keys, and partition projection (`projection.enabled`, one `date` projection
  per day/month/year partition, `injected` for identity partitions, `storage.location.template`),
  so a new `dt=` folder is queryable the moment the output stage writes it;
- an Athena workgroup `sluice-<stage>` whose results go, encrypted with the platform's KMS key,
  to `athena-results/` in the work bucket (expired by its lifecycle); the workgroup's settings
  are enforced over the client's;
- SSM parameters naming the database and the workgroup, as for the other platform names.

A new contract version changes the table (the `sluice.contract_version` parameter and the
columns), so the check below fails until the section is regenerated.

    python deploy/gen_catalog.py            # rewrite the section in place
    python deploy/gen_catalog.py --check    # exit 1 if the section is out of date (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from contracts.datasets import DatasetContract, PartitionSpec

REPO = Path(__file__).resolve().parents[1]
PLATFORM = REPO / "deploy" / "platform.yaml"
BEGIN = "  # BEGIN GENERATED CATALOG"
END = "  # END GENERATED CATALOG"
PROJECTION_START = "2020-01-01"
"""First day a date projection covers (`projection.<key>.range` = start,NOW)."""
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
# day/month/year partition → (Athena date format, projection interval unit)
_DATE_PROJECTION = {
    "day": ("yyyy-MM-dd", "DAYS"),
    "month": ("yyyy-MM", "MONTHS"),
    "year": ("yyyy", "YEARS"),
}


def glue_type(arrow: pa.DataType) -> str:
    """The Glue/Athena (Hive DDL) type of an output column's Arrow type.

    Raises:
        ValueError: a type the catalog cannot declare.
    """
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "string"
    if pa.types.is_int64(arrow):
        return "bigint"
    if pa.types.is_int32(arrow):
        return "int"
    if pa.types.is_float64(arrow):
        return "double"
    if pa.types.is_float32(arrow):
        return "float"
    if pa.types.is_boolean(arrow):
        return "boolean"
    if pa.types.is_date32(arrow):
        return "date"
    if pa.types.is_timestamp(arrow):
        return "timestamp"
    if pa.types.is_decimal(arrow):
        return f"decimal({arrow.precision},{arrow.scale})"
    raise ValueError(f"no Glue type for Arrow type {arrow}")


def catalog_columns(contract: DatasetContract) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(columns, partition keys) of a dataset's table, each `{"Name", "Type"}`, from the same
    schema `sluice query` uses locally."""
    from sluice.ops.query import table_schema

    partition_names = {spec.name for spec in contract.partition_by}
    columns: list[dict[str, str]] = []
    keys: list[dict[str, str]] = []
    for field in table_schema(contract):
        entry = {"Name": field.name, "Type": glue_type(field.type)}
        (keys if field.name in partition_names else columns).append(entry)
    return columns, keys


def _projection(spec: PartitionSpec) -> dict[str, str]:
    prefix = f"projection.{spec.name}"
    if spec.transform == "identity":
        # Values are whatever the data holds: a query names the value it wants (WHERE key = …).
        return {f"{prefix}.type": "injected"}
    date_format, unit = _DATE_PROJECTION[spec.transform]
    start = PROJECTION_START[: len(date_format)]
    return {
        f"{prefix}.type": "date",
        f"{prefix}.format": date_format,
        f"{prefix}.range": f"{start},NOW",
        f"{prefix}.interval": "1",
        f"{prefix}.interval.unit": unit,
    }


def table_parameters(contract: DatasetContract) -> dict[str, str]:
    """The table properties: Parquet, partition projection and where the contract comes from.
    `storage.location.template` is relative to the processed bucket (the template prefixes it)."""
    params = {
        "classification": "parquet",
        "EXTERNAL": "TRUE",
        "sluice.dataset": contract.name,
        "sluice.contract_version": str(contract.version),
    }
    if contract.partition_by:
        params["projection.enabled"] = "true"
        for spec in contract.partition_by:
            params.update(_projection(spec))
        path = "/".join(f"{spec.name}=${{{spec.name}}}" for spec in contract.partition_by)
        params["storage.location.template"] = f"dataset={contract.name}/{path}/"
    return params


def logical_id(dataset: str) -> str:
    """`sensor_readings` → `CatalogTableSensorReadings`."""
    return "CatalogTable" + "".join(part.capitalize() for part in dataset.split("_"))


def _sub(text: str) -> str:
    """A `!Sub` string literal: `${x}` that is not a template reference is written `${!x}`."""
    return json.dumps(
        text.replace("${", "${!").replace("${!ProcessedBucket}", "${ProcessedBucket}")
    )


def _scalar(value: str) -> str:
    return json.dumps(value)


def render_table(contract: DatasetContract, source: str) -> list[str]:
    columns, keys = catalog_columns(contract)
    params = table_parameters(contract)
    lines = [
        f"  {logical_id(contract.name)}:",
        "    Type: AWS::Glue::Table",
        "    Properties:",
        "      CatalogId: !Ref AWS::AccountId",
        "      DatabaseName: !Ref CatalogDatabase",
        "      TableInput:",
        f"        Name: {contract.name}",
        f"        Description: {_scalar(f'Generated from {source} (v{contract.version})')}",
        "        TableType: EXTERNAL_TABLE",
        "        Parameters:",
    ]
    for name, value in params.items():
        if name == "storage.location.template":
            location = "s3://${ProcessedBucket}/" + value
            lines.append(f"          {name}: !Sub {_sub(location)}")
        else:
            lines.append(f"          {name}: {_scalar(value)}")
    lines.append("        PartitionKeys:" + ("" if keys else " []"))
    lines += [f"          - {{Name: {k['Name']}, Type: {_scalar(k['Type'])}}}" for k in keys]
    lines += [
        "        StorageDescriptor:",
        f'          Location: !Sub "s3://${{ProcessedBucket}}/dataset={contract.name}/"',
        f"          InputFormat: {PARQUET_INPUT}",
        f"          OutputFormat: {PARQUET_OUTPUT}",
        "          SerdeInfo:",
        f"            SerializationLibrary: {PARQUET_SERDE}",
        "          Columns:",
        *(f"            - {{Name: {c['Name']}, Type: {_scalar(c['Type'])}}}" for c in columns),
        "",
    ]
    return lines


_FIXED = """\
  CatalogDatabase:
    Type: AWS::Glue::Database
    Properties:
      CatalogId: !Ref AWS::AccountId
      DatabaseInput:
        Name: !Sub "sluice_${Stage}"
        Description: !Sub "Sluice ${Stage}: one table per data contract over the processed bucket"

  # Query results are written encrypted with the platform key to the work bucket, whose
  # lifecycle expires them; the workgroup's settings override the client's.
  AthenaWorkGroup:
    Type: AWS::Athena::WorkGroup
    Properties:
      Name: !Sub "sluice-${Stage}"
      Description: !Sub "Sluice ${Stage}: queries over the catalog tables of sluice_${Stage}"
      State: ENABLED
      RecursiveDeleteOption: false
      WorkGroupConfiguration:
        EnforceWorkGroupConfiguration: true
        PublishCloudWatchMetricsEnabled: true
        BytesScannedCutoffPerQuery: 1099511627776
        EngineVersion:
          SelectedEngineVersion: Athena engine version 3
        ResultConfiguration:
          OutputLocation: !Sub "s3://${WorkBucket}/athena-results/"
          EncryptionConfiguration:
            EncryptionOption: SSE_KMS
            KmsKey: !GetAtt DataKey.Arn

  CatalogDatabaseNameParam:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/sluice/${Stage}/catalog-database-name"
      Type: String
      Value: !Ref CatalogDatabase
  AthenaWorkGroupNameParam:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/sluice/${Stage}/athena-workgroup-name"
      Type: String
      Value: !Ref AthenaWorkGroup

"""


def render_section(contracts: list[tuple[DatasetContract, str]]) -> str:
    """The YAML for the generated section, markers included (newline-terminated)."""
    lines = [BEGIN + " (deploy/gen_catalog.py; edit the data contracts, then re-run it)"]
    lines += _FIXED.splitlines()
    for contract, source in contracts:
        lines += render_table(contract, source)
    lines.append(END)
    return "\n".join(lines) + "\n"


def load_contracts(root: Path | None = None) -> list[tuple[DatasetContract, str]]:
    """The newest version of every data contract, with its file relative to the repository."""
    from contracts.datasets import DatasetCatalog

    catalog = DatasetCatalog(root) if root is not None else DatasetCatalog()
    found = []
    for name in catalog.names():
        contract = catalog.load(name)
        path = catalog.root / name / f"v{contract.version}.yaml"
        source = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        found.append((contract, str(source)))
    return found


def regenerate(template_text: str, contracts: list[tuple[DatasetContract, str]]) -> str:
    """Replace the generated section of a platform template.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start = template_text.find(BEGIN)
    end = template_text.find(END)
    if start < 0 or end < start:
        raise ValueError("platform template: generated-catalog markers missing or out of order")
    end = template_text.index("\n", end) + 1
    return template_text[:start] + render_section(contracts) + template_text[end:]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring): 0 written or up to date, 1 drift."""
    parser = argparse.ArgumentParser(prog="deploy/gen_catalog.py")
    parser.add_argument("--check", action="store_true", help="fail if the template is stale")
    parser.add_argument("--template", type=Path, default=PLATFORM)
    parser.add_argument("--datasets", type=Path, default=None, help="data contracts folder")
    args = parser.parse_args(argv)
    contracts = load_contracts(args.datasets)
    current = args.template.read_text("utf-8")
    wanted = regenerate(current, contracts)
    if args.check:
        if wanted != current:
            print(
                f"gen_catalog: {args.template} is out of date with the data contracts; "
                "run: python deploy/gen_catalog.py",
                file=sys.stderr,
            )
            return 1
        print(f"gen_catalog: {len(contracts)} table(s) up to date")
        return 0
    if wanted != current:
        args.template.write_text(wanted, "utf-8")
    print(f"gen_catalog: {len(contracts)} table(s) written to {args.template}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
