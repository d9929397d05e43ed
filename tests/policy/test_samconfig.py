"""deploy/samconfig.toml: one environment per stage and stack, each pointing at its own template
and stack, overriding the Stage only; the stacks name platform resources by dynamic references
under their own Stage, so no partial override can leave one reading dev's names."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tools.templates import PLATFORM_NAME_REFERENCE, load_template, template_paths

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
STAGES = ("dev", "staging", "prod")


def _overrides(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split())


def override_problems(config: dict[str, Any], env: str, template: dict[str, Any]) -> list[str]:
    """What is wrong with one samconfig environment for one template.

    Args:
        config: the parsed samconfig.toml.
        env: `<stage>-<stack>`.
        template: the stack's template as written (`load_template(..., resolve_names=False)`).

    Returns:
        Violations (empty = consistent).
    """
    stage, stack = env.split("-", 1)
    deploy = config.get(env, {}).get("deploy", {}).get("parameters", {})
    problems = []
    if deploy.get("stack_name") != f"sluice-{stage}-{stack}":
        problems.append(f"{env}: stack_name {deploy.get('stack_name')!r}")
    overrides = _overrides(deploy.get("parameter_overrides", ""))
    parameters = template.get("Parameters", {})
    for name, value in overrides.items():
        if name not in parameters:
            problems.append(f"{env}: override {name} is not a template parameter")
        elif value.startswith("/sluice/") and not value.startswith(f"/sluice/{stage}/"):
            problems.append(f"{env}: {name}={value} reads another stage's SSM parameter")
    if overrides.get("Stage") != stage:
        problems.append(f"{env}: Stage override is not {stage}")
    for name, spec in parameters.items():
        is_ssm = str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value")
        if is_ssm and "Default" not in spec and name not in overrides:
            problems.append(f"{env}: {name} has no value (the deploy fails)")
    return problems


def name_problems(stack: str, template: dict[str, Any], published: set[str]) -> list[str]:
    """Ways a template could read a platform name of another stage than its own.

    Args:
        stack: the stack's name (for messages).
        template: the template as written (`load_template(..., resolve_names=False)`).
        published: the names the platform and orchestration stacks publish under
            `/sluice/${Stage}/`.

    Returns:
        Violations: a parameter whose default names an SSM parameter (a partial override falls
        back to it), a default for Stage where names derive from it, a dynamic reference that
        does not derive from Stage or names nothing published, more dynamic references than
        CloudFormation accepts in one template (60). An SSM-typed parameter without a
        default (the runtime layer, read again at every deploy) is named per environment in
        samconfig.toml (`override_problems`).
    """
    problems = []
    parameters = template.get("Parameters", {})
    for name, spec in parameters.items():
        is_ssm = str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value")
        if is_ssm and "Default" in spec:
            problems.append(f"{stack}: parameter {name} reads a name from SSM by default")
        if "/sluice/" in str(spec.get("Default", "")):
            problems.append(f"{stack}: parameter {name} defaults to {spec['Default']}")
    text = json.dumps(template)
    references = re.findall(r"\{\{resolve:.*?\}\}", text)
    if references and "Default" in parameters.get("Stage", {}):
        problems.append(f"{stack}: Stage has a default, so a deploy without it reads that stage")
    for reference in references:
        found = PLATFORM_NAME_REFERENCE.fullmatch(reference)
        if found is None:
            problems.append(f"{stack}: {reference} does not derive from Stage")
        elif found.group(1) not in published:
            problems.append(f"{stack}: {reference} names nothing the platform publishes")
    if len(references) > MAX_DYNAMIC_REFERENCES:
        problems.append(f"{stack}: {len(references)} dynamic references (CloudFormation: 60)")
    return problems


MAX_DYNAMIC_REFERENCES = 60
"""CloudFormation's limit of dynamic references per template."""


def _published() -> set[str]:
    names = set()
    for stack in ("platform", "orchestration"):
        template = load_template(template_paths()[stack], resolve_names=False)
        for resource in template.get("Resources", {}).values():
            if resource.get("Type") == "AWS::SSM::Parameter":
                name = resource["Properties"]["Name"]
                found = re.fullmatch(r"/sluice/\$\{Stage\}/([a-z0-9-]+)", name.get("Fn::Sub", ""))
                if found:
                    names.add(found.group(1))
    return names


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    with (DEPLOY / "samconfig.toml").open("rb") as handle:
        return tomllib.load(handle)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("stack", list(template_paths()))
def test_samconfig_environment_consistent_with_template(
    stage: str, stack: str, config: dict[str, Any]
) -> None:
    env = f"{stage}-{stack}"
    path = template_paths()[stack]
    build = config[env]["build"]["parameters"]
    assert (DEPLOY / build["template_file"]).resolve() == path.resolve()
    template = load_template(path, resolve_names=False)
    assert override_problems(config, env, template) == []


