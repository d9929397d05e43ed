"""The real-time path end to end on a moto server: S3 → EventBridge → SQS → ingest → validate →
transform → output → partitioned Parquet, with the ledger and the quarantine.

Everything AWS is real HTTP to moto (bus, rules, queues, table, buckets); handlers get real SQS
batches. Inputs come from the generator, whose ground truth says what must come out.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from sluice.generate import GroundTruth, generate
from tests.e2e.harness import (
    TERMINAL,
    Stack,
    build_stack,
    close_handlers,
    ledger_items,
    load_handlers,
    pump,
)


@pytest.fixture
def stack(moto_endpoint: str) -> Iterator[Stack]:
    yield build_stack(moto_endpoint)
    close_handlers()


def upload(stack: Stack, key: str, data: bytes) -> None:
    stack.client("s3").put_object(Bucket=stack.raw, Key=key, Body=data)


def settle(
    stack: Stack, handlers: dict[str, Any], expected_files: int
) -> dict[str, dict[str, Any]]:
    def done() -> bool:
        items = list(ledger_items(stack))
        return len(items) >= expected_files and all(i["status"] in TERMINAL for i in items)

    pump(stack, handlers, until=done, timeout=90)
    return {item["key"]: item for item in ledger_items(stack)}


def read_objects(stack: Stack, bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = stack.client("s3")
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def parquet_rows(stack: Stack, dataset: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for key, data in read_objects(stack, stack.processed, f"dataset={dataset}/").items():
        assert key.endswith(".parquet")
        table = pq.read_table(io.BytesIO(data))
        partition = dict(part.split("=", 1) for part in key.split("/")[:-1])
        for row in table.to_pylist():
            rows.append({**row, **partition})
    return rows


@pytest.mark.parametrize(
    ("dataset", "suffix", "gz"),
    [("orders", "csv", False), ("sensor_readings", "jsonl", False), ("orders", "csv.gz", True)],
)
def test_realtime_path_generated_file_reconciles_with_ground_truth(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    dataset: str,
    suffix: str,
    gz: bool,
) -> None:
    # GIVEN a generated file with bad rows and duplicates, and its ground truth
    source = tmp_path / f"input.{suffix}"
    truth: GroundTruth = generate(
        dataset, source, rows=400, bad_ratio=0.05, duplicate_ratio=0.02, seed=7, gzip=gz
    )
    handlers = load_handlers(stack, monkeypatch)
    key = f"{dataset}/2024/03/01/input.{suffix}"
    # WHEN it lands in the raw bucket and the services run
    upload(stack, key, source.read_bytes())
    files = settle(stack, handlers, expected_files=1)
    # THEN the file is COMPLETED and its counts reconcile with the truth
    record = files[key]
    assert record["status"] == "COMPLETED", record
    rows_in, rows_out, rows_q = (
        int(record[k]) for k in ("rows_in", "rows_out", "rows_quarantined")
    )
    assert rows_in == truth.rows_total
    assert rows_in == rows_out + rows_q
    assert rows_q == sum(truth.rows_bad.values()) + truth.rows_duplicate
    # AND the Parquet holds exactly rows_out rows, no primary key twice
    rows = parquet_rows(stack, dataset)
    assert len(rows) == rows_out == truth.expected_good_keys
    contract_keys = {
        "orders": ("order_id",),
        "sensor_readings": ("device_id", "reading_ts", "metric"),
    }
    seen = {tuple(str(r[c]) for c in contract_keys[dataset]) for r in rows}
    assert len(seen) == len(rows)
    # AND every quarantined row is in the error bucket with a reason
    quarantined = [
        orjson.loads(line)
        for data in read_objects(stack, stack.errors, f"quarantine/dataset={dataset}/").values()
        for line in data.splitlines()
    ]
    assert len(quarantined) == rows_q
    assert all(q["reason_code"] and q["reason"] for q in quarantined)
    reasons: dict[str, int] = {}
    for q in quarantined:
        reasons[q["reason_code"]] = reasons.get(q["reason_code"], 0) + 1
    assert reasons.get("duplicate_primary_key", 0) == truth.rows_duplicate
    # AND a manifest was written for the file
    manifests = read_objects(stack, stack.processed, f"_manifests/dataset={dataset}/")
    assert len(manifests) == 1
    manifest = orjson.loads(next(iter(manifests.values())))
    assert manifest["rows_out"] == rows_out
    assert sum(o["rows"] for o in manifest["objects"]) == rows_out


def test_realtime_path_orders_parquet_content_is_transformed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a tiny hand-written orders file: one bad row of six (below the 20% tolerance)
    csv = (
        "order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
        "ORD-000001,c1,2024-03-01T10:00:00Z,SKU-1,2,2.5,EUR,DE,first\n"
        'ORD-000002,c2,2024-03-02 11:30:00,SKU-2,1,10,USD,US,"multi\nline, note"\n'
        "ORD-000003,c3,2024-03-02T12:00:00+02:00,SKU-3,0,1,EUR,FR,zero quantity\n"
        "ORD-000004,c4,2024-03-03T00:00:00Z,SKU-4,1,1,GBP,,\n"
        "ORD-000005,c5,2024-03-03T00:00:01Z,SKU-5,3,1.5,EUR,ZZ,unknown country\n"
        "ORD-000006,c6,2024-03-03T00:00:02Z,SKU-6,4,1,USD,CA,\n"
    )
    handlers = load_handlers(stack, monkeypatch)
    upload(stack, "orders/hand.csv", csv.encode())
    files = settle(stack, handlers, expected_files=1)
    record = files["orders/hand.csv"]
    assert record["status"] == "COMPLETED"
    assert (int(record["rows_out"]), int(record["rows_quarantined"])) == (5, 1)
    rows = sorted(parquet_rows(stack, "orders"), key=lambda r: r["order_id"])
    assert [r["order_id"] for r in rows] == [f"ORD-00000{i}" for i in (1, 2, 4, 5, 6)]
    assert [r["dt"] for r in rows] == ["2024-03-01", "2024-03-02"] + ["2024-03-03"] * 3
    assert rows[3]["country_name"] is None  # no lookup match: a null, the row is kept
    assert rows[0]["line_total"] == pytest.approx(5.0)
    assert rows[0]["country_name"] == "Germany"
    assert rows[1]["note"] == "multi\nline, note"
    assert "currency_code" not in rows[0]  # dropped by the contract


@pytest.mark.parametrize(
    ("key", "body", "status", "reason"),
    [
        ("invoices/x.csv", b"a,b\n1,2\n", "QUARANTINED", "unknown_dataset"),
        ("orders/empty.csv", b"", "QUARANTINED", "empty_file"),
        (
            "orders/header-only.csv",
            b"order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n",
            "QUARANTINED",
            "no_data_rows",
        ),
        (
            "orders/semicolons.csv",
            b"order_id;customer_id\nORD-000001;c\n",
            "QUARANTINED",
            "header_mismatch",
        ),
    ],
)
def test_realtime_path_bad_file_ends_quarantined_with_reason(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, key: str, body: bytes, status: str, reason: str
) -> None:
    handlers = load_handlers(stack, monkeypatch)
    upload(stack, key, body)
    files = settle(stack, handlers, expected_files=1)
    assert files[key]["status"] == status
    assert files[key]["error_code"] == reason
    assert read_objects(stack, stack.processed, "dataset=") == {}


def test_realtime_path_key_with_spaces_unicode_and_dots_completes(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers = load_handlers(stack, monkeypatch)
    key = "orders/../münchen daily/a b+c.csv"
    upload(
        stack,
        key,
        b"order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
        b"ORD-000009,c9,2024-03-05T00:00:00Z,S,1,1,GBP,GB,\n",
    )
    files = settle(stack, handlers, expected_files=1)
    assert files[key]["status"] == "COMPLETED"


def test_realtime_path_file_with_a_broken_contract_ends_quarantined_not_retried(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a new dataset `returns` whose contract writes its lookup with `on:` (YAML 1.1 reads
    # it as the boolean true), next to the shipped contracts
    import shutil

    from contracts.datasets import DatasetCatalog
    from contracts.datasets.loader import DATASETS_DIR

    root = tmp_path / "datasets"
    shutil.copytree(DATASETS_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (root / "returns").mkdir()
    (root / "returns" / "v1.yaml").write_text(
        (root / "orders" / "v1.yaml")
        .read_text()
        .replace("name: orders", "name: returns")
        .replace("{table: countries, column: country", "{table: countries, on: country")
    )
    # every stage's DatasetCatalog() reads this folder instead of the shipped one
    monkeypatch.setattr(DatasetCatalog.__init__, "__defaults__", (root,))
    handlers = load_handlers(stack, monkeypatch)

    # WHEN a file of that dataset arrives
    upload(stack, "returns/a.csv", b"order_id\nORD-000001\n")
    files = settle(stack, handlers, expected_files=1)

    # THEN it ends QUARANTINED contract_invalid with the problem's YAML path (before: ingest
    # raised on every delivery, nothing in the ledger)
    item = files["returns/a.csv"]
    assert item["status"] == "QUARANTINED"
    assert item["error_code"] == "contract_invalid"
    assert "returns/v1.yaml: transform.lookups[0].on: the key `on` was read" in item["error"]
    assert read_objects(stack, stack.processed, "dataset=") == {}


def test_realtime_path_cast_failures_above_max_bad_ratio_end_quarantined(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN orders with a derived `multiply(unit_price, 100)` cast to int64 and a 5% tolerance
    import shutil

    from contracts.datasets import DatasetCatalog
    from contracts.datasets.loader import DATASETS_DIR

    root = tmp_path / "datasets"
    shutil.copytree(DATASETS_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    contract = root / "orders" / "v1.yaml"
    contract.write_text(
        contract.read_text()
        .replace(
            "  derived:\n",
            "  derived:\n"
            "    - {name: cents, op: multiply, args: [unit_price, {literal: 100}], type: int64}\n",
        )
        .replace("max_bad_ratio: 0.2", "max_bad_ratio: 0.05")
    )
    monkeypatch.setattr(DatasetCatalog.__init__, "__defaults__", (root,))
    handlers = load_handlers(stack, monkeypatch)
    header = b"order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
    # 6 of 40 rows (15%) have a price with no whole number of cents: valid rows, failed casts
    rows = [
        f"ORD-{n:06d},c{n},2024-03-01T10:00:00Z,S{n},1,{'2.125' if n <= 6 else '2.5'},EUR,DE,\n"
        for n in range(1, 41)
    ]

    # WHEN the file goes through the pipeline
    upload(stack, "orders/cents.csv", header + "".join(rows).encode())
    files = settle(stack, handlers, expected_files=1)

    # THEN transform rejects it as validate would have: QUARANTINED, nothing in processed
    item = files["orders/cents.csv"]
    assert item["status"] == "QUARANTINED"
    assert item["error_code"] == "bad_row_ratio_exceeded"
    assert item["error"].startswith("6 of 40 rows are invalid (15.0%")
    assert read_objects(stack, stack.processed, "dataset=") == {}
    # AND each failed cast is kept with its value
    quarantined = read_objects(stack, stack.errors, "")
    reasons = [
        orjson.loads(line)["reason"]
        for data in quarantined.values()
        for line in data.splitlines()
        if line.strip()
    ]
    assert reasons.count("cents: value 212.5 cannot be cast to int64") == 6
