"""Every policy document of the project's templates parses: the engine knows each element,
operator and key the templates use (intrinsics stand in as placeholder ARNs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sluice.local.iam.policy import Policy
from sluice.local.template import load_template

REPO = Path(__file__).resolve().parents[4]
TEMPLATES = [
    REPO / "deploy" / "platform.yaml",
    *sorted((REPO / "deploy" / "services").glob("*.yaml")),
    REPO / "deploy" / "orchestration.yaml",
]


def _placeholders(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref")):
            return "arn:aws:iam::123456789012:role/placeholder"
        return {k: _placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v) for v in value]
    return value


def _documents(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if isinstance(node.get("Statement"), list | dict):
            found.append(node)
        for value in node.values():
            found.extend(_documents(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_documents(value))
    return found


def _is_resource_policy(document: dict[str, Any]) -> bool:
    statements = document["Statement"]
    listed = statements if isinstance(statements, list) else [statements]
    return any(isinstance(s, dict) and ("Principal" in s or "NotPrincipal" in s) for s in listed)


def test_every_template_policy_document_parses() -> None:
    parsed: dict[str, int] = {}
    for path in TEMPLATES:
        resources = load_template(path).template["Resources"]
        for logical_id, resource in resources.items():
            properties = resource.get("Properties", {})
            documents = _documents(properties)
            if resource["Type"] == "AWS::Events::EventBusPolicy" and "Statement" in properties:
                # One statement per resource; the runtime gathers them into the bus's policy.
                documents = [{"Version": "2012-10-17", "Statement": [properties["Statement"]]}]
            for document in documents:
                concrete = _placeholders(document)
                policy = Policy.parse(concrete, resource_policy=_is_resource_policy(concrete))
                assert policy.statements, f"{path.name} {logical_id}"
                parsed[path.name] = parsed.get(path.name, 0) + 1
    # the platform's bucket and bus policies and every service's role policies are among them
    assert parsed.get("platform.yaml", 0) >= 5
    assert all(parsed.get(path.name) for path in TEMPLATES[1:-1]), parsed
