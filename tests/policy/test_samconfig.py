"""deploy/samconfig.toml: one environment per stage and stack, each pointing at its own template
and stack, with overrides that exist in the template and name the environment's own stage."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from tools.templates import load_template, template_paths

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
STAGES = ("dev", "staging", "prod")


def _overrides(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split())


def override_problems(config: dict[str, Any], env: str, template: dict[str, Any]) -> list[str]:
    """What is wrong with one samconfig environment for one template.

    Args:
        config: the parsed samconfig.toml.
        env: `<stage>-<stack>`.
        template: the stack's loaded template.

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
        if is_ssm and stage != "dev" and name not in overrides:
            problems.append(f"{env}: {name} would read the dev SSM parameter")
    return problems


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
    assert override_problems(config, env, load_template(path)) == []


def test_samconfig_prod_asks_before_changing(config: dict[str, Any]) -> None:
    for stack in template_paths():
        assert config[f"prod-{stack}"]["deploy"]["parameters"]["confirm_changeset"] is True


def test_samconfig_cross_stage_ssm_reported(config: dict[str, Any]) -> None:
    broken = {
        **config,
        "staging-ingest": {
            "deploy": {"parameters": dict(config["staging-ingest"]["deploy"]["parameters"])}
        },
    }
    params = broken["staging-ingest"]["deploy"]["parameters"]
    params["parameter_overrides"] = params["parameter_overrides"].replace(
        "/sluice/staging/raw-bucket-name", "/sluice/dev/raw-bucket-name"
    )
    problems = override_problems(
        broken, "staging-ingest", load_template(template_paths()["ingest"])
    )
    assert problems == [
        "staging-ingest: RawBucketName=/sluice/dev/raw-bucket-name reads another stage's SSM "
        "parameter"
    ]


def test_samconfig_missing_override_reported(config: dict[str, Any]) -> None:
    params = dict(config["prod-output"]["deploy"]["parameters"])
    params["parameter_overrides"] = " ".join(
        item for item in params["parameter_overrides"].split() if not item.startswith("KmsKeyArn=")
    )
    broken = {**config, "prod-output": {"deploy": {"parameters": params}}}
    problems = override_problems(broken, "prod-output", load_template(template_paths()["output"]))
    assert problems == ["prod-output: KmsKeyArn would read the dev SSM parameter"]


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
