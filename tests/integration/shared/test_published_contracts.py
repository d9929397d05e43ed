"""Data contracts read at runtime from the processed bucket (`sluice_shared.published_contracts`),
against a real moto server: a new dataset is seen without a restart, a changed contract within
the TTL, a tampered file is refused as `contract_invalid`, a missing manifest is retried, and a
slow read never stalls the stage's event loop."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest

from contracts.datasets import DatasetCatalog
from contracts.datasets.loader import DATASETS_DIR
from contracts.errors import DatasetContractInvalid, TransientError
from contracts.events import FileIngestedV1, FileProcessedV1, FileTransformedV3, FileValidatedV3
from sluice_ingest.config import IngestSettings
from sluice_ingest.domain import ObjectCreated, ingest_object
from sluice_ingest.ports import IngestDeps
from sluice_output.domain import write_transformed_file
from sluice_shared.published_contracts import (
    DEFAULT_PREFIX,
    OBJECTS,
    PublishedCatalog,
    publish,
)
from sluice_shared.stages import StageDeps, StageSettings
from sluice_transform.domain import transform_validated_file
from sluice_validate.domain import validate_ingested_file
from tests.fakes import InMemoryLedger, InMemoryObjectStore, ManualClock, RecordingPublisher

BUCKET = "processed"


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def contracts(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    for name in ("orders", "sensor_readings"):
        shutil.copytree(DATASETS_DIR / name, root / name)
    return root


def _catalog(s3: Any, clock: ManualClock) -> PublishedCatalog:
    return PublishedCatalog(BUCKET, client=s3, ttl_s=30.0, clock=clock)


def test_published_contracts_load_as_the_packaged_ones(s3: Any, contracts: Path) -> None:
    publish(s3, BUCKET, contracts)
    catalog = _catalog(s3, ManualClock())
    assert catalog.names() == ["orders", "sensor_readings"]
    assert catalog.load("orders") == DatasetCatalog().load("orders")
    lookup = catalog.lookup_path("orders", "countries")
    assert lookup.read_bytes() == (DATASETS_DIR / "orders/lookups/countries.csv").read_bytes()


def test_new_dataset_is_seen_by_a_warm_catalog_at_once(s3: Any, contracts: Path) -> None:
    publish(s3, BUCKET, contracts.parent / "datasets")
    clock = ManualClock()
    catalog = _catalog(s3, clock)
    catalog.load("orders")  # warm: the manifest was read just now
    text = (contracts / "orders/v1.yaml").read_text().replace("name: orders", "name: returns")
    (contracts / "returns").mkdir()
    (contracts / "returns/v1.yaml").write_text(text)
    shutil.copytree(contracts / "orders/lookups", contracts / "returns/lookups")
    publish(s3, BUCKET, contracts)
    clock.now += 2  # well within the TTL
    assert catalog.load("returns").name == "returns"


def test_changed_contract_is_seen_after_the_ttl(s3: Any, contracts: Path) -> None:
    publish(s3, BUCKET, contracts)
    clock = ManualClock()
    catalog = _catalog(s3, clock)
    assert catalog.load("orders").owner != "team-new"
    path = contracts / "orders/v1.yaml"
    lines = [
        "owner: team-new" if line.startswith("owner:") else line
        for line in path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")
    publish(s3, BUCKET, contracts)
    clock.now += 5
    assert catalog.load("orders").owner != "team-new"  # trusted until the TTL runs out
    clock.now += 30
    assert catalog.load("orders").owner == "team-new"


def test_tampered_file_is_refused_as_contract_invalid(s3: Any, contracts: Path) -> None:
    files = publish(s3, BUCKET, contracts)
    key = f"{DEFAULT_PREFIX}{OBJECTS}{files['orders/v1.yaml']}"
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.replace(b"max_bad_ratio", b"max_bad_ratio "))
    catalog = _catalog(s3, ManualClock())
    with pytest.raises(DatasetContractInvalid) as caught:
        catalog.load("orders")
    assert caught.value.code == "contract_invalid"
    assert "orders/v1.yaml: sha256" in caught.value.message
    assert files["orders/v1.yaml"] in caught.value.message
    # the other dataset's files are intact and still load
    assert catalog.load("sensor_readings").name == "sensor_readings"


def test_published_contract_this_runtime_cannot_load_is_named_as_published(
    s3: Any, contracts: Path
) -> None:
    # GIVEN a published contract whose bytes match the manifest but that this runtime refuses
    # (here an unknown key: e.g. published by a newer `sluice` than the function's)
    path = contracts / "orders/v1.yaml"
    path.write_text(path.read_text() + "future_setting: true\n")
    files = publish(s3, BUCKET, contracts)
    catalog = _catalog(s3, ManualClock())
    # WHEN it is loaded THEN it is refused as contract_invalid, each problem naming the
    # contract by its catalog path and the object it came from, not the function's temp copy
    with pytest.raises(DatasetContractInvalid) as caught:
        catalog.load("orders")
    shown = f"orders/v1.yaml (s3://{BUCKET}/{DEFAULT_PREFIX}{OBJECTS}{files['orders/v1.yaml']})"
    assert caught.value.problems, caught.value.message
    assert all(problem.startswith(shown) for problem in caught.value.problems), caught.value
    assert "future_setting" in caught.value.message
    assert str(catalog.root) not in caught.value.message
    assert "sluice-contracts-" not in caught.value.message


def test_missing_manifest_is_retried_never_the_packaged_copy(s3: Any) -> None:
    catalog = _catalog(s3, ManualClock())
    with pytest.raises(TransientError, match="sluice contracts publish --datasets"):
        catalog.load("orders")


def _cli(moto_endpoint: str, *args: str) -> Any:
    from click.testing import CliRunner

    from sluice.cli import cli

    return CliRunner().invoke(cli, ["--endpoint-url", moto_endpoint, *args])


@pytest.fixture
def stage(s3: Any, moto_endpoint: str) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=moto_endpoint)
    for suffix, value in (("processed-bucket-name", BUCKET), ("ledger-table-name", "ledger")):
        ssm.put_parameter(Name=f"/sluice/dev/{suffix}", Value=value, Type="String")


@pytest.mark.usefixtures("stage")
def test_cli_publish_checks_first_and_publishes_nothing_broken(
    s3: Any, contracts: Path, moto_endpoint: str
) -> None:
    # GIVEN a contract with the YAML `on:` mistake (read as a boolean key)
    path = contracts / "orders/v1.yaml"
    path.write_text(path.read_text().replace("key: code", "on: code", 1))
    # WHEN it is published THEN the lint refuses it, with its YAML path, and nothing is written
    broken = _cli(
        moto_endpoint, "contracts", "publish", "--datasets", "--datasets-dir", str(contracts)
    )
    assert broken.exit_code == 1, broken.output
    assert "orders/v1.yaml" in broken.output
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    # AND once fixed it is published: the manifest lists every file with its sha256
    shutil.rmtree(contracts / "orders")
    shutil.copytree(DATASETS_DIR / "orders", contracts / "orders")
    good = _cli(
        moto_endpoint, "contracts", "publish", "--datasets", "--datasets-dir", str(contracts)
    )
    assert good.exit_code == 0, good.output
    assert "orders, sensor_readings" in good.output
    manifest = s3.get_object(Bucket=BUCKET, Key=f"{DEFAULT_PREFIX}manifest.json")["Body"].read()
    assert sorted(orjson.loads(manifest)["files"]) == [
        "orders/lookups/countries.csv",
        "orders/v1.yaml",
        "sensor_readings/lookups/sites.csv",
        "sensor_readings/v1.yaml",
    ]


@pytest.mark.usefixtures("stage")
def test_cli_publish_refuses_a_change_that_breaks_a_published_version(
    s3: Any, contracts: Path, moto_endpoint: str
) -> None:
    publish_args = ("contracts", "publish", "--datasets", "--datasets-dir", str(contracts))
    assert _cli(moto_endpoint, *publish_args).exit_code == 0
    manifest_key = f"{DEFAULT_PREFIX}manifest.json"
    before = s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read()
    # GIVEN v1 of orders published, WHEN v1 is changed in a way that breaks it (a tighter max)
    path = contracts / "orders/v1.yaml"
    text = path.read_text()
    path.write_text(text.replace("{min: 1, max: 1000}", "{min: 1, max: 10}"))
    refused = _cli(moto_endpoint, *publish_args)
    # THEN publishing is refused, naming the column and the published version, nothing written
    assert refused.exit_code == 1, refused.output
    assert "orders/v1.yaml: columns[4]" in refused.output
    assert "versus the published v1" in refused.output
    assert s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read() == before
    # AND the same change as a new version is published
    path.write_text(text)
    (contracts / "orders/v2.yaml").write_text(
        text.replace("version: 1", "version: 2").replace("{min: 1, max: 1000}", "{min: 1, max: 10}")
    )
    published = _cli(moto_endpoint, *publish_args)
    assert published.exit_code == 0, published.output
    assert _catalog(s3, ManualClock()).load("orders").version == 2


def test_a_dataset_files_are_fetched_only_when_it_is_needed(s3: Any, contracts: Path) -> None:
    # GIVEN sensor_readings published, then its objects gone from the bucket
    files = publish(s3, BUCKET, contracts)
    for rel, digest in files.items():
        if rel.startswith("sensor_readings/"):
            s3.delete_object(Bucket=BUCKET, Key=f"{DEFAULT_PREFIX}{OBJECTS}{digest}")
    catalog = _catalog(s3, ManualClock())
    # WHEN orders is loaded THEN only its files are read: it loads
    assert catalog.names() == ["orders", "sensor_readings"]
    assert catalog.load("orders").name == "orders"
    # AND the dataset whose files are gone is retried, not refused
    with pytest.raises(TransientError, match="sensor_readings/"):
        catalog.load("sensor_readings")


def test_publishing_again_repairs_a_refused_file_in_a_warm_catalog(
    s3: Any, contracts: Path
) -> None:
    files = publish(s3, BUCKET, contracts)
    key = f"{DEFAULT_PREFIX}{OBJECTS}{files['orders/v1.yaml']}"
    good = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=key, Body=good + b"\n# altered\n")
    clock = ManualClock()
    catalog = _catalog(s3, clock)
    with pytest.raises(DatasetContractInvalid):
        catalog.load("orders")
    # WHEN the same contracts are published again THEN the warm catalog loads them after the TTL
    publish(s3, BUCKET, contracts)
    clock.now += 31
    assert catalog.load("orders") == DatasetCatalog().load("orders")


class SlowGets:
    """The S3 client with every `get_object` (a real call to the moto server) taking `delay`
    seconds longer, as on a slow S3; each call's (start, end) is recorded."""

    def __init__(self, client: Any, delay: float) -> None:
        self.client = client
        self.delay = delay
        self.calls: list[tuple[float, float]] = []

    def get_object(self, **request: Any) -> Any:
        start = time.monotonic()
        try:
            time.sleep(self.delay)
            return self.client.get_object(**request)
        finally:
            self.calls.append((start, time.monotonic()))


