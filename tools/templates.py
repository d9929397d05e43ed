"""Offline helpers over the SAM templates in deploy/: load them, translate them to plain
CloudFormation with aws-sam-translator (as `sam deploy` would after `sam package`), resolve the
SSM-typed parameters to the values the platform stack publishes, and render the ASL files with
their DefinitionSubstitutions.

Used by `make check-templates` (checkov runs on the translated templates, statelint on the
rendered ASL) and by tests/policy. Nothing here talks to AWS.

    python -m tools.templates translate --out build/translated
    python -m tools.templates render-asl --out build/asl
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SERVICES = ("ingest", "validate", "transform", "output")
FAKE_ACCOUNT = "123456789012"
FAKE_REGION = "us-east-1"
FAKE_PARTITION = "aws"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def template_paths() -> dict[str, Path]:
    """Every deployable template, by short name (`platform`, `ingest`, …, `orchestration`).

    Returns:
        An ordered mapping in deploy order.
    """
    paths = {"platform": DEPLOY / "platform.yaml"}
    paths.update({svc: DEPLOY / "services" / f"{svc}.yaml" for svc in SERVICES})
    paths["orchestration"] = DEPLOY / "orchestration.yaml"
    return paths


class _CfnLoader(yaml.SafeLoader):
    """A SafeLoader that understands the CloudFormation short-form tags (`!Ref`, `!Sub`, …)."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        scalar = loader.construct_scalar(node)
        value = scalar.split(".", 1) if suffix == "GetAtt" else scalar
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path, *, resolve_names: bool = True) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template into the long (JSON) form.

    Args:
        path: the template file.
        resolve_names: replace the platform names' dynamic references as CloudFormation does
            at deploy time, for stage `FAKE_STAGE` (see `resolve_platform_names`); False keeps
            the template as written.

    Returns:
        The template as a dict; short-form tags become `{"Fn::Sub": …}` etc.

    Raises:
        yaml.YAMLError: the file is not valid YAML.
        KeyError: a dynamic reference to a name the platform does not publish.
    """
    loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a template (top level is not a mapping)")
    resolved: dict[str, Any] = resolve_platform_names(loaded) if resolve_names else loaded
    return resolved


PLATFORM_NAME_REFERENCE = re.compile(r"\{\{resolve:ssm:/sluice/\$\{Stage\}/([a-z0-9-]+)\}\}")
"""How a service or orchestration template names a platform resource: a CloudFormation dynamic
reference to the SSM parameter the platform of the stack's own Stage publishes."""
FAKE_STAGE = "dev"


def resolve_platform_names(node: Any, stage: str = FAKE_STAGE) -> Any:
    """`node` with every `{{resolve:ssm:/sluice/${Stage}/KEY}}` replaced by the value the
    platform of `stage` publishes (`ssm_value`), as CloudFormation resolves it at deploy time; a
    `Fn::Sub` left without variables becomes its string. Static analysers then see real names.

    Raises:
        KeyError: a name the platform does not publish.
    """
    if isinstance(node, list):
        return [resolve_platform_names(item, stage) for item in node]
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            text = PLATFORM_NAME_REFERENCE.sub(
                lambda m: ssm_value(f"/sluice/{stage}/{m.group(1)}"), node["Fn::Sub"]
            )
            return text if "${" not in text else {"Fn::Sub": text}
        return {key: resolve_platform_names(value, stage) for key, value in node.items()}
    return node


def ssm_value(ssm_name: str) -> str:
    """The value the platform stack publishes under an SSM name, for a fake account/region.

    Args:
        ssm_name: e.g. `/sluice/dev/raw-bucket-name`.

    Returns:
        A realistic value (bucket name, ARN, table name …).

    Raises:
        KeyError: the name is not one the platform publishes.
    """
    match = re.fullmatch(r"/sluice/(dev|staging|prod)/([a-z0-9-]+)", ssm_name)
    if match is None:
        raise KeyError(ssm_name)
    stage, key = match.groups()
    arn = f"arn:{FAKE_PARTITION}"
    acct_region = f"{FAKE_ACCOUNT}-{FAKE_REGION}"
    values = {
        "raw-bucket-name": f"sluice-{stage}-raw-{acct_region}",
        "work-bucket-name": f"sluice-{stage}-work-{acct_region}",
        "processed-bucket-name": f"sluice-{stage}-processed-{acct_region}",
        "error-bucket-name": f"sluice-{stage}-error-{acct_region}",
        "event-bus-name": f"sluice-{stage}",
        "event-bus-arn": f"{arn}:events:{FAKE_REGION}:{FAKE_ACCOUNT}:event-bus/sluice-{stage}",
        "ledger-table-name": f"sluice-{stage}-ledger",
        "ledger-table-arn": (
            f"{arn}:dynamodb:{FAKE_REGION}:{FAKE_ACCOUNT}:table/sluice-{stage}-ledger"
        ),
        "kms-key-arn": (
            f"{arn}:kms:{FAKE_REGION}:{FAKE_ACCOUNT}:key/0a1b2c3d-0000-4000-8000-000000000000"
        ),
        "runtime-layer-arn": (
            f"{arn}:lambda:{FAKE_REGION}:{FAKE_ACCOUNT}:layer:sluice-{stage}-runtime:1"
        ),
        "schema-registry-name": f"sluice-{stage}",
        "batch-state-machine-arn": (
            f"{arn}:states:{FAKE_REGION}:{FAKE_ACCOUNT}:stateMachine:sluice-{stage}-batch"
        ),
    }
    return values[key]


