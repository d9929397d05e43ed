"""Data contracts: one versioned YAML per dataset (`<name>/v<N>.yaml`), parsed by `model`."""

from contracts.datasets.loader import DatasetCatalog, load_contract
from contracts.datasets.model import (
    ColumnSpec,
    ColumnType,
    Constraints,
    DatasetContract,
    DerivedColumn,
    FormatSpec,
    LookupJoin,
    PartitionSpec,
    QuarantinePolicy,
    TransformSpec,
)

__all__ = [
    "ColumnSpec",
    "ColumnType",
    "Constraints",
    "DatasetCatalog",
    "DatasetContract",
    "DerivedColumn",
    "FormatSpec",
    "LookupJoin",
    "PartitionSpec",
    "QuarantinePolicy",
    "TransformSpec",
    "load_contract",
]
