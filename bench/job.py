"""The benchmark job, stated once from the `orders` contract so every engine does the same work.

1. read the CSV (header, `,`, `"`; empty field = null);
2. check every column against the contract: field count, type (int64, float64, ISO 8601 timestamp
   with impossible dates rejected), not-null, min/max, enum, regex, max length;
3. split valid rows from bad rows (bad rows are written with a reason);
4. dedupe valid rows on the primary key, first occurrence wins, later copies are bad rows;
5. derived columns that reach the output (`line_total = quantity * unit_price`);
6. left join the `countries` lookup (adds `country_name`, `country_region`, row count unchanged);
7. write Parquet (zstd) partitioned by `dt` = UTC day of `order_ts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contracts.datasets import ColumnSpec, DatasetCatalog, DatasetContract
from contracts.datasets.loader import load_contract

DATASET = "orders"


@dataclass(frozen=True)
class Job:
    contract: DatasetContract
    lookup_csv: Path

    @property
    def columns(self) -> list[ColumnSpec]:
        return list(self.contract.columns)

    @property
    def key(self) -> str:
        (key,) = self.contract.primary_key
        return key

    @property
    def partition_column(self) -> str:
        (part,) = self.contract.partition_by
        assert part.transform == "day"
        return part.column

    @property
    def multiply(self) -> tuple[str, str, str]:
        """The one derived column that reaches the output: (name, left, right)."""
        kept = [
            d for d in self.contract.transform.derived if d.name not in self.contract.transform.drop
        ]
        (derived,) = kept
        assert derived.op == "multiply"
        left, right = derived.args
        assert isinstance(left, str)
        assert isinstance(right, str)
        return derived.name, left, right

    @property
    def lookup(self) -> tuple[str, str, list[str], str]:
        """(data column, lookup key, lookup columns, prefix)."""
        (lk,) = self.contract.transform.lookups
        return lk.column, lk.key, list(lk.columns), lk.prefix


def orders_job() -> Job:
    return dataset_job(DATASET)


def dataset_job(dataset: str) -> Job:
    """The job on `dataset` (orders: the CSV job above; sensor_readings: the JSON Lines job,
    the same steps with its contract's checks, derived columns and lookup)."""
    contract = load_contract(dataset)
    (lk,) = contract.transform.lookups
    return Job(contract, DatasetCatalog().lookup_path(dataset, lk.table))
