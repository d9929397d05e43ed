"""Policy parsing and statement evaluation, with cases taken from AWS's IAM User Guide pages:
policy evaluation logic, the Action/Resource/Principal elements, the condition operators page
(every operator, `...IfExists`, `Null`, missing keys), multi-value conditions (`ForAllValues:`,
`ForAnyValue:`, OR of values, AND of keys and operators) and policy variables."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from sluice.local.iam.policy import (
    ALLOW,
    DENY,
    Policy,
    PolicyCache,
    PolicyError,
    RequestContext,
    parse_policy,
)
from sluice.local.iam.ports import Principal

ACCT = "123456789012"
OTHER = "210987654321"
ROLE = Principal(
    arn=f"arn:aws:sts::{ACCT}:assumed-role/Output/fn",
    account=ACCT,
    kind="role",
    role_arn=f"arn:aws:iam::{ACCT}:role/Output",
)
ROOT = Principal(arn=f"arn:aws:iam::{ACCT}:root", account=ACCT, kind="root")
EVENTS = Principal(arn="events.amazonaws.com", account=ACCT, kind="service")


def doc(*statements: dict[str, Any], version: str = "2012-10-17") -> dict[str, Any]:
    return {"Version": version, "Statement": list(statements)}


def allow(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def verdict(
    document: dict[str, Any],
    action: str,
    resource: str = "*",
    keys: dict[str, Any] | None = None,
    principal: Principal | None = None,
) -> str | None:
    policy = Policy.parse(document, resource_policy=principal is not None)
    return policy.evaluate(RequestContext(action, resource, keys or {}), principal).effect


def cond(operator: str, key: str, values: Any) -> dict[str, Any]:
    return allow(Condition={operator: {key: values}})


def holds(operator: str, key: str, values: Any, keys: dict[str, Any]) -> bool:
    return verdict(doc(cond(operator, key, values)), "s3:GetObject", "*", keys) == ALLOW


# ---------------------------------------------------------------- evaluation logic


def test_explicit_deny_wins_over_allow_in_same_policy() -> None:
    policy = doc(allow("s3:*"), {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"})
    assert verdict(policy, "s3:GetObject") == DENY
    assert verdict(policy, "s3:PutObject") == ALLOW


def test_nothing_applicable_is_no_verdict_implicit_deny() -> None:
    assert verdict(doc(allow("sqs:SendMessage")), "s3:GetObject") is None


def test_single_statement_object_is_accepted() -> None:
    assert verdict({"Version": "2012-10-17", "Statement": allow("s3:GetObject")}, "s3:GetObject")


# ---------------------------------------------------------------- Action / NotAction


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("s3:GetObject", "s3:getobject", True),  # action names are case-insensitive
        ("S3:GETOBJECT", "s3:GetObject", True),
        ("s3:Get*", "s3:GetObjectVersion", True),
        ("s3:Get*", "s3:PutObject", False),
        ("s3:?etObject", "s3:GetObject", True),
        ("s3:?etObject", "s3:GGetObject", False),
        ("*", "dynamodb:PutItem", True),
        ("s3:*", "s3express:CreateSession", False),
    ],
)
def test_action_wildcards_case_insensitive(pattern: str, action: str, expected: bool) -> None:
    assert (verdict(doc(allow(pattern)), action) == ALLOW) is expected


def test_not_action_allows_everything_but_listed() -> None:
    policy = doc({"Effect": "Allow", "NotAction": ["iam:*", "sts:AssumeRole"], "Resource": "*"})
    assert verdict(policy, "s3:GetObject") == ALLOW
    assert verdict(policy, "iam:CreateRole") is None
    assert verdict(policy, "sts:AssumeRole") is None


def test_deny_with_not_action_denies_everything_else() -> None:
    policy = doc(allow(), {"Effect": "Deny", "NotAction": "s3:GetObject", "Resource": "*"})
    assert verdict(policy, "s3:GetObject") == ALLOW
    assert verdict(policy, "s3:PutObject") == DENY


# ---------------------------------------------------------------- Resource / NotResource


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b/c.csv", True),
        ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket", False),
        ("arn:aws:s3:::bucket/*", "arn:aws:s3:::Bucket/a", False),  # case-sensitive
        ("arn:aws:s3:::bucket/processed/_manifests/*", "arn:aws:s3:::bucket/processed/x", False),
        ("arn:aws:s3:::bucket/?.csv", "arn:aws:s3:::bucket/a.csv", True),
        ("arn:aws:s3:::bucket/?.csv", "arn:aws:s3:::bucket/ab.csv", False),
        ("arn:aws:sqs:*:123456789012:q", "arn:aws:sqs:us-east-1:123456789012:q", True),
        # a wildcard stays inside its ARN segment, except the last one
        ("arn:aws:sqs:*:q", "arn:aws:sqs:us-east-1:123456789012:q", False),
        ("arn:aws:dynamodb:*:*:table/T*", "arn:aws:dynamodb:r:1:table/T/index/GSI", True),
        (
            "arn:aws:logs:r:1:log-group:/aws/lambda/f:*",
            "arn:aws:logs:r:1:log-group:/aws/lambda/f:log-stream:s",
            True,
        ),
        ("*", "arn:aws:kms:r:1:key/abc", True),
        ("*", "*", True),
        ("arn:aws:s3:::bucket", "*", False),
    ],
)
def test_resource_wildcards_case_sensitive(pattern: str, resource: str, expected: bool) -> None:
    assert (verdict(doc(allow("s3:GetObject", pattern)), "s3:GetObject", resource) == ALLOW) is (
        expected
    )


def test_not_resource_matches_everything_but_listed() -> None:
    policy = doc(
        {"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"},
    )
    assert verdict(policy, "s3:GetObject", "arn:aws:s3:::open/k") == ALLOW
    assert verdict(policy, "s3:GetObject", "arn:aws:s3:::secret/k") is None


# ---------------------------------------------------------------- Principal / NotPrincipal


def resource_doc(principal: Any, effect: str = "Allow", key: str = "Principal") -> dict[str, Any]:
    return doc({"Effect": effect, key: principal, "Action": "sqs:SendMessage", "Resource": "*"})


def test_principal_star_and_aws_star_name_everyone_services_included() -> None:
    for spec in ("*", {"AWS": "*"}):
        for who in (ROLE, ROOT, EVENTS):
            assert verdict(resource_doc(spec), "sqs:SendMessage", principal=who) == ALLOW


def test_principal_role_arn_and_session_arn_name_the_session() -> None:
    assert verdict(resource_doc({"AWS": ROLE.role_arn}), "sqs:SendMessage", principal=ROLE)
    assert verdict(resource_doc({"AWS": [ROLE.arn]}), "sqs:SendMessage", principal=ROLE)
    other = f"arn:aws:iam::{ACCT}:role/Validate"
    assert verdict(resource_doc({"AWS": other}), "sqs:SendMessage", principal=ROLE) is None


def test_account_principal_delegates_to_the_account() -> None:
    # GIVEN an Allow naming the account, as an id or as its root ARN
    for spec in ({"AWS": ACCT}, {"AWS": f"arn:aws:iam::{ACCT}:root"}):
        policy = Policy.parse(resource_doc(spec), resource_policy=True)
        ctx = RequestContext("sqs:SendMessage", "*", {})
        # THEN root is named directly, a role only through its account (a delegation)
        assert policy.evaluate(ctx, ROOT).via_account is False
        assert policy.evaluate(ctx, ROLE).via_account is True
        assert policy.evaluate(ctx, ROLE).effect == ALLOW
        other = Principal(f"arn:aws:iam::{OTHER}:root", OTHER, "root")
        assert policy.evaluate(ctx, other).effect is None


def test_deny_naming_the_account_applies_to_its_roles() -> None:
    assert verdict(resource_doc({"AWS": ACCT}, "Deny"), "sqs:SendMessage", principal=ROLE) == DENY


def test_service_principal_named_by_service_only() -> None:
    spec = {"Service": "events.amazonaws.com"}
    assert verdict(resource_doc(spec), "sqs:SendMessage", principal=EVENTS) == ALLOW
    assert verdict(resource_doc(spec), "sqs:SendMessage", principal=ROLE) is None
    assert verdict(resource_doc({"AWS": ACCT}), "sqs:SendMessage", principal=EVENTS) is None


def test_not_principal_deny_exempts_listed_session_with_its_account() -> None:
    exempt = {"AWS": [ROLE.arn, f"arn:aws:iam::{ACCT}:root"]}
    policy = resource_doc(exempt, "Deny", "NotPrincipal")
    assert verdict(policy, "sqs:SendMessage", principal=ROLE) is None
    other = Principal(
        f"arn:aws:sts::{ACCT}:assumed-role/X/s", ACCT, "role", f"arn:aws:iam::{ACCT}:role/X"
    )
    assert verdict(policy, "sqs:SendMessage", principal=other) == DENY
    # the session alone, without its account, does not exempt it
    alone = resource_doc({"AWS": [ROLE.arn]}, "Deny", "NotPrincipal")
    assert verdict(alone, "sqs:SendMessage", principal=ROLE) == DENY


# ---------------------------------------------------------------- condition operators


@pytest.mark.parametrize(
    ("operator", "values", "request_value", "expected"),
    [
        ("StringEquals", "abc", "abc", True),
        ("StringEquals", "abc", "ABC", False),
        ("StringNotEquals", "abc", "abd", True),
        ("StringNotEquals", "abc", "abc", False),
        ("StringEqualsIgnoreCase", "ABC", "abc", True),
        ("StringNotEqualsIgnoreCase", "ABC", "abc", False),
        ("StringNotEqualsIgnoreCase", "ABC", "abd", True),
        ("StringLike", "acme.*", "acme.orders", True),
        ("StringLike", "acme.*", "sluice.validate", False),
        ("StringLike", "a?c", "abc", True),
        ("StringLike", "a?c", "ABC", False),
        ("StringNotLike", "sluice.*", "acme.orders", True),
        ("StringNotLike", "sluice.*", "sluice.ingest", False),
        ("NumericEquals", "10", "10.0", True),
        ("NumericNotEquals", "10", "11", True),
        ("NumericLessThan", "10", "9", True),
        ("NumericLessThan", "10", "10", False),
        ("NumericLessThanEquals", "10", "10", True),
        ("NumericGreaterThan", "10", "11", True),
        ("NumericGreaterThan", "10", "abc", False),
        ("NumericGreaterThanEquals", "10", "10", True),
        ("DateEquals", "2026-01-01T00:00:00Z", "1767225600", True),
        ("DateNotEquals", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", True),
        ("DateLessThan", "2026-01-01T00:00:00Z", "2025-12-31T23:59:59Z", True),
        ("DateLessThanEquals", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00+00:00", True),
        ("DateGreaterThan", "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z", True),
        ("DateGreaterThan", "2026-01-01T00:00:00Z", "not a date", False),
        ("DateGreaterThanEquals", "1767225600", "2026-01-01T00:00:00Z", True),
        ("Bool", "true", "true", True),
        ("Bool", "false", "true", False),
        ("Bool", "FALSE", "false", True),
        ("BinaryEquals", base64.b64encode(b"\x00\x01").decode(), "AAE=", True),
        ("BinaryEquals", base64.b64encode(b"\x00\x02").decode(), "AAE=", False),
        ("IpAddress", "203.0.113.0/24", "203.0.113.7", True),
        ("IpAddress", "203.0.113.0/24", "198.51.100.1", False),
        ("IpAddress", "2001:db8::/32", "2001:db8::1", True),
        ("NotIpAddress", "203.0.113.0/24", "198.51.100.1", True),
        ("NotIpAddress", "203.0.113.0/24", "203.0.113.7", False),
        (
            "ArnEquals",
            "arn:aws:events:*:123456789012:rule/*",
            "arn:aws:events:us-east-1:123456789012:rule/r",
            True,
        ),
        (
            "ArnLike",
            "arn:aws:events:*:123456789012:rule/*",
            "arn:aws:events:us-east-1:123456789012:rule/r",
            True,
        ),
        (
            "ArnLike",
            "arn:aws:events:*:123456789012:rule/*",
            "arn:aws:events:us-east-1:999999999999:rule/r",
            False,
        ),
        ("ArnLike", "arn:aws:iam::*:role/x", "arn:aws:iam::1:2:role/x", False),
        ("ArnNotEquals", "arn:aws:sns:r:1:t", "arn:aws:sns:r:1:u", True),
        ("ArnNotLike", "arn:aws:sns:*:1:t*", "arn:aws:sns:r:1:topic", False),
        ("ArnNotLike", "arn:aws:sns:*:1:t*", "arn:aws:sns:r:1:other", True),
    ],
)
def test_every_condition_operator(
    operator: str, values: str, request_value: str, expected: bool
) -> None:
    assert holds(operator, "k:key", values, {"k:key": request_value}) is expected


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        # a key absent from the request: positive operators are false ...
        ("StringEquals", False),
        ("StringLike", False),
        ("NumericLessThan", False),
        ("DateGreaterThan", False),
        ("Bool", False),
        ("IpAddress", False),
        ("ArnLike", False),
        ("BinaryEquals", False),
        # ... negated operators are true
        ("StringNotEquals", True),
        ("StringNotEqualsIgnoreCase", True),
        ("StringNotLike", True),
        ("NumericNotEquals", True),
        ("DateNotEquals", True),
        ("NotIpAddress", True),
        ("ArnNotEquals", True),
        ("ArnNotLike", True),
        # ... and ...IfExists is true whatever the operator
        ("StringEqualsIfExists", True),
        ("ArnLikeIfExists", True),
        ("NumericLessThanIfExists", True),
    ],
)
def test_missing_key_semantics(operator: str, expected: bool) -> None:
    value = {
        "Numeric": "1",
        "Date": "2026-01-01T00:00:00Z",
        "Bool": "true",
        "IpAd": "10.0.0.0/8",
        "NotI": "10.0.0.0/8",
        "Arn": "arn:aws:s3:::b",
        "Bina": "AAE=",
    }
    sample = next((v for prefix, v in value.items() if operator.startswith(prefix)), "x")
    assert holds(operator, "k:absent", sample, {"k:other": "x"}) is expected


def test_if_exists_applies_the_operator_when_present() -> None:
    assert holds("StringEqualsIfExists", "k:key", "a", {"k:key": "a"})
    assert not holds("StringEqualsIfExists", "k:key", "a", {"k:key": "b"})
    assert not holds("StringNotEqualsIfExists", "k:key", "a", {"k:key": "a"})


def test_null_tests_presence() -> None:
    assert holds("Null", "k:key", "true", {})
    assert not holds("Null", "k:key", "true", {"k:key": "v"})
    assert holds("Null", "k:key", "false", {"k:key": "v"})
    assert not holds("Null", "k:key", "false", {})
    assert holds("Null", "k:key", ["true", "false"], {})


def test_several_values_of_one_key_are_or() -> None:
    assert holds("StringEquals", "k:key", ["a", "b"], {"k:key": "b"})
    assert not holds("StringEquals", "k:key", ["a", "b"], {"k:key": "c"})


def test_negated_operator_with_several_values_is_nor() -> None:
    assert not holds("StringNotEquals", "k:key", ["a", "b"], {"k:key": "b"})
    assert holds("StringNotEquals", "k:key", ["a", "b"], {"k:key": "c"})


def test_several_keys_and_operators_are_and() -> None:
    statement = allow(
        Condition={
            "StringEquals": {"k:a": "1", "k:b": "2"},
            "Bool": {"aws:SecureTransport": "true"},
        }
    )
    full = {"k:a": "1", "k:b": "2", "aws:SecureTransport": "true"}
    assert verdict(doc(statement), "s3:GetObject", "*", full) == ALLOW
    for dropped in full:
        partial = {k: v for k, v in full.items() if k != dropped}
        assert verdict(doc(statement), "s3:GetObject", "*", partial) is None


def test_condition_key_names_are_case_insensitive_values_are_not() -> None:
    assert holds("StringEquals", "AWS:SourceAccount", ACCT, {"aws:sourceaccount": ACCT})
    assert not holds("StringEquals", "aws:SourceAccount", "abc", {"aws:SourceAccount": "ABC"})


def test_yaml_booleans_and_numbers_are_condition_strings() -> None:
    assert holds("Bool", "aws:SecureTransport", False, {"aws:SecureTransport": "false"})
    assert holds("NumericLessThanEquals", "s3:max-keys", 10, {"s3:max-keys": "5"})


# ---------------------------------------------------------------- set operators


def test_for_all_values_every_request_value_must_match() -> None:
    op = "ForAllValues:StringEquals"
    assert holds(op, "aws:TagKeys", ["a", "b"], {"aws:TagKeys": ["a"]})
    assert holds(op, "aws:TagKeys", ["a", "b"], {"aws:TagKeys": ["a", "b"]})
    assert not holds(op, "aws:TagKeys", ["a", "b"], {"aws:TagKeys": ["a", "c"]})


def test_for_all_values_is_true_for_absent_or_empty_key() -> None:
    assert holds("ForAllValues:StringEquals", "aws:TagKeys", "a", {})
    assert holds("ForAllValues:StringEquals", "aws:TagKeys", "a", {"aws:TagKeys": []})


def test_for_any_value_one_request_value_must_match() -> None:
    op = "ForAnyValue:StringLike"
    assert holds(op, "aws:TagKeys", "env*", {"aws:TagKeys": ["x", "env-a"]})
    assert not holds(op, "aws:TagKeys", "env*", {"aws:TagKeys": ["x", "y"]})


def test_for_any_value_is_false_for_absent_or_empty_key() -> None:
    assert not holds("ForAnyValue:StringEquals", "aws:TagKeys", "a", {})
    assert not holds("ForAnyValue:StringEquals", "aws:TagKeys", "a", {"aws:TagKeys": []})
    assert holds("ForAnyValue:StringEqualsIfExists", "aws:TagKeys", "a", {})


def test_negated_set_operators() -> None:
    assert holds("ForAllValues:StringNotEquals", "k:s", ["a"], {"k:s": ["b", "c"]})
    assert not holds("ForAllValues:StringNotEquals", "k:s", ["a"], {"k:s": ["a", "c"]})
    assert holds("ForAnyValue:StringNotEquals", "k:s", ["a"], {"k:s": ["a", "c"]})
    assert not holds("ForAnyValue:StringNotEquals", "k:s", ["a"], {"k:s": ["a"]})


# ---------------------------------------------------------------- policy variables


def test_policy_variable_in_resource_is_substituted_literally() -> None:
    policy = doc(allow("s3:GetObject", "arn:aws:s3:::home/${aws:userid}/*"))
    ctx = {"aws:userid": "AROA:fn"}
    assert verdict(policy, "s3:GetObject", "arn:aws:s3:::home/AROA:fn/x", ctx) == ALLOW
    assert verdict(policy, "s3:GetObject", "arn:aws:s3:::home/other/x", ctx) is None
    # a value holding a wildcard is literal text
    star = {"aws:userid": "*"}
    assert verdict(policy, "s3:GetObject", "arn:aws:s3:::home/other/x", star) is None


def test_policy_variable_in_condition_value() -> None:
    statement = allow(Condition={"StringEquals": {"k:owner": "${aws:PrincipalArn}"}})
    keys = {"aws:PrincipalArn": ROLE.role_arn, "k:owner": ROLE.role_arn}
    assert verdict(doc(statement), "s3:GetObject", "*", keys) == ALLOW
    keys["k:owner"] = "someone else"
    assert verdict(doc(statement), "s3:GetObject", "*", keys) is None


def test_policy_variable_default_and_missing() -> None:
    policy = doc(allow("s3:GetObject", "arn:aws:s3:::b/${k:team, 'shared'}/*"))
    assert verdict(policy, "s3:GetObject", "arn:aws:s3:::b/shared/x", {}) == ALLOW
    missing = doc(allow("s3:GetObject", "arn:aws:s3:::b/${k:team}/*"))
    assert verdict(missing, "s3:GetObject", "arn:aws:s3:::b/${k:team}/x", {}) is None


def test_policy_variable_literal_escapes() -> None:
    policy = doc(allow("s3:GetObject", "arn:aws:s3:::b/${*}"))
    assert verdict(policy, "s3:GetObject", "arn:aws:s3:::b/*", {}) == ALLOW
    assert verdict(policy, "s3:GetObject", "arn:aws:s3:::b/x", {}) is None


def test_old_version_reads_variables_literally() -> None:
    policy = doc(allow("s3:GetObject", "arn:aws:s3:::b/${aws:userid}"), version="2008-10-17")
    assert verdict(policy, "s3:GetObject", "arn:aws:s3:::b/${aws:userid}", {"aws:userid": "u"})
    assert verdict(policy, "s3:GetObject", "arn:aws:s3:::b/u", {"aws:userid": "u"}) is None


# ---------------------------------------------------------------- invalid documents


@pytest.mark.parametrize(
    "bad",
    [
        {"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Action": "*", "NotAction": "s3:*", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Action": "GetObject", "Resource": "*"}]},
        {"Statement": [allow(Condition={"StringEqualz": {"k": "v"}})]},
        {"Statement": [allow(Condition={"NumericLessThan": {"k": "ten"}})]},
        {"Statement": [allow(Condition={"DateLessThan": {"k": "yesterday"}})]},
        {"Statement": [allow(Condition={"IpAddress": {"k": "300.1.1.1/8"}})]},
        {"Statement": [allow(Condition={"Null": {"k": "maybe"}})]},
        {"Statement": [allow(Condition={"ForSomeValues:StringEquals": {"k": "v"}})]},
        {"Statement": [allow(Principal="*")]},
        {"Statement": [{"Effect": "Allow", "Action": "*"}]},
        {"Version": "2012-10-17"},
        ["not", "an", "object"],
    ],
)
def test_invalid_identity_policy_raises(bad: Any) -> None:
    with pytest.raises(PolicyError):
        Policy.parse(bad)


def test_resource_statement_without_principal_raises() -> None:
    with pytest.raises(PolicyError, match="Principal"):
        Policy.parse(doc(allow()), resource_policy=True)


# ---------------------------------------------------------------- cache


def test_parse_policy_caches_per_document_object() -> None:
    document = doc(allow("s3:GetObject"))
    first = parse_policy(document)
    assert parse_policy(document) is first
    assert parse_policy(doc(allow("s3:GetObject"))) is not first


def test_policy_cache_is_bounded() -> None:
    cache = PolicyCache(capacity=2)
    documents = [doc(allow(f"s3:A{i}")) for i in range(3)]
    parsed = [cache.get(d) for d in documents]
    assert cache.get(documents[2]) is parsed[2]
    assert cache.get(documents[0]) is not parsed[0]  # evicted, parsed again