@pytest.mark.parametrize("stack", [s for s in template_paths() if s != "platform"])
def test_platform_names_derive_from_stage_only(stack: str) -> None:
    # GIVEN a stack that reads the platform's names
    template = load_template(template_paths()[stack], resolve_names=False)
    # THEN every name is a dynamic reference under its own Stage, and nothing defaults to dev
    assert name_problems(stack, template, _published()) == []
    assert PLATFORM_NAME_REFERENCE.search(json.dumps(template))


def test_samconfig_overrides_the_stage_and_the_layer_only(config: dict[str, Any]) -> None:
    # Nothing else to forget, and what there is has no default to fall back to.
    for stage in STAGES:
        for stack in template_paths():
            overrides = config[f"{stage}-{stack}"]["deploy"]["parameters"]["parameter_overrides"]
            layer = {"RuntimeLayerArn": f"/sluice/{stage}/runtime-layer-arn"}
            expected = {"Stage": stage} | ({} if stack == "platform" else layer)
            assert _overrides(overrides) == expected, f"{stage}-{stack}"


def test_samconfig_missing_or_cross_stage_layer_reported(config: dict[str, Any]) -> None:
    template = load_template(template_paths()["transform"], resolve_names=False)
    params = dict(config["prod-transform"]["deploy"]["parameters"])
    params["parameter_overrides"] = "Stage=prod"
    broken = {**config, "prod-transform": {"deploy": {"parameters": params}}}
    assert override_problems(broken, "prod-transform", template) == [
        "prod-transform: RuntimeLayerArn has no value (the deploy fails)"
    ]
    params["parameter_overrides"] = "Stage=prod RuntimeLayerArn=/sluice/dev/runtime-layer-arn"
    assert override_problems(broken, "prod-transform", template) == [
        "prod-transform: RuntimeLayerArn=/sluice/dev/runtime-layer-arn reads another stage's SSM "
        "parameter"
    ]


def test_ssm_parameter_with_dev_default_reported() -> None:
    # GIVEN the old way: an SSM-typed parameter defaulting to dev's name
    template = load_template(template_paths()["output"], resolve_names=False)
    template["Parameters"]["KmsKeyArn"] = {
        "Type": "AWS::SSM::Parameter::Value<String>",
        "Default": "/sluice/dev/kms-key-arn",
    }
    assert name_problems("output", template, _published()) == [
        "output: parameter KmsKeyArn reads a name from SSM by default",
        "output: parameter KmsKeyArn defaults to /sluice/dev/kms-key-arn",
    ]


def test_reference_to_a_fixed_stage_reported() -> None:
    template = load_template(template_paths()["ingest"], resolve_names=False)
    template["Resources"]["Extra"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {"QueueName": {"Fn::Sub": "{{resolve:ssm:/sluice/dev/raw-bucket-name}}"}},
    }
    assert name_problems("ingest", template, _published()) == [
        "ingest: {{resolve:ssm:/sluice/dev/raw-bucket-name}} does not derive from Stage"
    ]


def test_stage_default_and_unpublished_name_reported() -> None:
    template = load_template(template_paths()["validate"], resolve_names=False)
    template["Parameters"]["Stage"]["Default"] = "dev"
    template["Resources"]["Extra"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {"QueueName": {"Fn::Sub": "{{resolve:ssm:/sluice/${Stage}/nowhere}}"}},
    }
    assert name_problems("validate", template, _published()) == [
        "validate: Stage has a default, so a deploy without it reads that stage",
        "validate: {{resolve:ssm:/sluice/${Stage}/nowhere}} names nothing the platform publishes",
    ]


def test_samconfig_unknown_override_reported(config: dict[str, Any]) -> None:
    params = dict(config["prod-output"]["deploy"]["parameters"])
    params["parameter_overrides"] += " KmsKeyArn=/sluice/prod/kms-key-arn"
    broken = {**config, "prod-output": {"deploy": {"parameters": params}}}
    template = load_template(template_paths()["output"], resolve_names=False)
    assert override_problems(broken, "prod-output", template) == [
        "prod-output: override KmsKeyArn is not a template parameter"
    ]


def _names_iam_resources(template: dict[str, Any]) -> bool:
    return any(
        resource.get("Type") == "AWS::IAM::Role" and "RoleName" in resource.get("Properties", {})
        for resource in template.get("Resources", {}).values()
    )


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("stack", list(template_paths()))
def test_samconfig_named_roles_acknowledged(stage: str, stack: str, config: dict[str, Any]) -> None:
    # CloudFormation refuses a stack that names IAM resources without CAPABILITY_NAMED_IAM.
    template = load_template(template_paths()[stack])
    capabilities = config[f"{stage}-{stack}"]["deploy"]["parameters"]["capabilities"]
    wanted = "CAPABILITY_NAMED_IAM" if _names_iam_resources(template) else "CAPABILITY_IAM"
    assert capabilities == [wanted]
