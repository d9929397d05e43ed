"""The enforcer: identity and resource policies combined as AWS's evaluation logic documents it
(explicit Deny first, root, role sessions, account delegation, service principals, role trust),
the global condition keys it fills, AWS's messages, and the counters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sluice.local.iam.enforcer import AccessDeniedError, Enforcer
from sluice.local.iam.ports import Access, PolicyDocument, Principal
from sluice.local.template import load_template

ACCT = "123456789012"
OTHER = "210987654321"
REGION = "us-east-1"
ROOT_DIR = Path(__file__).resolve().parents[4]


def role(name: str, *policies: dict[str, Any], account: str = ACCT) -> Principal:
    return Principal(
        arn=f"arn:aws:sts::{account}:assumed-role/{name}/session-{name}",
        account=account,
        kind="role",
        role_arn=f"arn:aws:iam::{account}:role/{name}",
        identity_policies=tuple(policies),
    )


ROOT = Principal(arn=f"arn:aws:iam::{ACCT}:root", account=ACCT, kind="root")
EVENTS = Principal(arn="events.amazonaws.com", account=ACCT, kind="service")


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def stmt(effect: str, action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": resource, **extra}


class Principals:
    """A PrincipalStore over a dict; unknown keys are the account root."""

    def __init__(self, by_key: dict[str, Principal] | None = None) -> None:
        self.by_key = by_key or {}

    def resolve(self, access_key_id: str | None) -> Principal:
        return self.by_key.get(access_key_id or "", ROOT)


class ResourcePolicies:
    """A ResourcePolicyStore: a bucket's policy governs the bucket and its objects."""

    def __init__(self, by_arn: dict[str, PolicyDocument] | None = None) -> None:
        self.by_arn = by_arn or {}

    def policy_for(self, resource_arn: str) -> PolicyDocument | None:
        if resource_arn.startswith("arn:aws:s3:::"):
            resource_arn = resource_arn.split("/", 1)[0]
        return self.by_arn.get(resource_arn)


def enforcer(resources: dict[str, PolicyDocument] | None = None, **kw: Any) -> Enforcer:
    return Enforcer(Principals(), ResourcePolicies(resources), account=ACCT, region=REGION, **kw)


GET = Access("s3:GetObject", "arn:aws:s3:::b/k")
BUCKET = "arn:aws:s3:::b"


# ---------------------------------------------------------------- identity-based


def test_role_without_identity_allow_is_denied_with_aws_message() -> None:
    who = role("Output", policy(stmt("Allow", "s3:PutObject", "arn:aws:s3:::b/*")))
    decision = enforcer().decide(who, GET)
    assert not decision.allowed
    assert decision.message == (
        f"User: arn:aws:sts::{ACCT}:assumed-role/Output/session-Output is not authorized to "
        'perform: s3:GetObject on resource: "arn:aws:s3:::b/k" because no identity-based policy '
        "allows the s3:GetObject action"
    )


def test_role_allowed_by_identity_policy() -> None:
    who = role("Output", policy(stmt("Allow", "s3:GetObject", "arn:aws:s3:::b/*")))
    decision = enforcer().decide(who, GET)
    assert (decision.allowed, decision.decided_by) == (True, "identity-allow")
    assert decision.reason == "allowed by an identity-based policy"
    assert decision.sid == "0"


def test_identity_deny_in_any_policy_wins() -> None:
    who = role("R", policy(stmt("Allow", "s3:*")), policy(stmt("Deny", "s3:GetObject")))
    decision = enforcer().decide(who, GET)
    assert not decision.allowed
    assert decision.reason == "with an explicit deny in an identity-based policy"


def test_action_on_star_message_has_no_resource() -> None:
    decision = enforcer().decide(role("R"), Access("s3:ListAllMyBuckets", "*"))
    assert decision.message.endswith(
        "is not authorized to perform: s3:ListAllMyBuckets because no identity-based policy "
        "allows the s3:ListAllMyBuckets action"
    )


# ---------------------------------------------------------------- root


def test_root_holds_every_identity_permission() -> None:
    assert enforcer().decide(ROOT, GET).decided_by == "root"


