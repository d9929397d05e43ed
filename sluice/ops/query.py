"""SQL over the processed bucket with embedded DuckDB, under the table names of the catalog.

One table per data contract, named as the dataset (`orders`), with the columns of the output
after transform and then the Hive partition keys: the same columns, types and names as the Glue
Data Catalog table that Athena queries on AWS (`catalog_columns`), so a query written locally runs
unchanged in Athena.

Only completed outputs are read: a file's Parquet objects are the ones its manifest
(`_manifests/dataset=<d>/<file_id>.json`, written after every object) lists, so a file still being
written, or one whose objects are left over from an earlier attempt, never shows. Objects come
through the endpoint's S3 API (ListObjectsV2 + GetObject) into pyarrow tables registered in DuckDB:
no DuckDB extension is needed (httpfs would be a download).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice_shared.datapath.output import HIVE_NULL, output_schema
from sluice_shared.datapath.transform import transformed_schema

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from contracts.datasets import DatasetContract, PartitionSpec

MAX_MANIFEST_BYTES = 64 * 2**20
_IDENTITY_KEEPS_TYPE = (pa.string(), pa.int64(), pa.bool_(), pa.date32())


class UnknownTable(ValueError):
    """The SQL names a table that is not a dataset of the catalog."""


class QueryError(ValueError):
    """DuckDB refused the SQL (syntax, unknown column, type error...)."""


def database_name(stage: str) -> str:
    """The catalog database of a stage (Glue database on AWS, a DuckDB schema locally)."""
    return f"sluice_{stage}".replace("-", "_").lower()


def partition_type(contract: DatasetContract, spec: PartitionSpec) -> pa.DataType:
    """The type of a Hive partition key as the catalog declares it: `day` (`2024-03-01`), `month`
    (`2024-03`) and `year` → string, as Athena's date projection documents it (compare with
    `dt >= '2024-03-01'`); identity → the column's type when a path segment keeps it exactly
    (string, int64, bool, date), else string."""
    if spec.transform != "identity":
        return pa.string()
    column_type = transformed_schema(contract).field(spec.column).type
    return column_type if column_type in _IDENTITY_KEEPS_TYPE else pa.string()


def table_schema(contract: DatasetContract) -> pa.Schema:
    """The queryable table: the Parquet columns, then the partition keys (as Athena orders them)."""
    fields = list(output_schema(contract))
    names = {f.name for f in fields}
    for spec in contract.partition_by:
        if spec.name in names:  # cannot happen for a valid contract; never two columns of a name
            raise ValueError(f"{contract.name}: partition key {spec.name!r} is also a column")
        fields.append(pa.field(spec.name, partition_type(contract, spec)))
    return pa.schema(fields)


def partition_values(key: str) -> dict[str, str | None]:
    """`dataset=orders/dt=2024-03-01/part-….parquet` → {"dt": "2024-03-01"} (Hive-unescaped;
    the Hive null partition → None). The `dataset=` segment is not a column."""
    values: dict[str, str | None] = {}
    for segment in key.split("/")[1:-1]:
        name, sep, value = segment.partition("=")
        if sep:
            values[name] = None if value == HIVE_NULL else unquote(value)
    return values


def completed_objects(s3: Any, bucket: str, dataset: str) -> list[str]:
    """Keys of the Parquet objects of every completed file of `dataset`, from the manifests."""
    prefix = f"_manifests/dataset={dataset}/"
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not str(item["Key"]).endswith(".json"):
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]
            manifest = orjson.loads(body.read(MAX_MANIFEST_BYTES + 1))
            keys.extend(str(o["key"]) for o in manifest.get("objects", []))
    return sorted(keys)


def _conform(table: pa.Table, schema: pa.Schema, key: str) -> pa.Table:
    """One object's rows in the table's schema: partition keys from the path, columns an older
    contract version lacks as nulls, every column cast to the newest version's type."""
    partitions = partition_values(key)
    columns: list[pa.Array | pa.ChunkedArray] = []
    for field in schema:
        if field.name in partitions and field.name not in table.column_names:
            raw = partitions[field.name]
            column = pa.array([raw] * table.num_rows, pa.string())
            columns.append(pc.cast(column, field.type))
        elif field.name in table.column_names:
            columns.append(pc.cast(table.column(field.name), field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def load_table(s3: Any, bucket: str, contract: DatasetContract) -> pa.Table:
    """Every completed output row of the contract's dataset, as one table of `table_schema`."""
    schema = table_schema(contract)
    parts = []
    for key in completed_objects(s3, bucket, contract.name):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        parts.append(_conform(pq.read_table(pa.BufferReader(body)), schema, key))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def referenced(sql: str, names: Iterable[str]) -> list[str]:
    """The dataset names that occur as a word of the SQL (only those are read from S3)."""
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql)}
    return sorted(n for n in names if n.lower() in words)


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]


def run_sql(
    sql: str,
    tables: Mapping[str, pa.Table],
    *,
    database: str,
    known: Iterable[str] = (),
) -> QueryResult:
    """Run `sql` in a fresh in-memory DuckDB that sees `tables` by name, and also as
    `<database>.<name>` (the Athena spelling). DuckDB may not read or write local files and
    never downloads an extension: the SQL sees the catalog's tables and nothing else.

    Raises UnknownTable or QueryError.
    """
    import duckdb

    config: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    with duckdb.connect(":memory:", config=config) as con:
        con.execute(f'CREATE SCHEMA "{database}"')
        for name, table in tables.items():
            con.register(name, table)
            con.execute(f'CREATE VIEW "{database}"."{name}" AS SELECT * FROM "{name}"')
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            relation = con.sql(sql)
            if relation is None:  # a statement without a result set
                return QueryResult([], [], [])
            result = relation.to_arrow_table()
        except duckdb.CatalogException as error:
            found = re.search(r"Table with name (\S+) does not exist", str(error))
            if found:
                names = ", ".join(sorted({*tables, *known})) or "none"
                raise UnknownTable(
                    f"unknown table {found.group(1)}: the tables are the datasets ({names})"
                ) from None
            raise QueryError(str(error)) from None
        except duckdb.Error as error:
            raise QueryError(str(error)) from None
    columns = [column.to_pylist() for column in result.columns]
    return QueryResult(
        columns=list(result.column_names),
        types=[str(f.type) for f in result.schema],
        rows=[list(row) for row in zip(*columns, strict=True)],
    )
