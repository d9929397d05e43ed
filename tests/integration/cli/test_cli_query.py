"""`sluice query`: SQL over the processed bucket of a stage on the moto server, through its S3 API.

The Parquet is written by the output stage's own writer (`write_partitioned`, Hive layout) and
listed in a manifest as the output stage does; one more file's objects are uploaded without a
manifest (a file still being written), and must never show.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from click.testing import CliRunner

import contracts.datasets
from contracts.datasets import DatasetCatalog
from sluice.cli import cli
from sluice_shared.datapath.output import write_partitioned
from sluice_shared.datapath.transform import transformed_schema
from tests.integration.cli.support import Invoke, Platform

UTC = dt.UTC


def _orders(first: int, days: list[int]) -> pa.Table:
    contract = DatasetCatalog().load("orders")
    rows = [
        {
            "order_id": f"ORD-{first + i:06d}",
            "customer_id": f"c-{i}",
            "order_ts": dt.datetime(2024, 3, day, 10, 0, tzinfo=UTC),
            "sku": "SKU-1",
            "quantity": 2,
            "unit_price": 5.0,
            "currency": "EUR",
            "country": "DE" if i % 2 == 0 else None,
            "note": None,
            "line_total": 10.0,
            "country_name": "Germany" if i % 2 == 0 else None,
            "country_region": "EU" if i % 2 == 0 else None,
            "__row": i,
        }
        for i, day in enumerate(days)
    ]
    return pa.Table.from_pylist(rows, schema=transformed_schema(contract))


def _put_file(
    platform: Platform, tmp_path: Path, file_id: str, rows: pa.Table, *, manifest: bool
) -> list[str]:
    """Write `rows` as the output stage does and upload them; the manifest last, if asked."""
    contract = DatasetCatalog().load("orders")
    staged = tmp_path / f"{file_id}.arrow"
    with ipc.new_stream(staged, rows.schema) as writer:
        writer.write_table(rows)
    result = write_partitioned([staged], contract, tmp_path / file_id, file_id=file_id, bucket=0)
    s3 = platform.client("s3")
    bucket = platform.names["processed_bucket"]
    for obj in result.objects:
        s3.put_object(Bucket=bucket, Key=obj.key, Body=obj.local_path.read_bytes())
    if manifest:
        objects = [{"key": o.key, "rows": o.rows} for o in result.objects]
        body = {"file_id": file_id, "objects": objects}
        s3.put_object(
            Bucket=bucket, Key=f"_manifests/dataset=orders/{file_id}.json", Body=orjson.dumps(body)
        )
    return [o.key for o in result.objects]


async def test_query_counts_only_rows_of_files_whose_manifest_is_written(
    platform: Platform, sluice: Invoke, tmp_path: Path
) -> None:
    _put_file(platform, tmp_path, "a" * 32, _orders(0, [1, 1, 2]), manifest=True)
    _put_file(platform, tmp_path, "b" * 32, _orders(100, [2, 3]), manifest=True)
    unlisted = _put_file(platform, tmp_path, "c" * 32, _orders(200, [3, 3, 3, 3]), manifest=False)
    assert unlisted  # the half-written file's Parquet is in the bucket

    result = sluice("query", "select count(*) as n from orders")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["n", "-", "5", "1 row(s)"]


async def test_query_sees_output_columns_and_hive_partition_keys_typed(
    platform: Platform, sluice: Invoke, tmp_path: Path
) -> None:
    _put_file(platform, tmp_path, "a" * 32, _orders(0, [1, 1, 2]), manifest=True)

    result = sluice(
        "query",
        "select dt, count(*) as n, sum(line_total) as total, count(country_name) as named "
        "from sluice_it.orders group by dt order by dt",
        "--json",
    )

    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.output)
    assert doc["columns"] == ["dt", "n", "total", "named"]
    assert doc["types"][0] == "string"
    assert doc["rows"] == [
        {"dt": "2024-03-01", "n": 2, "total": 20.0, "named": 1},
        {"dt": "2024-03-02", "n": 1, "total": 10.0, "named": 1},
    ]


async def test_query_csv_has_header_and_empty_nulls(
    platform: Platform, sluice: Invoke, tmp_path: Path
) -> None:
    _put_file(platform, tmp_path, "a" * 32, _orders(0, [1, 2]), manifest=True)

    result = sluice("query", "select order_id, country from orders order by order_id", "--csv")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["order_id,country", "ORD-000000,DE", "ORD-000001,"]


async def test_query_of_a_dataset_without_outputs_is_an_empty_typed_table(
    platform: Platform, sluice: Invoke
) -> None:
    result = sluice("query", "select count(*) as n, max(value_rounded) as m from sensor_readings")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[2].split() == ["0", "NULL"]


async def test_query_of_unknown_table_exits_2_naming_the_datasets(
    platform: Platform, sluice: Invoke
) -> None:
    result = sluice("query", "select * from invoices")

    assert result.exit_code == 2
    assert "unknown table invoices" in result.output
    assert "orders, sensor_readings" in result.output


async def test_query_with_bad_sql_exits_2(platform: Platform, sluice: Invoke) -> None:
    result = sluice("query", "select nope from orders")

    assert result.exit_code == 2
    assert "nope" in result.output


async def test_query_cannot_read_local_files(
    platform: Platform, sluice: Invoke, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")

    result = sluice("query", f"select * from read_csv('{secret}')")

    assert result.exit_code == 2
    assert "disabled" in result.output.lower()


async def test_query_of_unprovisioned_stage_exits_3(moto_endpoint: str, sluice: Invoke) -> None:
    result = sluice("query", "select count(*) from orders")

    assert result.exit_code == 3
    assert "not provisioned" in result.output


def test_query_with_unreachable_endpoint_exits_3() -> None:
    result = CliRunner().invoke(
        cli, ["--endpoint-url", "http://127.0.0.1:9", "query", "select count(*) from orders"]
    )

    assert result.exit_code == 3
    assert "cannot reach" in result.output


async def test_query_of_a_table_whose_contract_does_not_load_exits_1_with_the_yaml_path(
    platform: Platform, sluice: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The YAML `on:` mistake in a lookup (read as the boolean true), in a copy of the contracts.
    root = tmp_path / "datasets"
    shutil.copytree(DatasetCatalog().root, root, ignore=shutil.ignore_patterns("*.py", "__*"))
    contract = root / "orders" / "v1.yaml"
    text = contract.read_text()
    assert "{table: countries, column: country," in text
    contract.write_text(
        text.replace("{table: countries, column: country,", "{table: countries, on: country,")
    )
    monkeypatch.setattr(contracts.datasets, "DatasetCatalog", lambda: DatasetCatalog(root))

    result = sluice("query", "select count(*) from orders")

    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "transform.lookups[0].on" in result.output
    assert "contracts check --datasets" in result.output
