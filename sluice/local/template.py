"""SAM template → CloudFormation → resolved resources, without AWS.

The pipeline for one stack: `load_template` (YAML with CloudFormation tags) → `resolve_parameters`
(defaults, overrides, SSM-typed parameters read from the local SSM) → `localize_code` (local
`CodeUri`/`ContentUri`/`DefinitionUri` paths become placeholder S3 URIs, because aws-sam-translator
only accepts S3 locations; the map back to the folders is kept) → `translate` (aws-sam-translator)
→ `Resolver` (intrinsic functions, conditions) while `dependency_order` decides the creation order.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.local.errors import ProvisioningError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
CODE_BUCKET = "sluice-local-code"

# Marks a value that `AWS::NoValue` removed; dropped from dicts and lists after resolution.
_NO_VALUE = object()
_SSM_TYPE = re.compile(r"^AWS::SSM::Parameter::Value<(.+)>$")


@dataclass
class Stack:
    """One template on its way to being provisioned."""

    name: str
    path: Path
    template: dict[str, Any]
    code: dict[str, Path] = field(default_factory=dict)
    """Placeholder S3 key → local folder or file (CodeUri, ContentUri, DefinitionUri)."""


def load_template(path: Path, name: str | None = None) -> Stack:
    """Parse a SAM/CloudFormation YAML or JSON file (short-form tags like `!Sub` included).

    Raises:
        ProvisioningError: the file is missing or is not a template mapping.
    """
    from samtranslator.yaml_helper import yaml_parse

    if not path.is_file():
        raise ProvisioningError(f"template {path} does not exist", stack=name or path.stem)
    parsed = yaml_parse(path.read_text(encoding="utf-8"))
    if not isinstance(parsed, dict) or "Resources" not in parsed:
        raise ProvisioningError(f"{path} is not a template (no Resources)", stack=path.stem)
    return Stack(name=name or path.stem, path=path, template=parsed)


_DYNAMIC = re.compile(r"\{\{resolve:(?P<service>[a-z-]+):(?P<name>[^}]*)\}\}")


async def resolve_dynamic_references(
    value: Any, read_ssm: Callable[[str], Awaitable[str]], *, stack: str, resource: str
) -> Any:
    """Replace CloudFormation dynamic references `{{resolve:ssm:NAME}}` (and
    `{{resolve:ssm:NAME:VERSION}}`) in every string of `value` by the parameter's value, as
    CloudFormation does when it creates the resource; `value` has its intrinsics resolved.

    Raises:
        ProvisioningError: a parameter that does not exist (the deploy fails, it never falls
        back to another name) or a dynamic reference to another service (`ssm-secure`,
        `secretsmanager`), which the runtime does not emulate.
    """
    if isinstance(value, list):
        return [
            await resolve_dynamic_references(v, read_ssm, stack=stack, resource=resource)
            for v in value
        ]
    if isinstance(value, dict):
        return {
            k: await resolve_dynamic_references(v, read_ssm, stack=stack, resource=resource)
            for k, v in value.items()
        }
    if not isinstance(value, str) or "{{resolve:" not in value:
        return value
    out, end = [], 0
    for match in _DYNAMIC.finditer(value):
        if match.group("service") != "ssm":
            raise ProvisioningError(
                f"dynamic reference {match.group(0)} is not supported locally (only ssm)",
                stack=stack,
                resource=resource,
            )
        name = match.group("name")
        # NAME:VERSION pins a version; parameter names never contain ':'.
        name = name.rsplit(":", 1)[0] if ":" in name else name
        try:
            resolved = await read_ssm(name)
        except KeyError as exc:
            raise ProvisioningError(
                f"dynamic reference {match.group(0)}: SSM parameter {name} does not exist "
                "(provision the stack that publishes it first, with the same Stage)",
                stack=stack,
                resource=resource,
            ) from exc
        out.append(value[end : match.start()])
        out.append(resolved)
        end = match.end()
    out.append(value[end:])
    return "".join(out)


def resolve_parameters(
    stack: Stack,
    overrides: Mapping[str, str],
    read_ssm: Callable[[str], str],
) -> dict[str, Any]:
    """Parameter values for a stack: overrides, else defaults; SSM-typed ones read via `read_ssm`.

    Returns:
        Parameter name → value (strings; `CommaDelimitedList`/`List<...>` as lists).

    Raises:
        ProvisioningError: a parameter without a value, a value outside `AllowedValues`, or an
        SSM parameter that does not exist (usually: the platform stack was not provisioned first).
    """
    values: dict[str, Any] = {}
    for pname, spec in (stack.template.get("Parameters") or {}).items():
        ptype = str(spec.get("Type", "String"))
        if pname in overrides:
            raw: Any = overrides[pname]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise ProvisioningError(
                "parameter has no Default and no value was given", stack=stack.name, resource=pname
            )
        match = _SSM_TYPE.match(ptype)
        if match:
            try:
                raw = read_ssm(str(raw))
            except KeyError as exc:
                raise ProvisioningError(
                    f"SSM parameter {raw} does not exist "
                    "(provision the stack that writes it first)",
                    stack=stack.name,
                    resource=pname,
                ) from exc
            ptype = match.group(1)
        value: Any = str(raw) if not isinstance(raw, list) else raw
        if ptype == "CommaDelimitedList" or ptype.startswith("List<"):
            value = value if isinstance(value, list) else [v.strip() for v in value.split(",")]
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(a) for a in allowed]:
            raise ProvisioningError(
                f"value {value!r} is not one of AllowedValues {allowed}",
                stack=stack.name,
                resource=pname,
            )
        values[pname] = value
    return values


_CODE_PROPS = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
    "AWS::Lambda::Function": "Code",
}


def localize_code(stack: Stack) -> None:
    """Replace local code/definition paths with placeholder S3 URIs the translator accepts.

    State machine `DefinitionUri` files are inlined as `Definition` instead, so the workflow engine
    gets the ASL document itself.

    Raises:
        ProvisioningError: a path that does not exist, or a non-local URI (the runtime has no S3
        code store).
    """
    base = stack.path.parent
    resources = stack.template["Resources"]
    globals_fn = (stack.template.get("Globals") or {}).get("Function") or {}
    global_code = globals_fn.get("CodeUri")
    if isinstance(global_code, str):
        globals_fn["CodeUri"] = _code_placeholder(stack, "Globals", global_code, base)
    for logical_id, res in resources.items():
        rtype = res.get("Type")
        props = res.setdefault("Properties", {})
        prop = _CODE_PROPS.get(str(rtype))
        if prop is None or props is None:
            continue
        value = props.get(prop)
        if rtype == "AWS::Serverless::StateMachine":
            if isinstance(value, str):
                target = _local_path(stack, logical_id, prop, value, base)
                props["Definition"] = _load_structured(target, stack, logical_id)
                del props["DefinitionUri"]
            continue
        if rtype == "AWS::Lambda::Function":
            if isinstance(value, dict) and "ZipFile" in value:
                raise ProvisioningError(
                    "inline ZipFile code is not supported locally",
                    stack=stack.name,
                    resource=logical_id,
                    prop="Code.ZipFile",
                )
            continue
        if isinstance(value, str):
            # A layer need not be built (`make layer`): the runtime takes its content from the
            # project's own environment, where the same packages live.
            optional = rtype == "AWS::Serverless::LayerVersion"
            props[prop] = _code_placeholder(stack, logical_id, value, base, prop, optional)


def _code_placeholder(
    stack: Stack,
    logical_id: str,
    value: str,
    base: Path,
    prop: str = "CodeUri",
    optional: bool = False,
) -> str:
    if optional and not value.startswith("s3://"):
        target = (base / value).resolve()
    else:
        target = _local_path(stack, logical_id, prop, value, base)
    key = f"{stack.name}/{logical_id}/{len(stack.code)}"
    stack.code[key] = target
    return f"s3://{CODE_BUCKET}/{key}"


def _local_path(stack: Stack, logical_id: str, prop: str, value: str, base: Path) -> Path:
    if value.startswith("s3://"):
        raise ProvisioningError(
            f"{value} is an S3 location; the local runtime runs code from local folders only",
            stack=stack.name,
            resource=logical_id,
            prop=prop,
        )
    target = (base / value).resolve()
    if not target.exists():
        raise ProvisioningError(
            f"{value} resolves to {target}, which does not exist",
            stack=stack.name,
            resource=logical_id,
            prop=prop,
        )
    return target


def _load_structured(path: Path, stack: Stack, logical_id: str) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        from samtranslator.yaml_helper import yaml_parse

        try:
            return yaml_parse(text)
        except Exception as exc:
            raise ProvisioningError(
                f"{path} is neither JSON nor YAML: {exc}",
                stack=stack.name,
                resource=logical_id,
                prop="DefinitionUri",
            ) from exc


def translate(stack: Stack, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Run aws-sam-translator offline on the (localized) template.

    Returns:
        The CloudFormation template (a new dict). Templates without the SAM transform are returned
        as they are.

    Raises:
        ProvisioningError: the translator rejected the template (its messages are kept).
    """
    transform = stack.template.get("Transform")
    transforms = transform if isinstance(transform, list) else [transform]
    if "AWS::Serverless-2016-10-31" not in transforms:
        copied: dict[str, Any] = json.loads(json.dumps(stack.template))
        return copied
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    values: dict[str, Any] = dict(parameters)
    values.update(_pseudo_parameters(stack.name))
    translator = Translator({}, Parser(), boto_session=boto3.Session(region_name=REGION))
    try:
        result: dict[str, Any] = translator.translate(
            json.loads(json.dumps(stack.template)), parameter_values=values
        )
    except InvalidDocumentException as exc:
        reasons = "; ".join(str(cause) for cause in exc.causes)
        raise ProvisioningError(f"SAM translation failed: {reasons}", stack=stack.name) from exc
    finally:
        # The translator's metrics go to a dummy publisher; publishing silences its warning.
        translator.metrics.publish()
    return result


