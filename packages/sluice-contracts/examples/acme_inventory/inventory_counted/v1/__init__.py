"""`acme.inventory.counted.v1`."""

from acme_inventory.inventory_counted.v1.model import InventoryCountedV1

__all__ = ["InventoryCountedV1"]
