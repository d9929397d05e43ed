"""Transform-stage quarantines count toward the contract's `max_bad_ratio`.

Before, a derived `multiply(...)` cast to int64 could quarantine 145 of 1,000 rows as
`cast_failed` and the file still ended COMPLETED against `max_bad_ratio: 0.05`: only validate
judged the ratio. Now transform judges the whole file (validate's and its own quarantines) and
rejects it atomically above the limit: nothing of it reaches the processed bucket.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from contracts.datasets import DatasetCatalog
from contracts.datasets.loader import DATASETS_DIR
from contracts.events import FileProcessedV1, FileRejectedV1, FileTransformedV1, FileValidatedV1
from sluice_output.domain import write_transformed_file
from sluice_shared.ports import FileStatus
from sluice_shared.stages import StageDeps, StageSettings
from sluice_transform.domain import transform_validated_file
from sluice_validate.domain import validate_ingested_file
from tests.fakes import InMemoryLedger, InMemoryObjectStore
from tests.unit.services.test_stage_domains import HEADER, ingested_file

ROWS = 40


def _catalog(tmp_path: Path, *, max_bad_ratio: float, policy: str = "quarantine") -> DatasetCatalog:
    """Orders with a derived `cents = multiply(unit_price, 100)` cast to int64: a price with
    a third decimal has no whole number of cents, so its row fails the cast in transform."""
    root = tmp_path / "datasets"
    shutil.copytree(DATASETS_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    contract = root / "orders" / "v1.yaml"
    text = contract.read_text()
    text = text.replace(
        "  derived:\n",
        "  derived:\n"
        "    - {name: cents, op: multiply, args: [unit_price, {literal: 100}], type: int64}\n",
    )
    text = text.replace("policy: quarantine", f"policy: {policy}")
    text = text.replace("max_bad_ratio: 0.2", f"max_bad_ratio: {max_bad_ratio}")
    contract.write_text(text)
    return DatasetCatalog(root)


def _body(bad: int) -> str:
    """ROWS good orders rows, the first `bad` of them with a price of 2.125 (212.5 cents)."""
    lines = []
    for n in range(1, ROWS + 1):
        price = "2.125" if n <= bad else "2.5"
        lines.append(f"ORD-{n:06d},c{n},2024-03-01T10:00:00Z,S{n},1,{price},EUR,DE,\n")
    return HEADER + "".join(lines)


async def _through_transform(
    deps: StageDeps, settings: StageSettings, bad: int
) -> tuple[FileValidatedV1, FileTransformedV1 | FileRejectedV1 | None]:
    ingested = await ingested_file(deps, _body(bad))
    validated = (await validate_ingested_file(ingested, deps, settings)).event
    assert isinstance(validated, FileValidatedV1)
    assert validated.rows_quarantined == 0  # every row is valid as it arrives
    return validated, (await transform_validated_file(validated, deps, settings)).event


async def test_cast_failures_above_max_bad_ratio_reject_the_file_atomically(
    settings: StageSettings, tmp_path: Path
) -> None:
    # GIVEN a contract that tolerates 5% bad rows, and a file whose derived cast fails for 15%
    deps = StageDeps(
        objects=InMemoryObjectStore(),
        ledger=InMemoryLedger(),
        contracts=_catalog(tmp_path, max_bad_ratio=0.05),
    )

    # WHEN it goes through validate and transform
    validated, event = await _through_transform(deps, settings, bad=6)

    # THEN transform rejects the whole file: QUARANTINED bad_row_ratio_exceeded, every row counted
    assert isinstance(event, FileRejectedV1), event
    assert event.reason_code == "bad_row_ratio_exceeded"
    assert "6 of 40 rows" in event.reason
    assert "cast_failed: 6" in event.reason
    record = await deps.ledger.get(validated.file_id)
    assert record is not None
    assert record.status is FileStatus.QUARANTINED
    assert (record.rows_in, record.rows_out, record.rows_quarantined) == (40, 0, 40)
    assert record.error_code == "bad_row_ratio_exceeded"
    # AND nothing of it is in the processed bucket; the quarantined rows are kept as evidence
    assert isinstance(deps.objects, InMemoryObjectStore)
    assert [i.key async for i in deps.objects.list_keys("processed", "")] == []
    assert event.quarantine_uri is not None


async def test_cast_failures_within_max_bad_ratio_complete_with_the_value_in_the_reason(
    settings: StageSettings, tmp_path: Path
) -> None:
    deps = StageDeps(
        objects=InMemoryObjectStore(),
        ledger=InMemoryLedger(),
        contracts=_catalog(tmp_path, max_bad_ratio=0.05),
    )

    _, event = await _through_transform(deps, settings, bad=2)

    # 2 of 40 = 5%: at the limit, not above it
    assert isinstance(event, FileTransformedV1), event
    processed = (await write_transformed_file(event, deps, settings)).event
    assert isinstance(processed, FileProcessedV1)
    assert (processed.rows_out, processed.rows_quarantined) == (38, 2)
    # AND each cast_failed reason shows the offending value
    assert isinstance(deps.objects, InMemoryObjectStore)
    reasons = []
    async for info in deps.objects.list_keys("errors", ""):
        for line in deps.objects._get("errors", info.key).data.splitlines():
            reasons.append(orjson.loads(line))
    assert [r["reason_code"] for r in reasons] == ["cast_failed", "cast_failed"]
    assert reasons[0]["reason"] == "cents: value 212.5 cannot be cast to int64"


async def test_any_cast_failure_rejects_the_file_under_policy_fail(
    settings: StageSettings, tmp_path: Path
) -> None:
    deps = StageDeps(
        objects=InMemoryObjectStore(),
        ledger=InMemoryLedger(),
        contracts=_catalog(tmp_path, max_bad_ratio=0.5, policy="fail"),
    )

    validated, event = await _through_transform(deps, settings, bad=1)

    assert isinstance(event, FileRejectedV1), event
    assert event.reason_code == "bad_rows_not_allowed"
    record = await deps.ledger.get(validated.file_id)
    assert record is not None
    assert record.status is FileStatus.QUARANTINED


@pytest.mark.parametrize("value", ["x" * 500])
def test_cast_failed_reason_bounds_a_long_value(value: str) -> None:
    from sluice_shared.datapath.transform import cast_failed_reason

    reason = cast_failed_reason("note", value, "int64")

    assert len(reason) < 200
    assert reason.startswith("note: value 'xxx")
    assert "… (500 characters)" in reason
