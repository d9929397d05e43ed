"""Creates a translated stack's resources locally, in dependency order.

The provisioner translates (SAM → CloudFormation), resolves parameters and intrinsics, orders the
resources by their dependencies and hands each one to the provider of its type
(`sluice.local.providers`): data-plane resources go to the embedded moto through its API; compute
is registered with the runtime (functions with the function runner, SQS event source mappings as
pollers, state machines with the workflow engine, schedules with the local scheduler); types with
no local meaning are listed as skipped, with the reason.

Every property of a handled type is either honoured, accepted with a noted limitation, or fails
`up` with a `ProvisioningError` naming the resource and property. Re-provisioning is idempotent:
existing resources are updated in place, and physical ids of generated names are remembered.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from sluice.local.errors import ProvisioningError
from sluice.local.iam.principals import PrincipalRegistry
from sluice.local.providers import (
    PROVIDERS,
    Limits,
    ProvisionContext,
    ResourceProvider,
    ResourceReport,
    ResourceRequest,
    RuntimeSink,
    ScheduleSpec,
)
from sluice.local.schemas import SchemaRegistries
from sluice.local.template import (
    ACCOUNT_ID,
    Outputs,
    Resolver,
    Stack,
    dependency_order,
    localize_code,
    resolve_dynamic_references,
    resolve_parameters,
    translate,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from sluice.local.iam.resources import ResourcePolicyRegistry

__all__ = ["Limits", "Provisioner", "ResourceReport", "RuntimeSink", "ScheduleSpec"]


class Provisioner:
    """Provisions stacks into the embedded moto and the runtime.

    Args:
        clients: a callable returning an aiobotocore client for a service name (on the endpoint).
        sink: the runtime registrations.
        repo_root: where layers that were not built take their content from.
        limits: local concurrency caps.
        principals: the role registry (a new one if not given).
        resource_policies: the resource-policy registry (a new one if not given).
        schemas: the Schema Registry the endpoint serves (a new one if not given).
    """

    def __init__(
        self,
        clients: Callable[[str], Any],
        sink: RuntimeSink,
        repo_root: Path,
        limits: Limits | None = None,
        *,
        principals: PrincipalRegistry | None = None,
        resource_policies: ResourcePolicyRegistry | None = None,
        schemas: SchemaRegistries | None = None,
    ) -> None:
        self.clients = clients
        self.ctx = ProvisionContext(
            clients,
            sink,
            repo_root,
            limits or Limits(),
            principals=principals or PrincipalRegistry(ACCOUNT_ID),
            resource_policies=resource_policies,
            schemas=schemas or SchemaRegistries(),
        )
        self.reports: list[ResourceReport] = []
        self._providers: dict[str, ResourceProvider] = {}

    # ------------------------------------------------------------------ stacks

    async def provision(self, stack: Stack, overrides: Mapping[str, str]) -> list[ResourceReport]:
        """Provision one stack (translate, resolve, create in dependency order).

        Returns:
            One report per resource.

        Raises:
            ProvisioningError: anything the runtime cannot honour (nothing after it is created).
        """
        ssm = self.clients("ssm")

        async def read(name: str) -> str:
            try:
                response = await ssm.get_parameter(Name=name)
            except ssm.exceptions.ParameterNotFound as exc:
                raise KeyError(name) from exc
            return str(response["Parameter"]["Value"])

        values: dict[str, str] = {}
        for spec in (stack.template.get("Parameters") or {}).values():
            if str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value<"):
                default = spec.get("Default")
                if default is not None:
                    with contextlib.suppress(KeyError):
                        values[str(default)] = await read(str(default))
        for name in overrides.values():
            if name.startswith("/") and name not in values:
                with contextlib.suppress(KeyError):
                    values[name] = await read(name)

        def read_ssm(name: str) -> str:
            return values[name]

        parameters = resolve_parameters(stack, overrides, read_ssm)
        localize_code(stack)
        cfn = translate(stack, parameters)
        resources: dict[str, Any] = cfn.get("Resources") or {}
        outputs: dict[str, Outputs] = {}
        resolver = Resolver(stack.name, cfn, parameters, outputs)
        self.ctx.stack = stack
        reports: list[ResourceReport] = []
        for logical_id in dependency_order(resources):
            res = resources[logical_id]
            rtype = str(res.get("Type"))
            condition = res.get("Condition")
            if condition and not resolver.condition(str(condition)):
                continue
            props = resolver.resolve(res.get("Properties") or {}, logical_id) or {}
            props = await resolve_dynamic_references(
                props, read, stack=stack.name, resource=logical_id
            )
            report = ResourceReport(stack.name, logical_id, rtype, "", "created")
            out = await self._create(stack.name, logical_id, rtype, props, report)
            outputs[logical_id] = out
            report.physical_id = str(out.ref)
            reports.append(report)
        self.reports.extend(reports)
        return reports

    async def _create(
        self, stack: str, logical_id: str, rtype: str, props: dict[str, Any], report: ResourceReport
    ) -> Outputs:
        provider = self._providers.get(rtype)
        if provider is None:
            cls = PROVIDERS.get(rtype)
            if cls is None:
                raise ProvisioningError(
                    f"resource type {rtype} is not supported by the local runtime",
                    stack=stack,
                    resource=logical_id,
                )
            provider = self._providers[rtype] = cls(self.ctx)
        request = ResourceRequest(stack, logical_id, props, report)
        return await provider.create(request, provider.check(request))
