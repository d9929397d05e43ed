"""`sluice query "SQL"`: SQL over the processed Parquet in embedded DuckDB (`sluice.ops.query`)."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import click

from sluice.context import CliContext, table
from sluice.ops.calls import aws_errors

if TYPE_CHECKING:
    import pyarrow as pa

    from sluice.ops.query import QueryResult


class BadQuery(click.ClickException):
    """The SQL does not run: bad usage (exit 2), like an unreadable input."""

    exit_code = 2


class ContractDoesNotLoad(click.ClickException):
    """A table's data contract does not load: the thing checked is not right (exit 1)."""

    exit_code = 1


def load_tables(ctx: CliContext, sql: str) -> tuple[dict[str, pa.Table], list[str]]:
    """The tables the SQL names, read from the stage's processed bucket, and every table name."""
    from contracts.datasets import DatasetCatalog
    from contracts.errors import DatasetContractInvalid
    from sluice.ops.query import load_table, referenced

    catalog = DatasetCatalog()
    known = catalog.names()
    wanted = referenced(sql, known)
    tables: dict[str, pa.Table] = {}
    if not wanted:
        return tables, known
    try:
        contracts = {name: catalog.load(name) for name in wanted}
    except DatasetContractInvalid as error:
        raise ContractDoesNotLoad(
            f"{error} — `sluice contracts check --datasets` lists every problem"
        ) from None
    bucket = ctx.names()["processed_bucket"]
    s3 = ctx.client("s3")
    with aws_errors(ctx, f"reading s3://{bucket}"):
        for name, contract in contracts.items():
            tables[name] = load_table(s3, bucket, contract)
    return tables, known


def query(ctx: CliContext, sql: str) -> QueryResult:
    """Run `sql` over the stage's completed outputs; BadQuery for an unknown table or bad SQL."""
    from sluice.ops.query import QueryError, UnknownTable, database_name, run_sql

    tables, known = load_tables(ctx, sql)
    try:
        return run_sql(sql, tables, database=database_name(ctx.stage), known=known)
    except (UnknownTable, QueryError) as error:
        raise BadQuery(str(error)) from None


def _cell(value: Any) -> str:
    return "NULL" if value is None else str(value)


def render_table(result: QueryResult) -> str:
    if not result.columns:
        return "(no result set)"
    body = table(result.columns, [[_cell(v) for v in row] for row in result.rows])
    return f"{body}\n{len(result.rows)} row(s)"


def render_csv(result: QueryResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([["" if v is None else v for v in row] for row in result.rows])
    return out.getvalue().rstrip("\n")


@click.command("query")
@click.argument("sql")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: columns, types and rows.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV with a header line.")
@click.pass_obj
def command(ctx: CliContext, sql: str, as_json: bool, as_csv: bool) -> None:
    """Run SQL over the processed Parquet, one table per dataset (e.g. `orders`, also
    `sluice_<stage>.orders` as in Athena): the output columns after transform, then the Hive
    partition keys. Only files whose manifest is written (completed outputs) are read.

    Exit codes: 0 done, 2 unknown table or SQL error, 3 endpoint unreachable or stage missing.
    """
    if as_csv and (as_json or ctx.as_json):
        raise click.UsageError("--csv and --json cannot be combined")
    result = query(ctx, sql)
    if as_csv:
        click.echo(render_csv(result))
        return
    ctx.as_json = ctx.as_json or as_json
    data = {
        "columns": result.columns,
        "types": result.types,
        "rows": [dict(zip(result.columns, row, strict=True)) for row in result.rows],
    }
    ctx.emit(data, render_table(result))