def test_resource_policy_deny_applies_to_root() -> None:
    deny = policy({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"})
    decision = enforcer({BUCKET: deny}).decide(ROOT, GET)
    assert not decision.allowed
    assert decision.reason == "with an explicit deny in a resource-based policy"


# ---------------------------------------------------------------- resource-based


@pytest.mark.parametrize(
    "principal",
    [
        {"AWS": f"arn:aws:iam::{ACCT}:role/Reader"},
        {"AWS": f"arn:aws:sts::{ACCT}:assumed-role/Reader/session-Reader"},
        "*",
    ],
)
def test_resource_policy_naming_the_session_allows_without_identity_grant(principal: Any) -> None:
    bucket = policy(
        {
            "Effect": "Allow",
            "Principal": principal,
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::b/*",
        }
    )
    decision = enforcer({BUCKET: bucket}).decide(role("Reader"), GET)
    assert (decision.allowed, decision.decided_by) == (True, "resource-allow")


def test_resource_policy_naming_only_the_account_delegates_to_identity() -> None:
    # GIVEN a bucket policy that allows the account (id or root ARN)
    bucket = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": ACCT},
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::b/*",
        }
    )
    checker = enforcer({BUCKET: bucket})
    # THEN a role of the account without an identity grant is still denied ...
    assert not checker.decide(role("Reader"), GET).allowed
    # ... and one with the grant is allowed
    granted = role("Reader", policy(stmt("Allow", "s3:GetObject")))
    assert checker.decide(granted, GET).allowed


def test_resource_deny_wins_over_identity_allow() -> None:
    bucket = policy(
        {
            "Effect": "Deny",
            "Principal": {"AWS": ACCT},
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::b/*",
        }
    )
    who = role("R", policy(stmt("Allow", "s3:*")))
    decision = enforcer({BUCKET: bucket}).decide(who, GET)
    assert (decision.allowed, decision.decided_by) == (False, "resource-deny")


def test_identity_deny_wins_over_resource_allow() -> None:
    bucket = policy({"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"})
    who = role("R", policy(stmt("Deny", "s3:GetObject")))
    assert enforcer({BUCKET: bucket}).decide(who, GET).decided_by == "identity-deny"


def test_other_account_needs_both_identity_and_resource_allow() -> None:
    queue = f"arn:aws:sqs:{REGION}:{ACCT}:q"
    send = Access("sqs:SendMessage", queue)
    outsider = role("Partner", policy(stmt("Allow", "sqs:SendMessage")), account=OTHER)
    assert enforcer().decide(outsider, send).decided_by == "no-resource-allow"
    queue_policy = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": OTHER},
            "Action": "sqs:SendMessage",
            "Resource": queue,
        }
    )
    assert enforcer({queue: queue_policy}).decide(outsider, send).allowed
    no_identity = role("Partner", account=OTHER)
    assert not enforcer({queue: queue_policy}).decide(no_identity, send).allowed


# ---------------------------------------------------------------- service principals


def test_service_principal_allowed_only_by_a_resource_policy_naming_it() -> None:
    queue = f"arn:aws:sqs:{REGION}:{ACCT}:validate"
    rule = f"arn:aws:events:{REGION}:{ACCT}:rule/sluice-dev/validate"
    queue_policy = policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule}},
        }
    )
    checker = enforcer({queue: queue_policy})
    delivery = Access("sqs:SendMessage", queue, {"aws:SourceArn": rule})
    assert checker.decide(EVENTS, delivery).allowed
    other_rule = Access("sqs:SendMessage", queue, {"aws:SourceArn": f"{rule}-other"})
    denied = checker.decide(EVENTS, other_rule)
    assert denied.reason == "because no resource-based policy allows the sqs:SendMessage action"
    assert not enforcer().decide(EVENTS, delivery).allowed
    # a policy naming the account does not let a service in
    account_only = policy(
        {"Effect": "Allow", "Principal": {"AWS": ACCT}, "Action": "sqs:*", "Resource": queue}
    )
    assert not enforcer({queue: account_only}).decide(EVENTS, delivery).allowed


def test_service_principal_name_key_is_set() -> None:
    queue = f"arn:aws:sqs:{REGION}:{ACCT}:q"
    queue_policy = policy(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "sqs:SendMessage",
            "Resource": queue,
            "Condition": {"StringEquals": {"aws:PrincipalServiceName": "events.amazonaws.com"}},
        }
    )
    checker = enforcer({queue: queue_policy})
    assert checker.decide(EVENTS, Access("sqs:SendMessage", queue)).allowed
    assert not checker.decide(role("R"), Access("sqs:SendMessage", queue)).allowed


# ---------------------------------------------------------------- trust policies


def test_assume_role_needs_the_trust_policy() -> None:
    target = f"arn:aws:iam::{ACCT}:role/Validate"
    assume = Access("sts:AssumeRole", target)
    caller = role("Ops", policy(stmt("Allow", "sts:AssumeRole")))
    assert enforcer().decide(caller, assume).decided_by == "no-resource-allow"
    assert enforcer().decide(ROOT, assume).decided_by == "no-resource-allow"
    # a trust policy naming the account lets root and granted roles in
    trust = policy({"Effect": "Allow", "Principal": {"AWS": ACCT}, "Action": "sts:AssumeRole"})
    assert enforcer({target: trust}).decide(caller, assume).allowed
    assert enforcer({target: trust}).decide(ROOT, assume).allowed
    assert not enforcer({target: trust}).decide(role("Ops"), assume).allowed
    # one naming the caller's role needs no identity grant
    direct = policy(
        {"Effect": "Allow", "Principal": {"AWS": caller.role_arn}, "Action": "sts:AssumeRole"}
    )
    assert enforcer({target: direct}).decide(role("Ops"), assume).allowed


def test_get_caller_identity_is_always_allowed() -> None:
    who = role("R", policy(stmt("Deny", "*")))
    assert enforcer().decide(who, Access("sts:GetCallerIdentity", "*")).allowed


# ---------------------------------------------------------------- global keys


def test_principal_arn_is_the_role_arn_for_a_session() -> None:
    # GIVEN the bus policy shape: a sluice.validate source only from the validate role
    bus = f"arn:aws:events:{REGION}:{ACCT}:event-bus/sluice-dev"
    bus_policy = policy(
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "events:PutEvents",
            "Resource": bus,
            "Condition": {
                "StringEquals": {"events:source": "sluice.validate"},
                "ArnNotEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCT}:role/Validate"},
            },
        }
    )
    grant = policy(stmt("Allow", "events:PutEvents", bus))
    checker = enforcer({bus: bus_policy})
    event = Access("events:PutEvents", bus, {"events:source": "sluice.validate"})
    assert checker.decide(role("Validate", grant), event).allowed
    assert checker.decide(role("Transform", grant), event).decided_by == "resource-deny"
    assert checker.decide(ROOT, event).decided_by == "resource-deny"
    team = Access("events:PutEvents", bus, {"events:source": "acme.orders"})
    assert checker.decide(role("Transform", grant), team).allowed


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("aws:PrincipalAccount", ACCT),
        ("aws:PrincipalType", "AssumedRole"),
        ("aws:userid", "R:session-R"),
        ("aws:RequestedRegion", REGION),
        ("aws:PrincipalIsAWSService", "false"),
        ("aws:ResourceAccount", ACCT),
    ],
)
def test_global_keys_for_a_role_session(key: str, value: str) -> None:
    grant = policy(stmt("Allow", "s3:GetObject", Condition={"StringEquals": {key: value}}))
    assert enforcer().decide(role("R", grant), GET).allowed
    wrong = policy(stmt("Allow", "s3:GetObject", Condition={"StringEquals": {key: "nope"}}))
    assert not enforcer().decide(role("R", wrong), GET).allowed


def test_time_keys_are_current() -> None:
    past = policy(
        stmt(
            "Allow",
            "s3:GetObject",
            Condition={
                "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
                "NumericGreaterThan": {"aws:EpochTime": "1577836800"},
            },
        )
    )
    assert enforcer().decide(role("R", past), GET).allowed
    future = policy(
        stmt(
            "Allow",
            "s3:GetObject",
            Condition={"DateGreaterThan": {"aws:CurrentTime": "2999-01-01T00:00:00Z"}},
        )
    )
    assert not enforcer().decide(role("R", future), GET).allowed


def test_request_keys_cannot_override_the_principal_keys() -> None:
    grant = policy(
        stmt(
            "Allow",
            "s3:GetObject",
            Condition={"StringEquals": {"aws:PrincipalArn": "arn:aws:iam::1:role/Admin"}},
        )
    )
    forged = Access(
        "s3:GetObject", "arn:aws:s3:::b/k", {"aws:PrincipalArn": "arn:aws:iam::1:role/Admin"}
    )
    assert not enforcer().decide(role("R", grant), forged).allowed


# ---------------------------------------------------------------- TLS


def _resolve(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return names[value["Fn::GetAtt"][0]]
        if "Fn::Sub" in value:
            text = value["Fn::Sub"]
            for logical, arn in names.items():
                text = text.replace("${" + logical + ".Arn}", arn)
            return text
        if "Ref" in value:
            return ACCT
        return {k: _resolve(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, names) for v in value]
    return value


def test_platform_tls_only_bucket_policy_denies_insecure_transport_only() -> None:
    # GIVEN the raw bucket's policy from deploy/platform.yaml
    template = load_template(ROOT_DIR / "deploy" / "platform.yaml").template
    raw = template["Resources"]["RawBucketPolicy"]["Properties"]["PolicyDocument"]
    document = _resolve(raw, {"RawBucket": "arn:aws:s3:::raw"})
    checker = enforcer({"arn:aws:s3:::raw": document})
    reader = role("Ingest", policy(stmt("Allow", "s3:GetObject", "arn:aws:s3:::raw/*")))
    get = Access("s3:GetObject", "arn:aws:s3:::raw/orders/a.csv")
    # WHEN a request arrives over plain HTTP THEN the Deny applies, to root too
    insecure = checker.decide(reader, get, secure_transport=False)
    assert (insecure.allowed, insecure.decided_by) == (False, "resource-deny")
    assert not checker.decide(ROOT, get, secure_transport=False).allowed
    # WHEN it arrives as the endpoint's requests do (the TLS front's stand-in) THEN allowed
    assert checker.decide(reader, get).allowed
    assert checker.decide(ROOT, get, secure_transport=True).allowed


# ---------------------------------------------------------------- switch, errors, counters


def test_disabled_enforcer_allows_everything() -> None:
    decision = enforcer(enabled=False).decide(role("R"), GET)
    assert (decision.allowed, decision.decided_by) == (True, "disabled")


def test_check_raises_access_denied_with_details() -> None:
    who = role("R")
    with pytest.raises(AccessDeniedError) as caught:
        enforcer().check(who, GET)
    error = caught.value
    assert (error.principal, error.action, error.resource) == (who, "s3:GetObject", GET.resource)
    assert error.reason.startswith("because no identity-based policy")
    assert str(error) == error.decision.message
    assert enforcer().check(ROOT, GET).allowed


def test_counters_and_describe() -> None:
    checker = enforcer()
    for _ in range(3):
        checker.decide(role("R"), GET)
    checker.decide(role("R"), Access("s3:PutObject", "arn:aws:s3:::b/k"))
    checker.decide(ROOT, GET)
    state = checker.describe()
    assert (state["enabled"], state["decisions"], state["denials"]) == (True, 5, 4)
    assert state["denials_by"][0] == {
        "principal": f"arn:aws:iam::{ACCT}:role/R",
        "action": "s3:GetObject",
        "count": 3,
    }
    last = state["recent_denials"][-1]
    assert (last["action"], last["resource"]) == ("s3:PutObject", "arn:aws:s3:::b/k")
    assert last["time"].endswith("+00:00")


def test_recent_denials_are_bounded() -> None:
    checker = enforcer()
    for index in range(60):
        checker.decide(role("R"), Access("s3:GetObject", f"arn:aws:s3:::b/{index}"))
    recent = checker.describe()["recent_denials"]
    assert len(recent) == 50
    assert recent[0]["resource"] == "arn:aws:s3:::b/10"


def test_invalid_policy_fails_closed_with_the_fault_named() -> None:
    broken = policy(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"StringEqualz": {"k": "v"}},
        }
    )
    decision = enforcer({BUCKET: broken}).decide(ROOT, GET)
    assert (decision.allowed, decision.decided_by) == (False, "invalid-policy")
    assert "StringEqualz" in decision.reason
    bad_identity = role("R", {"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]})
    assert enforcer().decide(bad_identity, GET).decided_by == "invalid-policy"