async def test_slow_contract_reads_never_stall_the_stages_event_loop(
    s3: Any, contracts: Path, tmp_path: Path
) -> None:
    # GIVEN the stages reading published contracts from an S3 that takes 0.1 s per GET, and
    # a manifest checked on every load (TTL 0)
    publish(s3, BUCKET, contracts)
    slow = SlowGets(s3, delay=0.1)
    catalog = PublishedCatalog(BUCKET, client=slow, ttl_s=0.0)
    objects, ledger = InMemoryObjectStore(), InMemoryLedger()
    stage = StageDeps(objects=objects, ledger=ledger, contracts=catalog)
    ingest = IngestDeps(
        objects=objects, publisher=RecordingPublisher(), ledger=ledger, contracts=catalog
    )
    buckets = {
        "raw_bucket": "raw",
        "work_bucket": "work",
        "processed_bucket": BUCKET,
        "error_bucket": "errors",
        "event_bus": "bus",
        "ledger_table": "ledger",
    }
    body = b"order_id,customer_id,order_ts,sku,quantity,unit_price,currency,country,note\n"
    body += b"ORD-000001,c1,2024-03-01T10:00:00Z,S1,2,2.5,EUR,DE,\n"
    objects.put("raw", "orders/2024/03/01/a.csv", body)
    created = ObjectCreated(
        bucket="raw",
        key="orders/2024/03/01/a.csv",
        size=len(body),
        etag=(await objects.head("raw", "orders/2024/03/01/a.csv")).etag,
        version_id=None,
        sequencer=None,
        time=datetime(2024, 3, 1, tzinfo=UTC),
    )
    settings = StageSettings(**buckets, scratch_dir=tmp_path / "scratch")
    ticks: list[float] = []

    async def tick() -> None:  # another coroutine of the function, e.g. a batch's next record
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    # WHEN one file goes through ingest, validate, transform and output meanwhile
    ticker = asyncio.create_task(tick())
    try:
        ingested = (await ingest_object(created, ingest, IngestSettings(**buckets))).event
        assert isinstance(ingested, FileIngestedV1)
        validated = (await validate_ingested_file(ingested, stage, settings)).event
        assert isinstance(validated, FileValidatedV3)
        transformed = (await transform_validated_file(validated, stage, settings)).event
        assert isinstance(transformed, FileTransformedV3)
        processed = (await write_transformed_file(transformed, stage, settings)).event
        assert isinstance(processed, FileProcessedV1)
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)

    # THEN every stage read the catalog (a GET of the manifest at least), and the loop kept
    # running through each slow GET
    assert len(slow.calls) >= 4
    for start, end in slow.calls:
        during = [t for t in ticks if start < t < end]
        assert len(during) >= 3, f"the event loop stood still for a {end - start:.2f} s GET"
