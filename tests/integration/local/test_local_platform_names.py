"""Platform names by dynamic reference: a service stack reads its own stage's names from SSM at
provisioning, and a stage whose platform is missing fails loudly instead of reading dev's."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.local.errors import LocalRuntimeError
from sluice.local.provisioner import Limits
from sluice.local.runtime import LocalRuntime, RuntimeOptions
from tests.processes import free_port

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"


def _options(tmp_path: Path, stage: str, templates: list[Path]) -> RuntimeOptions:
    return RuntimeOptions(
        repo_root=REPO,
        state_dir=tmp_path / "state",
        port=free_port(),
        stage=stage,
        templates=templates,
        limits=Limits(max_concurrency=1),
        schedules_enabled=False,
        prewarm=False,
    )


async def test_service_without_its_stage_platform_fails_naming_the_parameter(
    moto_endpoint: str, tmp_path: Path
) -> None:
    # GIVEN dev's platform provisioned, and nothing for staging
    runtime = LocalRuntime(_options(tmp_path, "dev", [DEPLOY / "platform.yaml"]))
    await runtime.start()
    try:
        # WHEN the validate service of staging is provisioned into the same runtime
        validate = [DEPLOY / "services" / "validate.yaml"]
        # THEN it fails on the first staging name, never reading dev's
        with pytest.raises(LocalRuntimeError, match=r"/sluice/staging/[a-z-]+ does not exist"):
            await runtime.provision(validate, {"Stage": "staging"})
    finally:
        await runtime.stop()


async def test_service_reads_its_own_stage_names(moto_endpoint: str, tmp_path: Path) -> None:
    # GIVEN the staging platform and the staging validate service
    templates = [DEPLOY / "platform.yaml", DEPLOY / "services" / "validate.yaml"]
    runtime = LocalRuntime(_options(tmp_path, "staging", templates))
    await runtime.start()
    try:
        # THEN the function's names are staging's, read through the dynamic references
        (function,) = runtime.runner.functions.values()
        env = dict(function.env)
        assert env["SLUICE_RAW_BUCKET"] == "sluice-staging-raw-123456789012-us-east-1"
        assert env["SLUICE_LEDGER_TABLE"] == "sluice-staging-ledger"
        assert env["SLUICE_EVENT_BUS"] == "sluice-staging"
        assert not any("{{resolve:" in str(v) for v in env.values())
    finally:
        await runtime.stop()
