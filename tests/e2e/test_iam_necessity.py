"""One statement of `make iam-proof`, in every `make test`: the runtime provisioned from a copy
of the templates whose output role lacks `ReadFileManifests` (s3:GetObject on the processed
bucket's `_manifests/*`). The output function then cannot re-publish `file.processed` for a
duplicate `file.transformed` after COMPLETED: S3 refuses the manifest read, naming the role,
the action and the manifest, and the record goes back to its queue."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest

from tests.e2e.test_iam_roles import REPO, SERVICES, Capture, Runtime, upload_sample
from tests.processes import free_port, run_sluice
from tools import iam_proof
from tools.templates import template_paths, translate

STATEMENT = "output/FunctionRole/ReadFileManifests"


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    """A runtime of our own, provisioned from the copy without the statement."""
    statements = iam_proof.role_statements({"output": translate(template_paths()["output"])})
    (statement,) = [s for s in statements if s.key == STATEMENT]
    deploy = iam_proof.write_copy(tmp_path_factory.mktemp("copy"), statement)
    monkeypatch_module.setenv(iam_proof.DEPLOY_DIR_ENV, str(deploy))
    port = free_port()
    state = tmp_path_factory.mktemp("iam-necessity")
    up = run_sluice(
        "local",
        "up",
        "--detach",
        "--no-schedules",
        "--no-prewarm",
        "--port",
        str(port),
        "--state-dir",
        str(state),
        timeout=300,
        cwd=REPO,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield Runtime(port)
    finally:
        run_sluice("local", "down", "--port", str(port), timeout=120, cwd=REPO)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_output_without_manifest_grant_cannot_republish_processed(runtime: Runtime) -> None:
    capture = Capture(
        runtime, {"detail-type": ["sluice.file.transformed.v1", "sluice.file.processed.v1"]}
    )
    try:
        # GIVEN a file completed through the whole chain (the first pass writes the manifest,
        # it never reads it)
        key = f"orders/iam-necessity/{uuid.uuid4().hex}.csv"
        upload_sample(runtime, key)
        record = runtime.wait_terminal(key, denied_roles=SERVICES)
        assert record["status"] == "COMPLETED", record
        file_id = str(record["file_id"])
        (transformed,) = capture.wait_for("sluice.file.transformed.v1", file_id)
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