def parameter_values(template: dict[str, Any]) -> dict[str, Any]:
    """Deploy-time parameter values: defaults, with SSM-typed parameters resolved.

    Args:
        template: a loaded template.

    Returns:
        Parameter name -> value (only parameters that have a default, and `Stage`, which has
        none in the templates that derive platform names from it: `FAKE_STAGE`).
    """
    values: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        is_ssm = str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value")
        if name == "Stage" and "Default" not in spec:
            values[name] = FAKE_STAGE
        elif is_ssm and "Default" not in spec:
            # No default (samconfig.toml names it per stage): RuntimeLayerArn -> runtime-layer-arn.
            key = re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()
            values[name] = ssm_value(f"/sluice/{FAKE_STAGE}/{key}")
        if "Default" not in spec:
            continue
        default = spec["Default"]
        if str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value"):
            default = ssm_value(str(default))
        values[name] = default
    return values


def _package(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` does to local artefact paths: point them at S3."""
    packaged = copy.deepcopy(template)
    for logical_id, resource in packaged.get("Resources", {}).items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str):
                props[key] = {"Bucket": "sluice-artifacts", "Key": f"{logical_id}/{key}"}
    function_globals = packaged.get("Globals", {}).get("Function", {})
    if isinstance(function_globals.get("CodeUri"), str):
        function_globals["CodeUri"] = {"Bucket": "sluice-artifacts", "Key": "globals/CodeUri"}
    return packaged


class _NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs only for policies named in `Policies`;
    the templates name none, so an empty map keeps translation offline."""

    def load(self) -> dict[str, str]:
        return {}


def translate(path: Path) -> dict[str, Any]:
    """Translate one SAM template to CloudFormation, offline.

    Args:
        path: the SAM template.

    Returns:
        The CloudFormation template. SSM-typed parameters become `String` parameters whose
        default is the value the platform publishes, so static analysers see real names.

    Raises:
        samtranslator.model.exceptions.InvalidDocumentException: the template is invalid.
    """
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = load_template(path)
    params = parameter_values(template)
    params.update(
        {
            "AWS::AccountId": FAKE_ACCOUNT,
            "AWS::Region": FAKE_REGION,
            "AWS::Partition": FAKE_PARTITION,
        }
    )
    # The translator's own metrics publisher warns on every run; it has nothing to publish to.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    # An explicit region keeps the translator from looking for one in the environment.
    session = boto3.session.Session(region_name=FAKE_REGION)
    translator = Translator(None, Parser(), boto_session=session)
    loader = _NoManagedPolicies()
    cfn: dict[str, Any] = translator.translate(
        _package(template), parameter_values=params, get_managed_policy_map=loader.load
    )
    for name, spec in cfn.get("Parameters", {}).items():
        if str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value"):
            cfn["Parameters"][name] = {"Type": "String", "Default": params[name]}
    return cfn


def fake_resolve(value: Any, params: dict[str, Any]) -> Any:
    """Resolve the intrinsics used in DefinitionSubstitutions to plausible literal values.

    Args:
        value: a literal, `{"Ref": P}` or `{"Fn::GetAtt": [R, "Arn"]}`.
        params: parameter values (see `parameter_values`).

    Returns:
        A string: the parameter value, or a fake Lambda/resource ARN named after the resource.

    Raises:
        ValueError: an intrinsic this helper does not know.
    """
    if isinstance(value, str | int | float):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return params.get(value["Ref"], value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        resource = value["Fn::GetAtt"][0]
        return f"arn:aws:lambda:{FAKE_REGION}:{FAKE_ACCOUNT}:function:{resource}"
    raise ValueError(f"cannot resolve {value!r}")


def state_machines(template_path: Path) -> list[tuple[str, Path, dict[str, Any]]]:
    """The state machines a template deploys from ASL files.

    Args:
        template_path: a SAM template.

    Returns:
        (logical id, ASL path, DefinitionSubstitutions as written) per state machine.
    """
    template = load_template(template_path)
    found = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::StateMachine":
            continue
        props = resource.get("Properties", {})
        uri = props.get("DefinitionUri")
        if isinstance(uri, str):
            asl = (template_path.parent / uri).resolve()
            found.append((logical_id, asl, dict(props.get("DefinitionSubstitutions", {}))))
    return found


def render_asl(asl_text: str, substitutions: dict[str, Any]) -> str:
    """Substitute `${Name}` placeholders as Step Functions does with DefinitionSubstitutions.

    Args:
        asl_text: the ASL file's text.
        substitutions: placeholder name -> literal value.

    Returns:
        The substituted text.

    Raises:
        KeyError: a placeholder has no substitution (it would reach AWS verbatim).
    """

    def replace(match: re.Match[str]) -> str:
        return str(substitutions[match.group(1)])

    return PLACEHOLDER.sub(replace, asl_text)


def _cmd_translate(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for name, path in template_paths().items():
        target = out / f"{name}.json"
        target.write_text(json.dumps(translate(path), indent=2, sort_keys=True), "utf-8")
        print(f"translated {path.relative_to(REPO)} -> {target}")
    return 0


def _cmd_render_asl(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for path in template_paths().values():
        params = parameter_values(load_template(path))
        for logical_id, asl, subs in state_machines(path):
            resolved = {key: fake_resolve(value, params) for key, value in subs.items()}
            target = out / f"{logical_id}.asl.json"
            target.write_text(render_asl(asl.read_text("utf-8"), resolved), "utf-8")
            print(f"rendered {asl.relative_to(REPO)} -> {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: `translate --out DIR` or `render-asl --out DIR`.

    Args:
        argv: arguments (default: sys.argv[1:]).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m tools.templates")
    parser.add_argument("command", choices=["translate", "render-asl"])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "translate":
        return _cmd_translate(args.out)
    return _cmd_render_asl(args.out)


if __name__ == "__main__":
    sys.exit(main())
