"""The provider registry: one provider per resource type, each declaring what it honours."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sluice.local.errors import ProvisioningError
from sluice.local.providers import (
    PROVIDERS,
    Limits,
    ProvisionContext,
    ResourceReport,
    ResourceRequest,
)
from sluice.local.providers.skipped import SKIPPED


def _request(type_name: str, props: dict[str, Any]) -> ResourceRequest:
    return ResourceRequest(
        "stack", "Thing", props, ResourceReport("stack", "Thing", type_name, "", "created")
    )


def _context() -> ProvisionContext:
    def no_clients(service: str) -> Any:
        raise AssertionError(f"no client expected, asked for {service}")

    return ProvisionContext(no_clients, sink=None, repo_root=Path("."), limits=Limits())  # type: ignore[arg-type]


def test_every_type_the_templates_use_has_one_provider() -> None:
    # GIVEN the registry WHEN the package is imported THEN data, compute and skipped types are in it
    for type_name in (
        "AWS::S3::Bucket",
        "AWS::SQS::Queue",
        "AWS::Events::Rule",
        "AWS::Lambda::Function",
        "AWS::StepFunctions::StateMachine",
        "AWS::Scheduler::Schedule",
        *SKIPPED,
    ):
        assert PROVIDERS[type_name].type_name == type_name


def test_a_property_neither_honoured_nor_noted_fails_naming_it() -> None:
    provider = PROVIDERS["AWS::S3::Bucket"](_context())
    with pytest.raises(ProvisioningError, match="stack/Thing property AccelerateConfiguration"):
        provider.check(_request("AWS::S3::Bucket", {"AccelerateConfiguration": {}}))


def test_a_noted_property_is_accepted_with_its_note() -> None:
    provider = PROVIDERS["AWS::S3::Bucket"](_context())
    notes = provider.check(
        _request("AWS::S3::Bucket", {"BucketName": "b", "LifecycleConfiguration": {}})
    )
    assert notes == ["LifecycleConfiguration: stored, never applied locally"]


def test_a_skipped_type_is_reported_with_its_reason_and_still_resolves() -> None:
    provider = PROVIDERS["AWS::CloudWatch::Dashboard"](_context())
    request = _request("AWS::CloudWatch::Dashboard", {"DashboardName": "ops", "Anything": 1})
    out = asyncio.run(provider.create(request, provider.check(request)))
    assert request.report.action == "skipped"
    assert request.report.note == "no CloudWatch metrics locally"
    assert out.ref == "ops"
