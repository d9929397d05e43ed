"""The Distributed Map's ItemBatcher: child inputs of several items.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html (a
child's input is `{"BatchInput": ..., "Items": [...]}`; MaxItemsPerBatch and
MaxInputBytesPerBatch bound a batch; a child's input is at most 256 KiB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sluice.local.workflow.interpreter import whole_number
from sluice.local.workflow.models import dumps

if TYPE_CHECKING:
    from sluice.local.workflow.tree import ItemBatcher
    from sluice.local.workflow.values import Scope

MAX_CHILD_INPUT = 262_144


def batch_items(
    batcher: ItemBatcher | None, scope: Scope, items: list[Any]
) -> list[tuple[Any, int]]:
    """Child inputs with their item counts; one per item without an ItemBatcher."""
    if batcher is None:
        return [(item, 1) for item in items]
    max_items = whole_number(batcher.max_items_per_batch, "MaxItemsPerBatch", scope)
    max_bytes = whole_number(batcher.max_input_bytes_per_batch, "MaxInputBytesPerBatch", scope)
    # AWS caps a child's input at 256 KiB whatever the batcher says.
    max_bytes = min(max_bytes or MAX_CHILD_INPUT, MAX_CHILD_INPUT)
    envelope: dict[str, Any] = {}
    if batcher.batch_input is not None:
        envelope["BatchInput"] = batcher.batch_input.evaluate(scope)
    base = len(dumps({**envelope, "Items": []}).encode())
    batches: list[tuple[Any, int]] = []
    current: list[Any] = []
    size = base
    for item in items:
        item_size = len(dumps(item).encode()) + (1 if current else 0)
        full = (max_items and len(current) >= max_items) or size + item_size > max_bytes
        if current and full:
            batches.append(({**envelope, "Items": current}, len(current)))
            current, size = [], base
            item_size -= 1
        current.append(item)
        size += item_size
    if current:
        batches.append(({**envelope, "Items": current}, len(current)))
    return batches