def _pseudo_parameters(stack_name: str) -> dict[str, Any]:
    return {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": PARTITION,
        "AWS::StackName": stack_name,
        "AWS::StackId": (
            f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{stack_name}/local"
        ),
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::NotificationARNs": [],
    }


@dataclass
class Outputs:
    """What a provisioned resource answers to `Ref` and `Fn::GetAtt`."""

    ref: Any
    attrs: dict[str, Any] = field(default_factory=dict)


class Resolver:
    """Resolves CloudFormation intrinsic functions against parameters and provisioned resources.

    `outputs` is filled by the provisioner as resources are created (creation follows
    `dependency_order`, so every reference is available when it is resolved).
    """

    def __init__(
        self,
        stack: str,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any],
        outputs: Mapping[str, Outputs],
    ) -> None:
        self.stack = stack
        self.template = template
        self.parameters = dict(parameters)
        self.parameters.update(_pseudo_parameters(stack))
        self.outputs = outputs
        self._conditions: dict[str, bool] = {}
        self._resource = ""

    def condition(self, name: str) -> bool:
        """Evaluate a named condition (memoized).

        Raises:
            ProvisioningError: the condition is not defined.
        """
        if name not in self._conditions:
            spec = (self.template.get("Conditions") or {}).get(name)
            if spec is None:
                raise self._fail(f"condition {name} is not defined")
            self._conditions[name] = bool(self._condition_value(spec))
        return self._conditions[name]

    def _condition_value(self, spec: Any) -> Any:
        if isinstance(spec, dict) and len(spec) == 1:
            ((key, arg),) = spec.items()
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._condition_value(arg[0])
            if key == "Fn::And":
                return all(self._condition_value(a) for a in arg)
            if key == "Fn::Or":
                return any(self._condition_value(a) for a in arg)
        return self.resolve(spec)

    def resolve(self, value: Any, resource: str = "") -> Any:
        """Resolve every intrinsic function inside `value`.

        Args:
            value: any template fragment.
            resource: the logical id being resolved, named in error messages.

        Returns:
            The fragment with intrinsics replaced; `AWS::NoValue` entries removed.

        Raises:
            ProvisioningError: an unsupported intrinsic (e.g. `Fn::ImportValue`) or a reference to
            something that does not exist.
        """
        if resource:
            self._resource = resource
        result = self._resolve(value)
        return None if result is _NO_VALUE else result

    def _fail(self, message: str) -> ProvisioningError:
        return ProvisioningError(message, stack=self.stack, resource=self._resource)

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._resolve(v) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._intrinsic(key, arg)
        out = {}
        for k, v in value.items():
            resolved = self._resolve(v)
            if resolved is not _NO_VALUE:
                out[k] = resolved
        return out

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self._ref(str(arg))
        if key == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else self._resolve(arg)
            return self._getatt(str(parts[0]), str(parts[1]))
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::Join":
            sep, items = self._resolve(arg)
            return str(sep).join(str(i) for i in items)
        if key == "Fn::If":
            name, yes, no = arg
            return self._resolve(yes if self.condition(name) else no)
        if key == "Fn::Select":
            index, items = self._resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            sep, text = self._resolve(arg)
            return str(text).split(str(sep))
        if key == "Fn::FindInMap":
            name, top, second = (str(a) for a in self._resolve(arg))
            try:
                return self.template["Mappings"][name][top][second]
            except KeyError as exc:
                raise self._fail(f"Fn::FindInMap {name}/{top}/{second} not found") from exc
        if key == "Fn::Base64":
            return base64.b64encode(str(self._resolve(arg)).encode()).decode()
        if key == "Fn::GetAZs":
            return [f"{REGION}{z}" for z in "abc"]
        if key == "Fn::ToJsonString":
            return json.dumps(self._resolve(arg), separators=(",", ":"))
        if key == "Fn::Length":
            return len(self._resolve(arg))
        if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
            return self._condition_value({key: arg})
        raise self._fail(f"intrinsic {key} is not supported by the local runtime")

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.outputs:
            return self.outputs[name].ref
        raise self._fail(f"Ref {name}: no such parameter or provisioned resource")

    def _getatt(self, logical_id: str, attr: str) -> Any:
        out = self.outputs.get(logical_id)
        if out is None:
            raise self._fail(f"Fn::GetAtt {logical_id}.{attr}: resource not provisioned")
        if attr not in out.attrs:
            raise self._fail(
                f"Fn::GetAtt {logical_id}.{attr}: attribute not emulated locally "
                f"(known: {', '.join(sorted(out.attrs)) or 'none'})"
            )
        return out.attrs[attr]

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        else:
            text, raw_vars = arg
            variables = {k: self._resolve(v) for k, v in raw_vars.items()}

        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return str(variables[token])
            if "." in token and token.split(".", 1)[0] not in self.parameters:
                logical_id, attr = token.split(".", 1)
                return str(self._getatt(logical_id, attr))
            return str(self._ref(token))

        return re.sub(r"\$\{([^}]+)\}", replace, str(text))


