"""`sluice events validate|publish|example`: the contract tooling for every team's events."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from contracts.envelope import to_eventbridge_entry
from contracts.errors import ContractError, InvalidContract, UnknownContractType
from contracts.publish import entries_json
from sluice.ops.calls import Failed, aws_errors
from sluice.ops.events import (
    CustomSchema,
    EventToolError,
    PublishFailed,
    build_envelope,
    check_document,
    decode,
    golden_example,
    load_model,
    publish,
    registry_with,
)

if TYPE_CHECKING:
    from sluice.context import CliContext


def _schema(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Any:
    if value is None:
        return None
    try:
        return CustomSchema.load(value)
    except EventToolError as exc:
        raise click.BadParameter(str(exc)) from None


def _model(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    try:
        return registry_with(load_model(value) if value else None)
    except EventToolError as exc:
        raise click.BadParameter(str(exc)) from None


_schema_option = click.option(
    "--schema",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    callback=_schema,
    help="JSON schema of a custom type's `data` (the envelope is checked as usual).",
)
_model_option = click.option(
    "--model",
    "registry",
    metavar="MODULE:CLASS",
    callback=_model,
    help="A team's ContractModel to read its custom type (e.g. acme.events:OrderPlacedV1).",
)


@click.group("events")
def command() -> None:
    """Validate, publish and show example events (built-in or a team's custom types)."""


def _documents(raw: bytes) -> list[Any]:
    text = raw.strip()
    if not text:
        raise click.BadParameter("the input is empty", param_hint="FILE")
    try:
        document = decode(text)
    except InvalidContract:
        # Not one JSON document: read it as JSON Lines, one event per line.
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            raise
        return [_line(line, number) for number, line in enumerate(lines, 1)]
    return document if isinstance(document, list) else [document]


def _line(line: bytes, number: int) -> Any:
    try:
        return decode(line)
    except InvalidContract as exc:
        return {"__unparsed__": f"line {number}: {exc}"}


@command.command("validate")
@click.argument("source", type=click.File("rb"), metavar="FILE|-")
@_schema_option
@_model_option
@click.pass_obj
def validate(ctx: CliContext, source: Any, schema: CustomSchema | None, registry: Any) -> None:
    """Check envelopes or EventBridge events (one JSON document, a JSON array or JSON Lines)
    against their contracts and print every problem.

    Exit codes: 0 all valid, 1 problems found, 2 bad arguments or unreadable input.
    """
    try:
        documents = _documents(source.read())
    except InvalidContract as exc:
        raise click.BadParameter(str(exc), param_hint="FILE") from None
    results: list[dict[str, Any]] = []
    for index, document in enumerate(documents):
        if isinstance(document, dict) and "__unparsed__" in document:
            results.append(
                {
                    "index": index,
                    "kind": "?",
                    "type": None,
                    "ok": False,
                    "code": "invalid_contract",
                    "problems": [document["__unparsed__"]],
                }
            )
            continue
        checked = check_document(document, registry=registry, schema=schema)
        results.append(
            {
                "index": index,
                "kind": checked.kind,
                "type": checked.contract_type,
                "ok": checked.ok,
                "code": checked.code,
                "problems": checked.problems,
            }
        )
    lines = []
    for result in results:
        label = f"#{result['index']} {result['type'] or '(no type)'} ({result['kind']})"
        if result["ok"]:
            lines.append(f"OK       {label}")
        else:
            lines.append(f"INVALID  {label}: {result['code']}")
            lines.extend(f"  - {problem}" for problem in result["problems"])
    bad = sum(1 for r in results if not r["ok"])
    lines.append(f"{len(results) - bad} valid, {bad} invalid")
    ctx.emit(results, "\n".join(lines))
    if bad:
        raise Failed(f"{bad} of {len(results)} event(s) break their contract")


def _data(value: str) -> Any:
    if value.startswith("@"):
        path = value[1:]
        try:
            raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--data") from None
    else:
        raw = value.encode()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None


@command.command("publish")
@click.option(
    "--type", "contract_type", required=True, help="Contract type, e.g. sluice.file.processed.v1."
)
@click.option(
    "--data",
    "data_text",
    required=True,
    metavar="JSON|@FILE",
    help="The payload (`@-` reads stdin).",
)
@click.option(
    "--source", default=None, help="Envelope source (default: the model's; required for --schema)."
)
@click.option(
    "--correlation-id", default=None, help="Default: data.file_id, data.run_id or a new uuid."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate and print the PutEvents entries (as `aws events put-events --entries "
    "file://...` reads them); send nothing.",
)
@click.option(
    "--bus",
    default=None,
    metavar="NAME|ARN",
    help="The event bus (default: the stage's, from SSM, printed as its ARN).",
)
@_schema_option
@_model_option
@click.pass_obj
def publish_command(
    ctx: CliContext,
    contract_type: str,
    data_text: str,
    source: str | None,
    correlation_id: str | None,
    dry_run: bool,
    bus: str | None,
    schema: CustomSchema | None,
    registry: Any,
) -> None:
    """Validate an event against its contract, then put it on the stage's bus.

    Nothing is sent unless the event is valid. With --dry-run the entry list is printed
    instead: the real bus (resolved like a send), `Detail` a JSON string, `Time` ISO 8601,
    ready for `aws events put-events --entries file://entries.json`. Exit codes: 0 sent (or
    valid with --dry-run), 1 invalid event or the bus rejected it, 2 bad arguments or unknown
    type, 3 endpoint unreachable.
    """
    data = _data(data_text)
    try:
        envelope = build_envelope(
            contract_type,
            data,
            source=source,
            correlationid=correlation_id,
            registry=registry,
            schema=schema,
        )
    except UnknownContractType as exc:
        raise click.BadParameter(
            f"{exc.message}; pass --model MODULE:CLASS or --schema PATH for a custom type",
            param_hint="--type",
        ) from None
    except InvalidContract as exc:
        ctx.emit(
            {"ok": False, "code": exc.code, "problems": list(exc.problems)},
            "\n".join(["INVALID, nothing sent:", *(f"  - {p}" for p in exc.problems)]),
        )
        raise Failed(f"{contract_type}: {len(exc.problems)} problem(s); nothing was sent") from None
    except EventToolError as exc:
        raise click.UsageError(str(exc)) from None
    if dry_run:
        try:
            entries = entries_json([to_eventbridge_entry(envelope, bus or _stage_bus_arn(ctx))])
        except ContractError as exc:
            raise Failed(str(exc)) from None
        ctx.emit(
            {"ok": True, "sent": False, "entries": entries},
            orjson.dumps(entries, option=orjson.OPT_INDENT_2).decode(),
        )
        return
    bus = bus or _stage_bus(ctx)
    try:
        with aws_errors(ctx, f"publishing to {bus}"):
            sent = publish(ctx.client("events"), envelope, bus)
    except (PublishFailed, ContractError) as exc:
        raise Failed(str(exc)) from None
    ctx.emit(
        {
            "ok": True,
            "sent": True,
            "event_id": sent.event_id,
            "id": sent.envelope_id,
            "type": sent.contract_type,
            "bus": sent.bus,
            "correlationid": envelope.correlationid,
        },
        f"sent {sent.contract_type} id={sent.envelope_id} to {sent.bus} "
        f"(EventBridge id {sent.event_id}, correlationid {envelope.correlationid})",
    )


def _stage_bus(ctx: CliContext) -> str:
    bus = ctx.names().get("event_bus")
    if not bus:
        raise click.ClickException(f"stage {ctx.stage} publishes no event bus name in SSM")
    return bus


def _stage_bus_arn(ctx: CliContext) -> str:
    """The stage's bus as an ARN: an entry naming the ARN is accepted from any account the bus
    policy admits, a bare name only in the bus's own account."""
    name = _stage_bus(ctx)
    with aws_errors(ctx, f"describing the event bus {name}"):
        return str(ctx.client("events").describe_event_bus(Name=name)["Arn"])


@command.command("example")
@click.argument("contract_type", metavar="TYPE")
@_model_option
def example(contract_type: str, registry: Any) -> None:
    """Print a golden example of TYPE (always JSON: it is meant to be edited and published)."""
    try:
        document = golden_example(contract_type, registry)
    except UnknownContractType as exc:
        known = ", ".join(registry.types())
        raise click.BadParameter(f"{exc.message} (known: {known})", param_hint="TYPE") from None
    except EventToolError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
