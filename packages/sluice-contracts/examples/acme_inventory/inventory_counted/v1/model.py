"""`acme.inventory.counted.v1`: a warehouse counted the stock of one SKU."""

from datetime import datetime
from typing import ClassVar

from pydantic import Field
from sluice_contracts import ContractModel
from sluice_contracts.types import NonNegativeInt, UtcDatetime


class InventoryCountedV1(ContractModel):
    """Stock of one SKU was counted in one warehouse.

    Compatibility: fields may be added (optional) within v1; anything else is v2.
    """

    TYPE: ClassVar[str] = "acme.inventory.counted.v1"
    SOURCE: ClassVar[str] = "acme.warehouse"

    warehouse: str = Field(min_length=1, max_length=32, examples=["ams-1"])
    sku: str = Field(pattern=r"^[A-Z0-9-]{1,32}$", examples=["SKU-1042"])
    quantity: NonNegativeInt = Field(examples=[17])
    counted_at: UtcDatetime = Field(examples=[datetime.fromisoformat("2024-03-01T09:30:00+00:00")])
    note: str | None = Field(default=None, max_length=256)