def references(value: Any) -> set[str]:
    """Logical ids a fragment refers to through Ref, Fn::GetAtt and Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= references(v)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg.split(".", 1)[0] if isinstance(arg, str) else str(arg[0]))
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                for token in re.findall(r"\$\{([^}!][^}]*)\}", str(text)):
                    found.add(token.split(".", 1)[0])
                if not isinstance(arg, str):
                    found |= references(arg[1])
            else:
                found |= references(arg)
    return found


def dependency_order(resources: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Logical ids ordered so that every resource comes after what it references or DependsOn.

    Ties keep the template's order, so provisioning is deterministic.

    Raises:
        ProvisioningError: a dependency cycle (names the resources in it).
    """
    deps: dict[str, set[str]] = {}
    for logical_id, res in resources.items():
        depends = res.get("DependsOn") or []
        declared = {depends} if isinstance(depends, str) else set(depends)
        found = references(res.get("Properties") or {}) | declared
        deps[logical_id] = {d for d in found if d in resources and d != logical_id}
    ordered: list[str] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(node: str) -> None:
        if node in done:
            return
        if node in visiting:
            cycle = [*visiting[visiting.index(node) :], node]
            raise ProvisioningError(f"dependency cycle: {' -> '.join(cycle)}", resource=node)
        visiting.append(node)
        for dep in sorted(deps[node], key=list(resources).index):
            visit(dep)
        visiting.pop()
        done.add(node)
        ordered.append(node)

    for logical_id in resources:
        visit(logical_id)
    return ordered
