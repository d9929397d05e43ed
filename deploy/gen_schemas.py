"""Generate the schema-registry section of deploy/platform.yaml from the event contracts.

One `AWS::EventSchemas::Schema` per `contracts/events/<fact>/v<N>/schema.json`, named after the
contract type (`file_ingested/v1` -> `sluice.file.ingested.v1`). The registry takes JSON Schema
draft 4, while pydantic writes draft 2020-12, so the few keywords that differ are rewritten
(`$defs` -> `definitions`, `const` -> `enum`, numeric `exclusiveMinimum/Maximum`).

    python deploy/gen_schemas.py            # rewrite the section in place
    python deploy/gen_schemas.py --check    # exit 1 if the section is out of date (CI)

A contract folder without `schema.json` yet is reported and left out, so the platform template
stays deployable while contracts are being written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PLATFORM = REPO / "deploy" / "platform.yaml"
EVENTS = REPO / "contracts" / "events"
BEGIN = "  # BEGIN GENERATED SCHEMAS"
END = "  # END GENERATED SCHEMAS"
DRAFT4 = "http://json-schema.org/draft-04/schema#"


def contract_type(schema_path: Path) -> str:
    """The contract type (= EventBridge DetailType) of a schema file.

    Args:
        schema_path: `contracts/events/<fact>/v<N>/schema.json`.

    Returns:
        e.g. `sluice.file.ingested.v1` for `file_ingested/v1`.
    """
    version = schema_path.parent.name
    fact = schema_path.parent.parent.name
    return "sluice." + fact.replace("_", ".") + "." + version


def logical_id(schema_path: Path) -> str:
    """CloudFormation logical id for a schema: `Schema` + CamelCase fact + version."""
    fact = schema_path.parent.parent.name
    version = schema_path.parent.name
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


def schema_files(events_root: Path = EVENTS) -> tuple[list[Path], list[Path]]:
    """Find the contract schema files.

    Args:
        events_root: the `contracts/events` folder.

    Returns:
        (schema files found, contract version folders that have no schema.json yet), sorted.
    """
    found: list[Path] = []
    missing: list[Path] = []
    for version_dir in sorted(events_root.glob("*/v*")):
        if not version_dir.is_dir():
            continue
        schema = version_dir / "schema.json"
        if schema.is_file():
            found.append(schema)
        else:
            missing.append(version_dir)
    return found, missing


def render_section(schemas: list[Path]) -> str:
    """The YAML for the generated section, markers included.

    Args:
        schemas: schema files, in the order to emit them.

    Returns:
        Text from the BEGIN marker line to the END marker line (inclusive, newline-terminated).
    """
    lines = [BEGIN + " (deploy/gen_schemas.py; edit the contracts, then re-run it)"]
    for path in schemas:
        document = to_draft4(json.loads(path.read_text("utf-8")))
        document = {"$schema": DRAFT4, **document}
        content = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True)
        rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        lines += [
            f"  {logical_id(path)}:",
            "    Type: AWS::EventSchemas::Schema",
            "    Properties:",
            "      RegistryName: !GetAtt SchemaRegistry.RegistryName",
            f"      SchemaName: {contract_type(path)}",
            "      Type: JSONSchemaDraft4",
            f"      Description: Generated from {rel}",
            "      Content: |-",
            *("        " + line for line in content.splitlines()),
            "",
        ]
    lines.append(END)
    return "\n".join(lines) + "\n"


def regenerate(template_text: str, schemas: list[Path]) -> str:
    """Replace the generated section of a platform template.

    Args:
        template_text: the template's text.
        schemas: the schema files to emit.

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
    return template_text[:start] + render_section(schemas) + template_text[end:]


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
    parser.add_argument("--events", type=Path, default=EVENTS)
    args = parser.parse_args(argv)
    schemas, missing = schema_files(args.events)
    for folder in missing:
        print(f"gen_schemas: no schema.json yet in {folder}; left out", file=sys.stderr)
    current = args.template.read_text("utf-8")
    wanted = regenerate(current, schemas)
    if args.check:
        if wanted != current:
            print(
                f"gen_schemas: {args.template} is out of date with the contract schemas; "
                "run: python deploy/gen_schemas.py",
                file=sys.stderr,
            )
            return 1
        print(f"gen_schemas: {len(schemas)} schema(s) up to date")
        return 0
    if wanted != current:
        args.template.write_text(wanted, "utf-8")
    print(f"gen_schemas: {len(schemas)} schema(s) written to {args.template}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
