"""Checking, building and publishing envelopes from the command line.

Built-in contracts come from `contracts.registry.REGISTRY`. A team's custom event type is checked
either against its own pydantic model (`module:Class`, a `contracts.envelope.ContractModel`
with a `TYPE`) registered in a private registry, or against a JSON schema of its `data` — the same
envelope in every case.
"""

from __future__ import annotations

import importlib
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import orjson
from pydantic import ValidationError

from contracts.envelope import ContractModel, Envelope, to_eventbridge_entry
from contracts.errors import ContractError, InvalidContract
from contracts.registry import REGISTRY, ContractRegistry, parse_envelope, parse_eventbridge_event
from contracts.tools import ContractFolder

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from mypy_boto3_events.client import EventBridgeClient


class EventToolError(Exception):
    """The request cannot be carried out as given (bad model path, unreadable schema, …)."""


@dataclass(frozen=True, slots=True)
class CustomSchema:
    """A JSON schema (2020-12 or any draft `jsonschema` knows) for the `data` of `contract_type`."""

    contract_type: str | None
    schema: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> CustomSchema:
        """Read a schema file. Raises EventToolError when it is not a valid JSON schema."""
        import jsonschema

        try:
            schema = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise EventToolError(f"cannot read schema {path}: {exc}") from None
        if not isinstance(schema, dict):
            raise EventToolError(f"schema {path} is not a JSON object")
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise EventToolError(
                f"schema {path} is not a valid JSON schema: {exc.message}"
            ) from None
        declared = schema.get("x-sluice-type")
        return cls(contract_type=declared if isinstance(declared, str) else None, schema=schema)

    def problems(self, data: Any) -> list[str]:
        """Every way `data` breaks the schema, one line each (`data.<path>: <message>`)."""
        import jsonschema

        validator = jsonschema.validators.validator_for(self.schema)(self.schema)
        found = []
        for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(part) for part in ("data", *error.absolute_path))
            found.append(f"{where}: {error.message}")
        return found


def load_model(spec: str) -> type[ContractModel]:
    """Import `module:Class` (a ContractModel subclass with a TYPE). Raises EventToolError."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise EventToolError(f"--model {spec!r}: expected module:Class, e.g. acme.events:OrderV1")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EventToolError(f"--model {spec!r}: cannot import {module_name}: {exc}") from None
    model = getattr(module, attribute, None)
    if not (isinstance(model, type) and issubclass(model, ContractModel)):
        raise EventToolError(f"--model {spec!r}: {attribute} is not a contracts ContractModel")
    if not isinstance(getattr(model, "TYPE", None), str):
        raise EventToolError(f"--model {spec!r}: {attribute} has no TYPE")
    return model


def registry_with(model: type[ContractModel] | None) -> ContractRegistry:
    """The built-in contracts plus `model` (a private registry: the process-wide one is left
    alone). Raises EventToolError when the model's type clashes with a built-in."""
    registry = ContractRegistry(list(REGISTRY))
    if model is not None:
        try:
            registry.register(model)
        except ValueError as exc:
            raise EventToolError(str(exc)) from None
    return registry


