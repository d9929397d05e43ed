"""The interfaces between IAM enforcement (`enforcer`) and the runtime that provisions roles and
resource policies (`principals`, `resources`).

`Principal` is who calls; `Access` is one action on one resource with the request's own condition
keys; `PrincipalStore` turns an access key id into a principal; `ResourcePolicyStore` gives the
resource-based policy that applies to a resource ARN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

PolicyDocument = Mapping[str, Any]
"""A parsed IAM policy document (`{"Version": ..., "Statement": [...] | {...}}`)."""

ContextValue = str | list[str]
"""A condition-key value: one string, or several for multivalued keys."""


@dataclass(frozen=True)
class Principal:
    """The caller of one request.

    Attributes:
        arn: `arn:aws:iam::<acct>:root` (root), `arn:aws:sts::<acct>:assumed-role/<role>/<session>`
            (role session), or a service principal name such as `events.amazonaws.com`.
        account: the caller's account id (the resource's account for a service principal).
        kind: `root`, `role` (a role session) or `service` (an AWS service acting for a resource).
        role_arn: for `role`, the role's ARN `arn:aws:iam::<acct>:role/<path><name>`; this is the
            value of `aws:PrincipalArn`.
        identity_policies: the role's identity-based policies (inline and attached managed),
            parsed; empty for `root` (which holds every permission) and `service`.
    """

    arn: str
    account: str
    kind: Literal["root", "role", "service"]
    role_arn: str | None = None
    identity_policies: tuple[PolicyDocument, ...] = field(default=(), compare=False)

    @property
    def principal_arn(self) -> str:
        """The value of `aws:PrincipalArn`: the role ARN for a session, else `arn`."""
        return self.role_arn or self.arn


@dataclass(frozen=True)
class Access:
    """One action on one resource, with the condition keys only the request knows.

    Attributes:
        action: `service:Action`, e.g. `s3:GetObject`.
        resource: the resource ARN, or `*` for actions without resource-level permissions.
        context: request-specific condition keys (`s3:prefix`, `events:source`, `aws:SourceArn`,
            ...). Global keys derived from the principal and the transport are added by the
            enforcer.
    """

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


class PrincipalStore(Protocol):
    """Who holds an access key."""

    def resolve(self, access_key_id: str | None) -> Principal:
        """The principal of `access_key_id`: a role session the runtime or STS issued; any other
        key (or none) is the account root, so every existing client keeps working."""
        ...


class ResourcePolicyStore(Protocol):
    """The resource-based policies provisioned from the templates (or set through the API)."""

    def policy_for(self, resource_arn: str) -> PolicyDocument | None:
        """The policy that governs `resource_arn`, or None.

        Bucket policies for `arn:aws:s3:::<bucket>` and every `arn:aws:s3:::<bucket>/<key>`;
        event-bus policies for `arn:aws:events:<r>:<a>:event-bus/<name>`; queue policies for
        `arn:aws:sqs:<r>:<a>:<name>`; function policies (Lambda permissions) for
        `arn:aws:lambda:<r>:<a>:function:<name>`; trust policies for `arn:aws:iam::<a>:role/...`.
        """
        ...
