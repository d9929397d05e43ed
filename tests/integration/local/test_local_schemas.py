"""The local Schema Registry: the registry and schemas of a template, provisioned by `up` and read
with the AWS SDK as on AWS; each schema is the detail (envelope) a consumer receives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from botocore.exceptions import ClientError

from contracts.events import BUILTIN_MODELS, FileProcessedV1
from contracts.tools import ContractFolder
from deploy.gen_schemas import render_section
from sluice.local.runtime import LocalRuntime
from tests.integration.local.conftest import fixture_options
from tests.processes import free_port

REGISTRY = "sluice-test"


@pytest.fixture
async def runtime(moto_endpoint: str, tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    """GIVEN the fixture stacks plus a registry stack, its schemas generated as for deploy/."""
    template = tmp_path / "schemas.yaml"
    template.write_text(
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n"
        "  SchemaRegistry:\n    Type: AWS::EventSchemas::Registry\n"
        f"    Properties:\n      RegistryName: {REGISTRY}\n      Description: contracts\n\n"
        + render_section()
    )
    options = fixture_options(tmp_path / "state", free_port())
    rt = LocalRuntime(replace(options, templates=[*options.templates, template]))
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


def _client(runtime: LocalRuntime) -> Any:
    factory: Any = boto3.client
    return factory("schemas", endpoint_url=runtime.endpoint_url, region_name="us-east-1")


async def test_local_registry_serves_the_detail_schema_of_every_contract(
    runtime: LocalRuntime,
) -> None:
    client = _client(runtime)

    registries = await asyncio.to_thread(client.list_registries)
    listed = await asyncio.to_thread(client.list_schemas, RegistryName=REGISTRY)
    described = await asyncio.to_thread(
        client.describe_schema, RegistryName=REGISTRY, SchemaName=FileProcessedV1.TYPE
    )

    assert [r["RegistryName"] for r in registries["Registries"]] == [REGISTRY]
    assert {s["SchemaName"] for s in listed["Schemas"]} == {m.TYPE for m in BUILTIN_MODELS}
    assert described["Type"] == "JSONSchemaDraft4"
    assert described["SchemaVersion"] == "1"
    # THEN what a consumer reads locally validates the event as it arrives in `detail`
    validator = jsonschema.Draft4Validator(json.loads(described["Content"]))
    for example in ContractFolder.of(FileProcessedV1).example_files():
        envelope = json.loads(example.read_text())
        assert list(validator.iter_errors(envelope)) == []
        assert not validator.is_valid(envelope["data"])
    reports = {
        r.logical_id: r.action for r in runtime.reports if r.type.startswith("AWS::EventSch")
    }
    assert set(reports.values()) == {"emulated"}


async def test_local_registry_answers_unknown_schemas_and_writes_as_aws_would(
    runtime: LocalRuntime,
) -> None:
    client = _client(runtime)

    with pytest.raises(ClientError) as missing:
        await asyncio.to_thread(
            client.describe_schema, RegistryName=REGISTRY, SchemaName="acme.nothing.v1"
        )
    with pytest.raises(ClientError) as write:
        await asyncio.to_thread(
            client.create_schema,
            RegistryName=REGISTRY,
            SchemaName="acme.new.v1",
            Type="JSONSchemaDraft4",
            Content="{}",
        )

    assert missing.value.response["Error"]["Code"] == "NotFoundException"
    assert write.value.response["Error"]["Code"] == "NotImplemented"
    assert "templates" in str(write.value)


async def test_reprovisioning_a_changed_schema_is_a_new_version(runtime: LocalRuntime) -> None:
    schema = runtime.schemas.schemas[(REGISTRY, FileProcessedV1.TYPE)]
    content = schema.content

    runtime.schemas.put_schema(REGISTRY, schema.name, schema.type, content)
    unchanged = schema.version
    runtime.schemas.put_schema(REGISTRY, schema.name, schema.type, content + " ")

    assert (unchanged, schema.version) == (1, 2)