@dataclass(slots=True)
class CheckResult:
    """The outcome of checking one document: `ok` when `problems` is empty."""

    kind: str
    contract_type: str | None
    problems: list[str] = field(default_factory=list)
    code: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def decode(text: bytes | str) -> Any:
    """Parse JSON input. Raises InvalidContract when it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidContract(f"not JSON: {exc}", problems=[f"not JSON: {exc}"]) from None


def check_document(
    document: Any,
    *,
    registry: ContractRegistry | None = None,
    schema: CustomSchema | None = None,
) -> CheckResult:
    """Check an envelope, or an EventBridge event carrying one in `detail`.

    With `schema`, the envelope's attributes are checked by the envelope model and its `data` by
    the schema (for custom types that have no pydantic model). Returns every problem found;
    never raises for bad input.
    """
    reader = registry or REGISTRY
    is_eventbridge = isinstance(document, dict) and "detail" in document
    kind = "eventbridge" if is_eventbridge else "envelope"
    contract_type = _type_of(document)
    result = CheckResult(kind=kind, contract_type=contract_type)
    if schema is not None:
        result.problems = _schema_problems(document, schema)
        result.code = "invalid_contract" if result.problems else None
        return result
    try:
        if is_eventbridge:
            parse_eventbridge_event(document, registry=reader)
        else:
            parse_envelope(document, registry=reader)
    except InvalidContract as exc:
        result.problems = list(exc.problems) or [exc.message]
        result.code = exc.code
    except ContractError as exc:
        result.problems = [exc.message]
        result.code = exc.code
    return result


def _type_of(document: Any) -> str | None:
    if not isinstance(document, dict):
        return None
    envelope = document.get("detail", document)
    if isinstance(envelope, str):
        try:
            envelope = orjson.loads(envelope)
        except orjson.JSONDecodeError:
            return None
    value = envelope.get("type") if isinstance(envelope, dict) else None
    return value if isinstance(value, str) else None


def _schema_problems(document: Any, schema: CustomSchema) -> list[str]:
    if not isinstance(document, dict):
        return ["(document): not a JSON object"]
    problems: list[str] = []
    envelope: Any = document
    if "detail" in document:
        envelope = document["detail"]
        if isinstance(envelope, str):
            try:
                envelope = orjson.loads(envelope)
            except orjson.JSONDecodeError as exc:
                return [f"detail: not JSON: {exc}"]
        if not isinstance(envelope, dict):
            return ["detail: not an object"]
        if document.get("detail-type") != envelope.get("type"):
            problems.append("detail-type: does not match the envelope type")
        if document.get("source") not in (None, envelope.get("source")):
            problems.append("source: does not match the envelope source")
    try:
        Envelope[dict[str, Any]].model_validate(envelope)
    except ValidationError as exc:
        for error in exc.errors():
            location = ".".join(str(part) for part in error.get("loc", ())) or "(envelope)"
            problems.append(f"{location}: {error.get('msg', 'invalid')}")
    if schema.contract_type is not None and envelope.get("type") != schema.contract_type:
        problems.append(
            f"type: {envelope.get('type')!r} is not the schema's type {schema.contract_type!r}"
        )
    if "data" in envelope:
        problems.extend(schema.problems(envelope["data"]))
    return problems


def build_envelope(
    contract_type: str,
    data: Any,
    *,
    source: str | None = None,
    correlationid: str | None = None,
    registry: ContractRegistry | None = None,
    schema: CustomSchema | None = None,
) -> Envelope[Any]:
    """Wrap `data` in an envelope of `contract_type`, validated before anything is sent.

    The correlation id defaults to the data's `file_id` or `run_id`, else a fresh uuid4.
    Raises UnknownContractType (no model and no schema for the type), InvalidContract (every
    problem listed) or EventToolError (a custom schema type without `--source`).
    """
    if not isinstance(data, dict):
        raise InvalidContract("data must be a JSON object", problems=["data: not an object"])
    correlation = correlationid or _default_correlation(data)
    if schema is not None:
        problems = schema.problems(data)
        if schema.contract_type is not None and schema.contract_type != contract_type:
            problems.insert(0, f"type: {contract_type!r} is not the schema's type")
        if problems:
            raise InvalidContract(
                f"invalid {contract_type} data: " + "; ".join(problems),
                contract_type=contract_type,
                problems=problems,
            )
        if not source:
            raise EventToolError("a custom event needs --source (e.g. acme.orders)")
        try:
            return Envelope[dict[str, Any]](
                source=source,
                type=contract_type,
                correlationid=correlation,
                dataschema=schema.schema.get("$id"),
                data=data,
            )
        except ValidationError as exc:
            found = [_pydantic_problem(e) for e in exc.errors()]
            raise InvalidContract(
                "invalid envelope: " + "; ".join(found),
                contract_type=contract_type,
                problems=found,
            ) from None
    model_cls = (registry or REGISTRY).model_for(contract_type)
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        found = [f"data.{_pydantic_problem(e)}" for e in exc.errors()]
        raise InvalidContract(
            f"invalid {contract_type} data ({len(found)} problem{'s' if len(found) != 1 else ''}): "
            + "; ".join(found),
            contract_type=contract_type,
            problems=found,
        ) from None
    try:
        return Envelope.wrap(model, correlationid=correlation, source=source)
    except ValueError as exc:
        raise EventToolError(f"{exc} (pass --source)") from None


def _pydantic_problem(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ())) or "(value)"
    return f"{location}: {error.get('msg', 'invalid')}"


def _default_correlation(data: Mapping[str, Any]) -> str:
    for key in ("file_id", "run_id"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Published:
    event_id: str
    envelope_id: str
    contract_type: str
    bus: str


class PublishFailed(Exception):
    """The bus refused the entry; `code` is EventBridge's ErrorCode."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def publish(events: EventBridgeClient, envelope: Envelope[Any], bus: str) -> Published:
    """Send one envelope with PutEvents. Raises EventTooLarge before sending an entry above
    256 KB, PublishFailed when the bus rejects it, botocore errors for transport failures."""
    entry = to_eventbridge_entry(envelope, bus)
    response = events.put_events(Entries=[entry])  # type: ignore[list-item]
    result = response["Entries"][0]
    if response.get("FailedEntryCount") or "ErrorCode" in result:
        code = str(result.get("ErrorCode", "unknown"))
        message = str(result.get("ErrorMessage", ""))
        raise PublishFailed(f"the bus rejected the event: {code} {message}".strip(), code)
    return Published(
        event_id=str(result.get("EventId", "")),
        envelope_id=envelope.id,
        contract_type=envelope.type,
        bus=bus,
    )


def golden_example(contract_type: str, registry: ContractRegistry | None = None) -> dict[str, Any]:
    """The first golden example (by file name) of `contract_type`, as JSON.

    Raises UnknownContractType for an unknown type and EventToolError when the contract has
    no examples folder (a custom model outside the repository).
    """
    model_cls = (registry or REGISTRY).model_for(contract_type)
    files = ContractFolder.of(model_cls).example_files()
    if not files:
        raise EventToolError(f"{contract_type} has no golden example (examples/*.json)")
    return cast("dict[str, Any]", orjson.loads(files[0].read_bytes()))


def known_types(registry: ContractRegistry | None = None) -> list[str]:
    """Every contract type the registry reads."""
    return (registry or REGISTRY).types()
