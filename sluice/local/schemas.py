"""The EventBridge Schema Registry, read side: the registries and schemas of the templates.

moto has no `schemas` service. The platform template declares one registry and, per event
contract, a schema holding the detail (envelope) consumers receive (deploy/gen_schemas.py); the
providers in `providers/schemas.py` put them here at `up`, and the endpoint answers the calls a
consumer makes to read them (restJson1, as the AWS SDKs and CLI send them):

| Operation | Request |
|---|---|
| ListRegistries | `GET /v1/registries` |
| DescribeRegistry | `GET /v1/registries/name/{registry}` |
| ListSchemas | `GET /v1/registries/name/{registry}/schemas` |
| DescribeSchema | `GET /v1/registries/name/{registry}/schemas/name/{schema}` |
| ExportSchema | `GET .../schemas/name/{schema}/export?type=JSONSchemaDraft4` |

Anything else (creating schemas through the API, discovery, code bindings) answers 501 with
what is emulated: the templates are where schemas come from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from sluice.local.template import ACCOUNT_ID, REGION


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Schema:
    """One schema: its content and how many versions `up` has put."""

    registry: str
    name: str
    type: str
    content: str
    description: str = ""
    version: int = 1
    modified: str = field(default_factory=_now)

    @property
    def arn(self) -> str:
        return f"arn:aws:schemas:{REGION}:{ACCOUNT_ID}:schema/{self.registry}/{self.name}"


@dataclass
class Registry:
    """One registry and its description."""

    name: str
    description: str = ""

    @property
    def arn(self) -> str:
        return f"arn:aws:schemas:{REGION}:{ACCOUNT_ID}:registry/{self.name}"


_ROUTE = re.compile(
    r"^/v1/registries(?:/name/(?P<registry>[^/]+)"
    r"(?:(?P<list>/schemas)(?:/name/(?P<schema>[^/]+)(?P<export>/export)?)?)?)?/?$"
)


class SchemaRegistries:
    """The registries and schemas provisioned from the templates, and the read API over them."""

    def __init__(self) -> None:
        self.registries: dict[str, Registry] = {}
        self.schemas: dict[tuple[str, str], Schema] = {}

    def put_registry(self, name: str, description: str = "") -> Registry:
        """Create the registry, or update its description."""
        registry = self.registries.setdefault(name, Registry(name))
        registry.description = description
        return registry

    def put_schema(
        self, registry: str, name: str, type_: str, content: str, description: str = ""
    ) -> Schema:
        """Create the schema, or update it: a changed content is a new version, as on AWS.

        Raises:
            KeyError: no such registry.
        """
        if registry not in self.registries:
            raise KeyError(registry)
        found = self.schemas.get((registry, name))
        if found is None:
            found = Schema(registry, name, type_, content, description)
            self.schemas[(registry, name)] = found
        elif (found.content, found.type) != (content, type_):
            found.content, found.type = content, type_
            found.version += 1
            found.modified = _now()
        found.description = description
        return found

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one `schemas` request (see the module docstring)."""
        route = _ROUTE.match(request.path)
        if request.method != "GET" or route is None:
            return _error(
                501,
                "NotImplemented",
                "sluice local: the Schema Registry answers ListRegistries, DescribeRegistry, "
                "ListSchemas, DescribeSchema and ExportSchema for the schemas of the templates; "
                f"{request.method} {request.path} is not emulated",
            )
        registry_name = route.group("registry")
        if registry_name is None:
            return _ok({"Registries": [_registry_doc(r) for r in self.registries.values()]})
        registry = self.registries.get(unquote(registry_name))
        if registry is None:
            return _error(404, "NotFoundException", f"Registry {unquote(registry_name)} not found")
        schema_name = route.group("schema")
        if schema_name is None:
            if route.group("list"):
                listed = [s for (r, _), s in self.schemas.items() if r == registry.name]
                return _ok({"Schemas": [_schema_summary(s) for s in listed]})
            return _ok({**_registry_doc(registry), "Description": registry.description})
        schema = self.schemas.get((registry.name, unquote(schema_name)))
        wanted = request.query.get("schemaVersion")
        if schema is None or (wanted is not None and wanted != str(schema.version)):
            return _error(404, "NotFoundException", f"Schema {unquote(schema_name)} not found")
        if route.group("export"):
            return _ok(
                {
                    "Content": schema.content,
                    "SchemaArn": schema.arn,
                    "SchemaName": schema.name,
                    "SchemaVersion": str(schema.version),
                    "Type": request.query.get("type", schema.type),
                }
            )
        return _ok(
            {
                "Content": schema.content,
                "Description": schema.description,
                "LastModified": schema.modified,
                "SchemaArn": schema.arn,
                "SchemaName": schema.name,
                "SchemaVersion": str(schema.version),
                "Tags": {},
                "Type": schema.type,
                "VersionCreatedDate": schema.modified,
            }
        )


def _registry_doc(registry: Registry) -> dict[str, Any]:
    return {"RegistryArn": registry.arn, "RegistryName": registry.name, "Tags": {}}


def _schema_summary(schema: Schema) -> dict[str, Any]:
    return {
        "LastModified": schema.modified,
        "SchemaArn": schema.arn,
        "SchemaName": schema.name,
        "Tags": {},
        "VersionCount": schema.version,
    }


def _ok(document: dict[str, Any]) -> web.Response:
    return web.Response(
        status=200, body=json.dumps(document).encode(), content_type="application/json"
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"Code": code, "Message": message}).encode(),
        content_type="application/json",
        headers={"x-amzn-ErrorType": code},
    )
