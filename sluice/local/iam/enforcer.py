"""The decision for one principal and one access, AWS's denial messages, and the counters.

The combination follows AWS's policy evaluation logic for a request within one account
(IAM User Guide, `reference_policies_evaluation-logic.html` and
`reference_policies_evaluation-logic-cross-account.html`); there are no SCPs, permission
boundaries or session policies locally:

1. An explicit Deny in an identity-based policy or in the resource's policy denies. A
   resource-policy Deny applies to the account root too.
2. The account root holds every identity permission.
3. A role session is allowed when its identity-based policies allow, or when the resource policy
   names it directly (its session ARN, its role ARN, or `"*"`). A resource-policy Allow that names
   only the account delegates to the account: the role still needs an identity-based Allow.
   A role trust policy is the one resource policy that must always allow (`sts:AssumeRole` on a
   role ARN). Across accounts both sides must allow.
4. A service principal (`events.amazonaws.com` delivering to a queue) has no identity policies:
   only a resource policy naming that service (or `"*"`) allows it.
5. `sts:GetCallerIdentity` is always allowed (AWS answers it even under an explicit Deny).

Global condition keys filled here: `aws:PrincipalArn` (the role ARN for a session),
`aws:PrincipalAccount`, `aws:PrincipalType` (`Account` for root, `AssumedRole`),
`aws:userid` (`<account>` for root, `<role name>:<session>` for a session: the role's unique id
is not modelled, so the role name stands in for it), `aws:PrincipalIsAWSService`,
`aws:PrincipalServiceName` (service principals, which carry no PrincipalArn/Account),
`aws:SecureTransport`, `aws:CurrentTime`, `aws:EpochTime`, `aws:RequestedRegion` (the request's
own when `Access.context` names it) and `aws:ResourceAccount`. Request keys (`aws:SourceArn`,
`s3:prefix`, `events:source`, ...) come in `Access.context`.

TLS: the local endpoint is plain HTTP on loopback. It stands in for AWS's TLS front, so the
runtime decides its requests with `aws:SecureTransport=true` (the default of `decide`): the
project's TLS-only bucket policies (`DenyInsecureTransport`) behave as they do for every client
on AWS, which always connects over HTTPS. Pass `secure_transport=False` to see them deny.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sluice.local.iam.policy import (
    ALLOW,
    DENY,
    PolicyCache,
    PolicyError,
    RequestContext,
    Verdict,
)
from sluice.local.iam.ports import Access, Principal

if TYPE_CHECKING:
    from sluice.local.iam.ports import PolicyDocument, PrincipalStore, ResourcePolicyStore

RECENT_DENIALS = 50

DecidedBy = Literal[
    "disabled",
    "root",
    "identity-allow",
    "resource-allow",
    "always-allowed",
    "identity-deny",
    "resource-deny",
    "no-identity-allow",
    "no-resource-allow",
    "invalid-policy",
]


@dataclass(slots=True)
class Decision:
    """The answer for one access.

    Attributes:
        allowed: whether the access is allowed.
        decided_by: which rule decided (see the module docstring).
        reason: AWS's wording: `because no identity-based policy allows the s3:GetObject action`,
            `with an explicit deny in a resource-based policy`, ... (for an allow: which policy
            allowed).
        principal: who asked.
        access: what was asked.
        sid: the deciding statement's Sid (or index), when a statement decided.
    """

    allowed: bool
    decided_by: DecidedBy
    reason: str
    principal: Principal
    access: Access
    sid: str = ""

    @property
    def message(self) -> str:
        """AWS's AccessDenied message: `User: <arn> is not authorized to perform: <action> on
        resource: "<arn>" because ...` (no resource part for actions on `*`)."""
        return denial_message(self.principal, self.access, self.reason)


def denial_message(principal: Principal, access: Access, reason: str) -> str:
    """AWS's message naming principal, action, resource and reason."""
    where = f' on resource: "{access.resource}"' if access.resource != "*" else ""
    return f"User: {principal.arn} is not authorized to perform: {access.action}{where} {reason}"


class AccessDeniedError(Exception):
    """An access the enforcer denied. `str()` is AWS's message.

    Attributes:
        principal: who asked.
        action: `service:Action`.
        resource: the resource ARN (or `*`).
        reason: the reason part of the message.
        decision: the full decision.
    """

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.message)
        self.decision = decision
        self.principal = decision.principal
        self.action = decision.access.action
        self.resource = decision.access.resource
        self.reason = decision.reason


_BY_IDENTITY = "allowed by an identity-based policy"
_BY_RESOURCE = "allowed by a resource-based policy"
_BY_ROOT = "allowed: the account root holds every identity-based permission"

_TRUE = ("true",)
_FALSE = ("false",)


def _current_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch_time() -> str:
    return str(int(time.time()))


def _resource_account(resource: str, default: str) -> str:
    parts = resource.split(":", 5)
    if len(parts) == 6 and parts[4]:
        return parts[4]
    return default


def _is_trust(access: Access) -> bool:
    return access.action.lower().startswith("sts:assumerole") and ":iam::" in access.resource


class Enforcer:
    """Decides accesses for the local endpoint.

    Args:
        principals: who holds an access key.
        resource_policies: the resource-based policies.
        enabled: False allows everything (`sluice local up --no-iam`); decisions are still counted.
        account: the runtime's account (S3 ARNs carry none: buckets are this account's).
        region: the default `aws:RequestedRegion`.
    """

    def __init__(
        self,
        principals: PrincipalStore,
        resource_policies: ResourcePolicyStore,
        *,
        enabled: bool = True,
        account: str,
        region: str,
    ) -> None:
        self.principals = principals
        self.resource_policies = resource_policies
        self.enabled = enabled
        self.account = account
        self.region = region
        self._policies = PolicyCache()
        self._region_value = (region,)
        self._principal_key_cache: dict[
            tuple[str, str, str | None, str], dict[str, tuple[str, ...]]
        ] = {}
        self._lock = threading.Lock()
        self.decisions = 0
        self.denials = 0
        self.denials_by: Counter[tuple[str, str]] = Counter()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_DENIALS)

    # ------------------------------------------------------------------ API

    def decide(
        self, principal: Principal, access: Access, *, secure_transport: bool = True
    ) -> Decision:
        """Allow or deny `access` for `principal` (see the module docstring). Counts denials.

        A policy that applies but is not a valid document (AWS would have refused to store it)
        denies: enforcement fails closed, and the reason names the fault.
        """
        self.decisions += 1
        if not self.enabled:
            return Decision(True, "disabled", "IAM enforcement is off", principal, access)
        try:
            decision = self._decide(principal, access, secure_transport)
        except PolicyError as exc:
            decision = Decision(
                False,
                "invalid-policy",
                f"because a policy that applies is not a valid policy document: {exc}",
                principal,
                access,
            )
        if not decision.allowed:
            self._count(decision)
        return decision

    def check(
        self, principal: Principal, access: Access, *, secure_transport: bool = True
    ) -> Decision:
        """`decide`, raising `AccessDeniedError` on a denial."""
        decision = self.decide(principal, access, secure_transport=secure_transport)
        if not decision.allowed:
            raise AccessDeniedError(decision)
        return decision

    def describe(self) -> dict[str, Any]:
        """Counters for `/_sluice/state`: decisions, denials, the top denied (principal, action)
        pairs and the last denials with their time."""
        with self._lock:
            top = self.denials_by.most_common(20)
            recent = list(self.recent)
        return {
            "enabled": self.enabled,
            "decisions": self.decisions,
            "denials": self.denials,
            "denials_by": [
                {"principal": principal, "action": action, "count": count}
                for (principal, action), count in top
            ],
            "recent_denials": recent,
        }

    # ------------------------------------------------------------------ internals

    def _count(self, decision: Decision) -> None:
        with self._lock:
            self.denials += 1
            self.denials_by[(decision.principal.principal_arn, decision.access.action)] += 1
            self.recent.append(
                {
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "principal": decision.principal.arn,
                    "action": decision.access.action,
                    "resource": decision.access.resource,
                    "reason": decision.reason,
                }
            )

    def _principal_keys(self, principal: Principal) -> dict[str, tuple[str, ...]]:
        """The principal's global keys (lower-case names), computed once per principal."""
        marker = (principal.arn, principal.kind, principal.role_arn, principal.account)
        found = self._principal_key_cache.get(marker)
        if found is not None:
            return found
        keys: dict[str, str] = {}
        if principal.kind == "service":
            keys["aws:PrincipalServiceName"] = principal.arn
            keys["aws:PrincipalIsAWSService"] = "true"
        else:
            keys["aws:PrincipalIsAWSService"] = "false"
            keys["aws:PrincipalArn"] = principal.principal_arn
            keys["aws:PrincipalAccount"] = principal.account
            if principal.kind == "root":
                keys["aws:PrincipalType"] = "Account"
                keys["aws:userid"] = principal.account
            else:
                keys["aws:PrincipalType"] = "AssumedRole"
                role_name = (principal.role_arn or "").rsplit("/", 1)[-1]
                session = principal.arn.rsplit("/", 1)[-1]
                keys["aws:userid"] = f"{role_name}:{session}"
        found = {name.lower(): (value,) for name, value in keys.items()}
        if len(self._principal_key_cache) > 4096:
            self._principal_key_cache.clear()
        self._principal_key_cache[marker] = found
        return found

    def _context(self, principal: Principal, access: Access, secure: bool) -> RequestContext:
        keys: dict[str, tuple[str, ...]] = {"aws:requestedregion": self._region_value}
        for name, value in access.context.items():
            keys[name.lower()] = (value,) if isinstance(value, str) else tuple(value)
        # The enforcer's keys come last: a request cannot set who its caller is.
        keys.update(self._principal_keys(principal))
        keys["aws:securetransport"] = _TRUE if secure else _FALSE
        resource = access.resource
        lazy = {
            "aws:currenttime": _current_time,
            "aws:epochtime": _epoch_time,
            "aws:resourceaccount": lambda: _resource_account(resource, self.account),
        }
        return RequestContext.normalized(access.action, resource, keys, lazy)

    def _identity(self, principal: Principal, ctx: RequestContext) -> Verdict:
        allow: Verdict | None = None
        for document in principal.identity_policies:
            verdict = self._policies.get(document).evaluate(ctx)
            if verdict.effect == DENY:
                return verdict
            if verdict.effect == ALLOW and allow is None:
                allow = verdict
        return allow or Verdict(None)

    def _resource(
        self, principal: Principal, ctx: RequestContext, document: PolicyDocument | None
    ) -> Verdict:
        if document is None:
            return Verdict(None)
        return self._policies.get(document, resource_policy=True).evaluate(ctx, principal)

    def _decide(self, principal: Principal, access: Access, secure: bool) -> Decision:
        action = access.action
        if action.lower() == "sts:getcalleridentity":
            return Decision(
                True, "always-allowed", "sts:GetCallerIdentity is always allowed", principal, access
            )
        ctx = self._context(principal, access, secure)
        document = self.resource_policies.policy_for(access.resource)
        resource = self._resource(principal, ctx, document)
        identity = self._identity(principal, ctx) if principal.kind == "role" else Verdict(None)

        if identity.effect == DENY:
            return Decision(
                False,
                "identity-deny",
                "with an explicit deny in an identity-based policy",
                principal,
                access,
                identity.sid,
            )
        if resource.effect == DENY:
            return Decision(
                False,
                "resource-deny",
                "with an explicit deny in a resource-based policy",
                principal,
                access,
                resource.sid,
            )

        no_resource = Decision(
            False,
            "no-resource-allow",
            f"because no resource-based policy allows the {action} action",
            principal,
            access,
        )
        resource_allows = resource.effect == ALLOW
        direct = resource_allows and not resource.via_account
        same_account = principal.account == _resource_account(access.resource, self.account)

        if principal.kind == "service":
            if direct:
                return Decision(
                    True, "resource-allow", _BY_RESOURCE, principal, access, resource.sid
                )
            return no_resource

        if principal.kind == "root":
            if same_account and not _is_trust(access):
                return Decision(True, "root", _BY_ROOT, principal, access)
            if resource_allows:
                return Decision(
                    True, "resource-allow", _BY_RESOURCE, principal, access, resource.sid
                )
            return no_resource

        identity_allows = identity.effect == ALLOW
        if _is_trust(access) or not same_account:
            # The resource policy must allow; an account-level grant also needs the identity's.
            if direct and same_account:
                return Decision(
                    True, "resource-allow", _BY_RESOURCE, principal, access, resource.sid
                )
            if resource_allows and identity_allows:
                return Decision(
                    True, "identity-allow", _BY_IDENTITY, principal, access, identity.sid
                )
            if not resource_allows:
                return no_resource
        else:
            if identity_allows:
                return Decision(
                    True, "identity-allow", _BY_IDENTITY, principal, access, identity.sid
                )
            if direct:
                return Decision(
                    True, "resource-allow", _BY_RESOURCE, principal, access, resource.sid
                )
        return Decision(
            False,
            "no-identity-allow",
            f"because no identity-based policy allows the {action} action",
            principal,
            access,
        )
