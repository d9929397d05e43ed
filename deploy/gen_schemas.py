"""Generate the schema-registry section of deploy/platform.yaml from the event contracts.

One `AWS::EventSchemas::Schema` per built-in contract (`contracts/events/<fact>/v<N>/`), named
after the contract type (= the EventBridge DetailType, `sluice.file.ingested.v1`). Its content
is the *detail* schema (`contracts.tools.detail_schema_of`): the whole envelope a consumer
receives as `detail`, with the folder's model as `data` — code bindings generated from the
registry then read the event as it arrives, not only its payload. The registry takes JSON
Schema draft 4, while pydantic writes draft 2020-12, so the few keywords that differ are
rewritten (`$defs` -> `definitions`, `const` -> `enum`, numeric `exclusiveMinimum/Maximum`).

    python deploy/gen_schemas.py            # rewrite the section in place
    python deploy/gen_schemas.py --check    # exit 1 if the section is out of date (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.events import BUILTIN_MODELS
from contracts.tools import ContractFolder, detail_schema_of

if TYPE_CHECKING:
    from contracts.envelope import ContractModel

REPO = Path(__file__).resolve().parents[1]
PLATFORM = REPO / "deploy" / "platform.yaml"
BEGIN = "  # BEGIN GENERATED SCHEMAS"
END = "  # END GENERATED SCHEMAS"
DRAFT4 = "http://json-schema.org/draft-04/schema#"


def logical_id(folder: Path) -> str:
    """CloudFormation logical id for a contract folder: `Schema` + CamelCase fact + version."""
    fact = folder.parent.name
    version = folder.name
    return "Schema" + "".join(part.capitalize() for part in fact.split("_")) + version.upper()


def to_draft4(node: Any) -> Any:
    """Rewrite the draft 2020-12 keywords pydantic emits into their draft 4 spelling.

    Args:
        node: a JSON Schema (or a part of one).

    Returns:
        A new schema; the input is not modified.
    """
    if isinstance(node, list):
        return [to_draft4(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$defs":
            out["definitions"] = {name: to_draft4(sub) for name, sub in value.items()}
        elif key == "$ref" and isinstance(value, str):
            out["$ref"] = value.replace("#/$defs/", "#/definitions/")
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "$schema":
            continue
        else:
            out[key] = to_draft4(value)
    return out


def render_section(models: tuple[type[ContractModel], ...] = BUILTIN_MODELS) -> str:
    """The YAML for the generated section, markers included.

    Args:
        models: the contract models, in the order to emit them (sorted by folder).

    Returns:
        Text from the BEGIN marker line to the END marker line (inclusive, newline-terminated).
    """
    lines = [BEGIN + " (deploy/gen_schemas.py; edit the contracts, then re-run it)"]
    folders = sorted((ContractFolder.of(model) for model in models), key=lambda f: f.path)
    for folder in folders:
        document = {"$schema": DRAFT4, **to_draft4(detail_schema_of(folder.model))}
        content = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True)
        rel = folder.path.relative_to(REPO) if folder.path.is_relative_to(REPO) else folder.path
        lines += [
            f"  {logical_id(folder.path)}:",
            "    Type: AWS::EventSchemas::Schema",
            "    Properties:",
            "      RegistryName: !GetAtt SchemaRegistry.RegistryName",
            f"      SchemaName: {folder.model.TYPE}",
            "      Type: JSONSchemaDraft4",
            f"      Description: The detail (envelope) of {folder.model.TYPE}, from {rel}/",
            "      Content: |-",
            *("        " + line for line in content.splitlines()),
            "",
        ]
    lines.append(END)
    return "\n".join(lines) + "\n"


def regenerate(template_text: str, section: str) -> str:
    """Replace the generated section of a platform template.

    Args:
        template_text: the template's text.
        section: the new section (`render_section`).

    Returns:
        The new template text.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start = template_text.find(BEGIN)
    end = template_text.find(END)
    if start < 0 or end < start:
        raise ValueError("platform template: generated-schema markers missing or out of order")
    end = template_text.index("\n", end) + 1
    return template_text[:start] + section + template_text[end:]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring).

    Args:
        argv: arguments (default: sys.argv[1:]).

    Returns:
        0 when written or up to date, 1 when `--check` finds drift.
    """
    parser = argparse.ArgumentParser(prog="deploy/gen_schemas.py")
    parser.add_argument("--check", action="store_true", help="fail if the template is stale")
    parser.add_argument("--template", type=Path, default=PLATFORM)
    args = parser.parse_args(argv)
    schemas = len(BUILTIN_MODELS)
    current = args.template.read_text("utf-8")
    wanted = regenerate(current, render_section())
    if args.check:
        if wanted != current:
            print(
                f"gen_schemas: {args.template} is out of date with the contract schemas; "
                "run: python deploy/gen_schemas.py",
                file=sys.stderr,
            )
            return 1
        print(f"gen_schemas: {schemas} schema(s) up to date")
        return 0
    if wanted != current:
        args.template.write_text(wanted, "utf-8")
    print(f"gen_schemas: {schemas} schema(s) written to {args.template}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
