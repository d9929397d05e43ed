"""Two statements of `make iam-proof`, in every `make test`: the runtime provisioned from a copy
of the templates whose output role lacks `ReadFileManifests` (s3:GetObject on the processed
bucket's `_manifests/*`) and whose batch reconcile role lacks `ReadDatasetContracts`
(s3:GetObject on the published data contracts, `_contracts/*`).

- The output function cannot re-publish `file.processed` for a duplicate `file.transformed`
  after COMPLETED: S3 refuses the manifest read, naming the role, the action and the manifest,
  and the record goes back to its queue.
- A file on the batch path is planned, split and transformed, but reconcile cannot read the
  contracts' manifest, so the file never completes. (The real-time path needs the same grant in
  each service role: the other file completing shows those grants are left in place.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.test_iam_roles import (
    SERVICES,
    Capture,
    Runtime,
    detached_runtime,
    upload_sample,
)
from tools import iam_proof
from tools.templates import template_paths, translate

STATEMENT = "output/FunctionRole/ReadFileManifests"
# Removed too: only the batch path needs it, which the test above does not take.
CONTRACTS_STATEMENT = ("orchestration.yaml", "ReconcileRole", "ReadDatasetContracts")


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    """A runtime of our own, provisioned from the copy without the statement."""
    statements = iam_proof.role_statements({"output": translate(template_paths()["output"])})
    (statement,) = [s for s in statements if s.key == STATEMENT]
    deploy = iam_proof.write_copy(tmp_path_factory.mktemp("copy"), statement)
    template, role_id, sid = CONTRACTS_STATEMENT
    copy = deploy / template
    copy.write_text(iam_proof.remove_statement(copy.read_text("utf-8"), role_id, sid), "utf-8")
    monkeypatch_module.setenv(iam_proof.DEPLOY_DIR_ENV, str(deploy))
    with detached_runtime(tmp_path_factory.mktemp("iam-necessity")) as started:
        yield started


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_output_without_manifest_grant_cannot_republish_processed(runtime: Runtime) -> None:
    capture = Capture(
        runtime, {"detail-type": ["sluice.file.transformed.v3", "sluice.file.processed.v1"]}
    )
    try:
        # GIVEN a file completed through the whole chain (the first pass writes the manifest,
        # it never reads it)
        key = f"orders/iam-necessity/{uuid.uuid4().hex}.csv"
        upload_sample(runtime, key)
        record = runtime.wait_terminal(key, denied_roles=SERVICES)
        assert record["status"] == "COMPLETED", record
        file_id = str(record["file_id"])
        (transformed,) = capture.wait_for("sluice.file.transformed.v3", file_id)
        capture.wait_for("sluice.file.processed.v1", file_id)
        # WHEN the same file.transformed reaches output again
        payload, tail = runtime.invoke_with_message(
            "sluice-dev-output", "sluice-dev-output-queue", orjson.dumps(transformed).decode()
        )
        # THEN the manifest read is denied to the output role, the record is handed back for a
        # retry (not parked, not acknowledged) and no second file.processed is published
        (failure,) = payload["batchItemFailures"]
        assert failure["itemIdentifier"]
        assert "AccessDenied" in tail, tail
        assert "sluice-dev-us-east-1-output" in tail, tail
        assert "s3:GetObject" in tail, tail
        assert f"_manifests/dataset=orders/{file_id}.json" in tail, tail
        with pytest.raises(TimeoutError):
            capture.wait_for("sluice.file.processed.v1", file_id, count=2, timeout=5)
    finally:
        capture.close()


def test_batch_reconcile_without_contracts_grant_cannot_complete_the_file(
    runtime: Runtime, tmp_path: Path
) -> None:
    from sluice.generate import generate

    # GIVEN a 3.5 MB orders file, above the runtime's 2 MB batch threshold
    src = tmp_path / "large.csv"
    generate("orders", src, rows=42_000, bad_ratio=0.02, duplicate_ratio=0.01, seed=7)
    key = f"orders/iam-necessity/large-{uuid.uuid4().hex}.csv"
    since = datetime.now(UTC).isoformat(timespec="milliseconds")
    runtime.client("s3").put_object(
        Bucket=runtime.name("raw-bucket-name"), Key=key, Body=src.read_bytes()
    )
    # WHEN the batch workflow reaches reconcile, THEN its role is denied the published
    # contracts' manifest and the file is not completed
    deadline = time.monotonic() + 240
    denied: list[dict[str, Any]] = []
    while not denied:
        record = runtime.file_by_key(key)
        assert time.monotonic() < deadline, record
        assert record is None or record["status"] != "COMPLETED", record
        denied = [
            d
            for d in runtime.denials_since(since, ("batch-reconcile",))
            if d["action"] == "s3:GetObject"
            and str(d["resource"]).endswith("/_contracts/manifest.json")
        ]
        time.sleep(0.5)
    assert not runtime.denials_since(since, ("batch-plan", "batch-run-partition")), "plan/run"
    record = runtime.file_by_key(key)
    assert record is not None
    assert record["status"] != "COMPLETED", record
