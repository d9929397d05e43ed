"""`AWS::Glue::Database`, `AWS::Glue::Table` and `AWS::Athena::WorkGroup`, in the embedded moto.

The query catalog of the platform template (deploy/gen_catalog.py): the same database, tables
(columns, partition keys, projection properties) and workgroup as on AWS, so a client can read
them (`aws glue get-table`). Locally, `sluice query` runs the SQL in DuckDB; moto runs no query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from sluice.local.providers.base import (
    ResourceProvider,
    ResourceRequest,
    arn,
    register,
)
from sluice.local.template import Outputs

if TYPE_CHECKING:
    from collections.abc import Mapping


def _exists(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    message = str(response.get("Error", {}).get("Message", ""))
    return code == "AlreadyExistsException" or "already exists" in message.lower()


@register
class GlueDatabaseProvider(ResourceProvider):
    """A Glue database (its input replaced on re-provisioning)."""

    type_name = "AWS::Glue::Database"
    honoured = frozenset({"CatalogId", "DatabaseInput"})
    noted: ClassVar[Mapping[str, str]] = {"DatabaseName": "the name comes from DatabaseInput"}

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        database_input: dict[str, Any] = dict(request.props["DatabaseInput"])
        name = str(database_input["Name"])
        glue = self.ctx.clients("glue")
        try:
            await glue.create_database(DatabaseInput=database_input)
        except Exception as error:
            if not _exists(error):
                raise
            await glue.update_database(Name=name, DatabaseInput=database_input)
            request.report.action = "updated"
        request.report.note = "; ".join(notes)
        return Outputs(ref=name, attrs={})


@register
class GlueTableProvider(ResourceProvider):
    """A Glue table (columns, partition keys, parameters), replaced on re-provisioning."""

    type_name = "AWS::Glue::Table"
    honoured = frozenset({"CatalogId", "DatabaseName", "TableInput"})

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        database = str(request.props["DatabaseName"])
        table_input: dict[str, Any] = dict(request.props["TableInput"])
        name = str(table_input["Name"])
        glue = self.ctx.clients("glue")
        try:
            await glue.create_table(DatabaseName=database, TableInput=table_input)
        except Exception as error:
            if not _exists(error):
                raise
            await glue.update_table(DatabaseName=database, TableInput=table_input)
            request.report.action = "updated"
        request.report.note = "; ".join(notes)
        return Outputs(ref=name, attrs={})


@register
class AthenaWorkGroupProvider(ResourceProvider):
    """An Athena workgroup. moto has no UpdateWorkGroup: re-provisioning recreates it."""

    type_name = "AWS::Athena::WorkGroup"
    honoured = frozenset({"Name", "Description", "State", "WorkGroupConfiguration", "Tags"})
    noted: ClassVar[Mapping[str, str]] = {
        "RecursiveDeleteOption": "workgroups are never deleted locally",
    }

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        name = str(props["Name"])
        args: dict[str, Any] = {"Name": name}
        if "Description" in props:
            args["Description"] = str(props["Description"])
        if "WorkGroupConfiguration" in props:
            args["Configuration"] = _configuration(props["WorkGroupConfiguration"])
        if props.get("Tags"):
            args["Tags"] = list(props["Tags"])
        athena = self.ctx.clients("athena")
        existing = (await athena.list_work_groups()).get("WorkGroups", [])
        if any(group.get("Name") == name for group in existing):
            await athena.delete_work_group(WorkGroup=name, RecursiveDeleteOption=True)
            request.report.action = "updated"
        await athena.create_work_group(**args)
        request.report.note = "; ".join(notes)
        return Outputs(ref=name, attrs={"Arn": arn("athena", f"workgroup/{name}")})


def _configuration(template: Mapping[str, Any]) -> dict[str, Any]:
    """The template's WorkGroupConfiguration as the API's Configuration (same shape, numbers and
    booleans typed as the API wants them)."""
    config: dict[str, Any] = dict(template)
    for flag in ("EnforceWorkGroupConfiguration", "PublishCloudWatchMetricsEnabled"):
        if flag in config:
            config[flag] = str(config[flag]).lower() == "true"
    if "BytesScannedCutoffPerQuery" in config:
        config["BytesScannedCutoffPerQuery"] = int(config["BytesScannedCutoffPerQuery"])
    return config
