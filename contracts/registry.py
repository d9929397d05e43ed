"""Which model reads which contract `type`, and parsing envelopes off the wire.

The default registry holds every built-in contract; teams add their own events with `register`
(same envelope, same tooling). Parsing never guesses: an unknown type (including an unknown major
of a known fact) is an `UnknownContractType`, so the consumer parks it instead of retrying it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import from_json

from contracts.envelope import ContractModel, Envelope, envelope_class
from contracts.errors import ContractTypeMismatch, InvalidContract, UnknownContractType
from contracts.events import BUILTIN_MODELS
from contracts.types import split_contract_type

ModelT = TypeVar("ModelT", bound=type[ContractModel])


class ContractRegistry:
    """A mapping of contract `type` to the model class that reads it."""

    def __init__(self, models: Collection[type[ContractModel]] = ()) -> None:
        self._models: dict[str, type[ContractModel]] = {}
        for model_cls in models:
            self.register(model_cls)

    def register(self, model_cls: ModelT) -> ModelT:
        """Register `model_cls` under its `TYPE`; returns it, so it also works as a decorator.

        Registering the same class twice is a no-op. Raises ValueError when the class has no
        valid `TYPE`, or when another class already owns the type.
        """
        contract_type = getattr(model_cls, "TYPE", None)
        if not isinstance(contract_type, str):
            raise ValueError(f"{model_cls.__name__} has no TYPE class attribute")
        split_contract_type(contract_type)
        existing = self._models.get(contract_type)
        if existing is not None and existing is not model_cls:
            raise ValueError(
                f"{contract_type!r} is already registered to {existing.__module__}."
                f"{existing.__qualname__}"
            )
        self._models[contract_type] = model_cls
        return model_cls

    def model_for(self, contract_type: str) -> type[ContractModel]:
        """The model registered for `contract_type`.

        Raises UnknownContractType, naming the majors that do exist when the fact is known.
        """
        model_cls = self._models.get(contract_type)
        if model_cls is not None:
            return model_cls
        try:
            fact, major = split_contract_type(contract_type)
        except ValueError as exc:
            raise UnknownContractType(str(exc), contract_type=contract_type) from None
        majors = self.majors(fact)
        if majors:
            listed = ", ".join(f"v{m}" for m in majors)
            message = (
                f"unknown major v{major} of {fact}: this reader knows {listed}; "
                f"the event is parked until a reader for {contract_type} is deployed"
            )
        else:
            message = f"unknown contract type {contract_type!r}: no contract for fact {fact!r}"
        raise UnknownContractType(message, contract_type=contract_type, known_majors=majors)

    def majors(self, fact: str) -> list[int]:
        """The registered majors of `fact` (e.g. `sluice.file.validated`), ascending."""
        found = []
        for contract_type in self._models:
            known_fact, major = split_contract_type(contract_type)
            if known_fact == fact:
                found.append(major)
        return sorted(found)

    def types(self) -> list[str]:
        """Every registered contract type, sorted."""
        return sorted(self._models)

    def __contains__(self, contract_type: object) -> bool:
        return contract_type in self._models

    def __iter__(self) -> Iterator[type[ContractModel]]:
        return iter([self._models[t] for t in self.types()])

    def __len__(self) -> int:
        return len(self._models)


REGISTRY = ContractRegistry(BUILTIN_MODELS)
"""The process-wide registry: every built-in contract plus whatever teams `register`."""


def register(model_cls: ModelT) -> ModelT:
    """Register a team's custom event model in the default registry (usable as a decorator).

    Raises ValueError when the model has no valid `TYPE` or another model owns that type.
    """
    return REGISTRY.register(model_cls)


def _decode(detail: Mapping[str, Any] | bytes | str) -> Mapping[str, Any]:
    if isinstance(detail, Mapping):
        return detail
    try:
        decoded = from_json(detail)
    except ValueError as exc:
        raise InvalidContract(
            f"event detail is not JSON: {exc}", problems=[f"not JSON: {exc}"]
        ) from None
    if not isinstance(decoded, dict):
        raise InvalidContract(
            f"event detail is a JSON {type(decoded).__name__}, not an object",
            problems=["detail: not an object"],
        )
    return decoded


def _describe(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ())) or "(envelope)"
    return f"{location}: {error.get('msg', 'invalid')}"


def parse_envelope(
    detail: Mapping[str, Any] | bytes | str,
    *,
    detail_type: str | None = None,
    accepted: Collection[str] | None = None,
    registry: ContractRegistry | None = None,
) -> Envelope[Any]:
    """Read an envelope (a mapping, or its JSON) into `Envelope[<the model of its type>]`.

    `detail_type` is the transport's type (EventBridge `detail-type`), which must equal the
    envelope's `type`; `accepted`, when given, is the set of types this consumer understands.
    Raises InvalidContract (every validation problem listed), UnknownContractType (no model for
    the type, e.g. an unknown major) or ContractTypeMismatch.
    """
    reader = REGISTRY if registry is None else registry
    envelope = _decode(detail)
    contract_type = envelope.get("type")
    if not isinstance(contract_type, str) or not contract_type:
        raise InvalidContract(
            "event detail has no contract 'type'", problems=["type: missing or not a string"]
        )
    if detail_type is not None and detail_type != contract_type:
        raise ContractTypeMismatch(
            f"detail-type {detail_type!r} does not match the envelope type {contract_type!r}",
            contract_type=contract_type,
        )
    model_cls = reader.model_for(contract_type)
    if accepted is not None and contract_type not in accepted:
        raise ContractTypeMismatch(
            f"{contract_type} is not accepted here (accepted: {', '.join(sorted(accepted))})",
            contract_type=contract_type,
        )
    envelope_cls = envelope_class(model_cls)
    try:
        return envelope_cls.model_validate(dict(envelope))
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        raise InvalidContract(
            f"invalid {contract_type} event ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}): " + "; ".join(problems),
            contract_type=contract_type,
            problems=problems,
        ) from None


def parse_eventbridge_event(
    event: Mapping[str, Any] | bytes | str,
    *,
    accepted: Collection[str] | None = None,
    registry: ContractRegistry | None = None,
) -> Envelope[Any]:
    """Read an EventBridge event (`source`, `detail-type`, `detail`), e.g. an SQS message body.

    Checks that `detail-type` and `source` agree with the envelope inside `detail`.
    Raises InvalidContract, UnknownContractType or ContractTypeMismatch (see `parse_envelope`).
    """
    outer = _decode(event)
    detail = outer.get("detail")
    if not isinstance(detail, Mapping | str | bytes):
        raise InvalidContract(
            "EventBridge event has no 'detail' object", problems=["detail: missing"]
        )
    detail_type = outer.get("detail-type")
    if not isinstance(detail_type, str):
        raise InvalidContract(
            "EventBridge event has no 'detail-type'", problems=["detail-type: missing"]
        )
    envelope = parse_envelope(detail, detail_type=detail_type, accepted=accepted, registry=registry)
    source = outer.get("source")
    if source is not None and source != envelope.source:
        raise ContractTypeMismatch(
            f"EventBridge source {source!r} does not match the envelope source {envelope.source!r}",
            contract_type=envelope.type,
        )
    return envelope
