"""Template loading, SAM translation and intrinsic resolution (no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sluice.local.errors import ProvisioningError
from sluice.local.template import (
    Outputs,
    Resolver,
    Stack,
    dependency_order,
    load_template,
    localize_code,
    resolve_dynamic_references,
    resolve_parameters,
    translate,
)

FIXTURES = Path(__file__).resolve().parents[2] / "integration" / "local" / "fixtures"

TEMPLATE = {
    "Parameters": {"Stage": {"Type": "String", "Default": "dev"}},
    "Conditions": {
        "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
        "Both": {"Fn::And": [{"Condition": "NotProd"}, {"Fn::Equals": ["a", "a"]}]},
    },
    "Mappings": {"Sizes": {"dev": {"Memory": 256}}},
    "Resources": {},
}


def _resolver(**outputs: Outputs) -> Resolver:
    return Resolver("stk", TEMPLATE, {"Stage": "dev", "Names": ["a", "b"]}, outputs)


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ({"Ref": "Stage"}, "dev"),
        ({"Ref": "AWS::Region"}, "us-east-1"),
        ({"Fn::Sub": "q-${Stage}-${AWS::AccountId}"}, "q-dev-123456789012"),
        ({"Fn::Sub": ["${X}-${Stage}", {"X": "x"}]}, "x-dev"),
        ({"Fn::Sub": "${!Literal}"}, "${Literal}"),
        ({"Fn::Sub": "${Queue.Arn}"}, "arn:q"),
        ({"Fn::GetAtt": ["Queue", "Arn"]}, "arn:q"),
        ({"Fn::GetAtt": "Queue.QueueName"}, "q"),
        ({"Ref": "Queue"}, "https://q"),
        ({"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]}, "a-dev"),
        ({"Fn::Select": [1, {"Ref": "Names"}]}, "b"),
        ({"Fn::Split": [",", "x,y"]}, ["x", "y"]),
        ({"Fn::If": ["IsProd", "big", "small"]}, "small"),
        ({"Fn::If": ["Both", "yes", "no"]}, "yes"),
        ({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]}, 256),
        ({"Fn::Base64": "hi"}, "aGk="),
        ({"Fn::ToJsonString": {"a": 1}}, '{"a":1}'),
        ({"k": {"Ref": "AWS::NoValue"}, "j": 1}, {"j": 1}),
        ([1, {"Ref": "AWS::NoValue"}, 2], [1, 2]),
        ({"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]}, None),
    ],
)
def test_resolver_resolves_intrinsics(fragment: object, expected: object) -> None:
    resolver = _resolver(Queue=Outputs("https://q", {"Arn": "arn:q", "QueueName": "q"}))
    assert resolver.resolve(fragment) == expected


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ({"Fn::ImportValue": "x"}, "Fn::ImportValue is not supported"),
        ({"Ref": "Missing"}, "Ref Missing"),
        ({"Fn::GetAtt": ["Queue", "Nope"]}, "not emulated locally"),
        ({"Fn::GetAtt": ["Ghost", "Arn"]}, "not provisioned"),
        ({"Fn::If": ["Undefined", 1, 2]}, "condition Undefined"),
    ],
)
def test_resolver_rejects_unsupported_or_unknown_names_resource(
    fragment: object, message: str
) -> None:
    resolver = _resolver(Queue=Outputs("u", {"Arn": "a"}))
    with pytest.raises(ProvisioningError, match=message) as info:
        resolver.resolve(fragment, "MyRes")
    assert "stk/MyRes" in str(info.value)


def test_dependency_order_puts_references_first_and_keeps_template_order() -> None:
    resources: dict[str, dict[str, Any]] = {
        "Rule": {"Properties": {"Targets": [{"Arn": {"Fn::GetAtt": ["Queue", "Arn"]}}]}},
        "Queue": {"Properties": {"RedrivePolicy": {"deadLetterTargetArn": {"Ref": "Dlq"}}}},
        "Dlq": {"Properties": {}},
        "Param": {"Properties": {"Value": {"Fn::Sub": "${Rule}"}}, "DependsOn": "Other"},
        "Other": {"Properties": {}},
    }
    assert dependency_order(resources) == ["Dlq", "Queue", "Rule", "Other", "Param"]


def test_dependency_order_cycle_raises_naming_resources() -> None:
    resources = {"A": {"Properties": {"x": {"Ref": "B"}}}, "B": {"Properties": {"y": {"Ref": "A"}}}}
    with pytest.raises(ProvisioningError, match="cycle: A -> B -> A"):
        dependency_order(resources)


def _no_ssm(name: str) -> str:
    raise KeyError(name)


def _stack(parameters: dict[str, object]) -> Stack:
    return Stack("s", Path("t.yaml"), {"Parameters": parameters, "Resources": {}})


def test_resolve_parameters_reads_ssm_typed_and_splits_lists() -> None:
    stack = _stack(
        {
            "Bucket": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/sluice/dev/b"},
            "Ids": {"Type": "CommaDelimitedList", "Default": "a, b"},
            "Size": {"Type": "Number", "Default": 7},
        }
    )
    values = resolve_parameters(stack, {}, {"/sluice/dev/b": "bucket-1"}.__getitem__)
    assert values == {"Bucket": "bucket-1", "Ids": ["a", "b"], "Size": "7"}


def test_resolve_parameters_missing_ssm_names_parameter() -> None:
    stack = _stack({"Bucket": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/x"}})
    with pytest.raises(ProvisioningError, match="SSM parameter /x does not exist"):
        resolve_parameters(stack, {}, _no_ssm)


def test_resolve_parameters_outside_allowed_values_fails() -> None:
    stack = _stack({"Stage": {"Type": "String", "AllowedValues": ["dev", "prod"]}})
    with pytest.raises(ProvisioningError, match="AllowedValues"):
        resolve_parameters(stack, {"Stage": "local"}, _no_ssm)


def test_localize_code_rejects_missing_folder(tmp_path: Path) -> None:
    stack = Stack(
        "s",
        tmp_path / "t.yaml",
        {
            "Resources": {
                "Fn": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "nope/"}}
            }
        },
    )
    with pytest.raises(ProvisioningError, match="s/Fn property CodeUri"):
        localize_code(stack)


def test_localize_code_rejects_s3_code(tmp_path: Path) -> None:
    stack = Stack(
        "s",
        tmp_path / "t.yaml",
        {
            "Resources": {
                "Fn": {
                    "Type": "AWS::Serverless::Function",
                    "Properties": {"CodeUri": "s3://bucket/code.zip"},
                }
            }
        },
    )
    with pytest.raises(ProvisioningError, match="S3 location"):
        localize_code(stack)


def test_translate_fixture_turns_sam_events_into_cloudformation() -> None:
    # GIVEN the fixture service template with SSM-typed parameters
    stack = load_template(FIXTURES / "service.yaml", "svc")
    ssm = {
        "/sluice/test/raw-bucket": "raw",
        "/sluice/test/event-bus-name": "bus",
        "/sluice/test/ledger-table": "ledger",
    }
    params = resolve_parameters(stack, {"Stage": "test"}, ssm.__getitem__)
    localize_code(stack)
    # WHEN translated
    resources = translate(stack, params)["Resources"]
    # THEN the SQS event is an event source mapping and the schedule a rule, code stays local
    esm = resources["WorkerFunctionQueue"]
    assert esm["Type"] == "AWS::Lambda::EventSourceMapping"
    assert esm["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert resources["TickFunctionEvery"]["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    code_key = resources["WorkerFunction"]["Properties"]["Code"]["S3Key"]
    assert stack.code[code_key] == FIXTURES / "fn"
    flow = resources["Flow"]["Properties"]
    definition = Resolver("svc", {}, {}, {}).resolve(flow["DefinitionString"])
    assert json.loads(definition)["StartAt"] == "Tick"
    assert flow["DefinitionSubstitutions"]["TickArn"] == {"Fn::GetAtt": ["TickFunction", "Arn"]}


async def _platform_ssm(name: str) -> str:
    published = {
        "/sluice/staging/raw-bucket-name": "sluice-staging-raw",
        "/sluice/staging/kms-key-arn": "arn:aws:kms:us-east-1:123456789012:key/k",
    }
    if name not in published:
        raise KeyError(name)
    return published[name]


async def test_dynamic_references_resolved_inside_strings_lists_and_maps() -> None:
    props = {
        "Resource": "arn:aws:s3:::{{resolve:ssm:/sluice/staging/raw-bucket-name}}/*",
        "Keys": ["{{resolve:ssm:/sluice/staging/kms-key-arn:3}}", 7],
        "Plain": "no reference",
    }

    resolved = await resolve_dynamic_references(props, _platform_ssm, stack="s", resource="R")

    assert resolved == {
        "Resource": "arn:aws:s3:::sluice-staging-raw/*",
        "Keys": ["arn:aws:kms:us-east-1:123456789012:key/k", 7],
        "Plain": "no reference",
    }


async def test_dynamic_reference_to_a_missing_name_fails_the_resource() -> None:
    # A stage whose platform is not provisioned: the deploy fails, it never reads another name.
    props = {"Name": "{{resolve:ssm:/sluice/prod/raw-bucket-name}}"}

    with pytest.raises(ProvisioningError, match=r"/sluice/prod/raw-bucket-name does not exist"):
        await resolve_dynamic_references(props, _platform_ssm, stack="s", resource="R")


async def test_dynamic_reference_to_secrets_refused() -> None:
    props = {"Password": "{{resolve:secretsmanager:db:SecretString:password}}"}

    with pytest.raises(ProvisioningError, match="only ssm"):
        await resolve_dynamic_references(props, _platform_ssm, stack="s", resource="R")
