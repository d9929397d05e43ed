"""`AWS::IAM::Role`, `AWS::IAM::Policy`, `AWS::IAM::ManagedPolicy`: created in the embedded moto's
IAM (so `aws iam get-role` answers and moto's STS can assume them); the runtime's principal
registry (`sluice.local.iam.principals`) reads their policies from there."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from sluice.local.iam.principals import AWS_MANAGED_PREFIX, ensure_aws_managed_policy
from sluice.local.providers.base import (
    ResourceProvider,
    ResourceRequest,
    generated_name,
    register,
)
from sluice.local.template import ACCOUNT_ID, Outputs

if TYPE_CHECKING:
    from collections.abc import Mapping


def _json(document: Any) -> str:
    return document if isinstance(document, str) else json.dumps(document)


def _role_names(request: ResourceRequest) -> list[str]:
    if request.props.get("Users") or request.props.get("Groups"):
        prop = "Users" if request.props.get("Users") else "Groups"
        raise request.error("only roles are provisioned locally (no IAM users or groups)", prop)
    return [str(name).rsplit("/", 1)[-1] for name in request.props.get("Roles") or []]


async def _attach(request: ResourceRequest, iam: Any, role: str, policy_arn: str) -> None:
    if policy_arn.startswith(AWS_MANAGED_PREFIX) and not ensure_aws_managed_policy(
        ACCOUNT_ID, policy_arn
    ):
        raise request.error(f"unknown AWS managed policy {policy_arn}", "ManagedPolicyArns")
    try:
        await iam.attach_role_policy(RoleName=role, PolicyArn=policy_arn)
    except iam.exceptions.NoSuchEntityException as exc:
        raise request.error(
            f"policy {policy_arn} does not exist locally", "ManagedPolicyArns"
        ) from exc


@register
class RoleProvider(ResourceProvider):
    """A role: trust policy, inline policies and attached managed policies (AWS managed ones
    take their documents from the data moto ships)."""

    type_name = "AWS::IAM::Role"
    honoured = frozenset(
        {
            "RoleName",
            "AssumeRolePolicyDocument",
            "Policies",
            "ManagedPolicyArns",
            "Path",
            "Description",
            "MaxSessionDuration",
            "Tags",
        }
    )
    noted: ClassVar[Mapping[str, str]] = {
        "PermissionsBoundary": "stored, not evaluated locally",
    }

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._put: dict[tuple[str, str], tuple[set[str], set[str]]] = {}

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        iam = self.ctx.clients("iam")
        name = str(props.get("RoleName") or generated_name(request.stack, request.logical_id))
        trust = _json(props["AssumeRolePolicyDocument"])
        try:
            role = (await iam.get_role(RoleName=name))["Role"]
            await iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
            request.report.action = "updated"
        except iam.exceptions.NoSuchEntityException:
            args: dict[str, Any] = {
                "RoleName": name,
                "AssumeRolePolicyDocument": trust,
                "Path": str(props.get("Path", "/")),
            }
            if props.get("Description"):
                args["Description"] = str(props["Description"])
            if props.get("MaxSessionDuration"):
                args["MaxSessionDuration"] = int(props["MaxSessionDuration"])
            if props.get("Tags"):
                args["Tags"] = props["Tags"]
            if props.get("PermissionsBoundary"):
                args["PermissionsBoundary"] = str(props["PermissionsBoundary"])
            role = (await iam.create_role(**args))["Role"]
        inline = set()
        for policy in props.get("Policies") or []:
            policy_name = str(policy["PolicyName"])
            await iam.put_role_policy(
                RoleName=name,
                PolicyName=policy_name,
                PolicyDocument=_json(policy["PolicyDocument"]),
            )
            inline.add(policy_name)
        managed = {str(arn) for arn in props.get("ManagedPolicyArns") or []}
        for policy_arn in sorted(managed):
            await _attach(request, iam, name, policy_arn)
        # What this resource put before and no longer lists is removed (policies put by
        # AWS::IAM::Policy / ManagedPolicy resources are theirs, and stay).
        before_inline, before_managed = self._put.get(
            (request.stack, request.logical_id), (set(), set())
        )
        for policy_name in before_inline - inline:
            await iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
        for policy_arn in before_managed - managed:
            await iam.detach_role_policy(RoleName=name, PolicyArn=policy_arn)
        self._put[(request.stack, request.logical_id)] = (inline, managed)
        request.report.note = "; ".join(
            [f"{len(inline)} inline and {len(managed)} managed policies", *notes]
        )
        return Outputs(ref=name, attrs={"Arn": str(role["Arn"]), "RoleId": str(role["RoleId"])})


@register
class PolicyProvider(ResourceProvider):
    """An inline policy put on each of its roles."""

    type_name = "AWS::IAM::Policy"
    honoured = frozenset({"PolicyName", "PolicyDocument", "Roles", "Users", "Groups"})

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        iam = self.ctx.clients("iam")
        policy_name = str(request.props["PolicyName"])
        document = _json(request.props["PolicyDocument"])
        for role in _role_names(request):
            await iam.put_role_policy(
                RoleName=role, PolicyName=policy_name, PolicyDocument=document
            )
        request.report.note = f"inline policy {policy_name} on {', '.join(_role_names(request))}"
        return Outputs(ref=generated_name(request.stack, request.logical_id))


@register
class ManagedPolicyProvider(ResourceProvider):
    """A customer managed policy (a new default version on update), attached to its roles."""

    type_name = "AWS::IAM::ManagedPolicy"
    honoured = frozenset(
        {"ManagedPolicyName", "PolicyDocument", "Roles", "Users", "Groups", "Path", "Description"}
    )

    async def create(self, request: ResourceRequest, notes: list[str]) -> Outputs:
        props = request.props
        iam = self.ctx.clients("iam")
        name = str(
            props.get("ManagedPolicyName") or generated_name(request.stack, request.logical_id, 128)
        )
        path = str(props.get("Path", "/"))
        policy_arn = f"arn:aws:iam::{ACCOUNT_ID}:policy{path}{name}"
        document = _json(props["PolicyDocument"])
        try:
            await iam.get_policy(PolicyArn=policy_arn)
            versions = (await iam.list_policy_versions(PolicyArn=policy_arn))["Versions"]
            for version in versions:
                if not version["IsDefaultVersion"]:
                    await iam.delete_policy_version(
                        PolicyArn=policy_arn, VersionId=version["VersionId"]
                    )
            await iam.create_policy_version(
                PolicyArn=policy_arn, PolicyDocument=document, SetAsDefault=True
            )
            request.report.action = "updated"
        except iam.exceptions.NoSuchEntityException:
            args: dict[str, Any] = {"PolicyName": name, "PolicyDocument": document, "Path": path}
            if props.get("Description"):
                args["Description"] = str(props["Description"])
            policy_arn = str((await iam.create_policy(**args))["Policy"]["Arn"])
        for role in _role_names(request):
            await _attach(request, iam, role, policy_arn)
        return Outputs(ref=policy_arn, attrs={"PolicyArn": policy_arn})
