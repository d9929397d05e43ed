"""The envelope every Sluice event travels in, and the base class of every event payload.

The envelope uses CloudEvents 1.0 attribute names (`specversion`, `id`, `source`, `type`, `time`,
`dataschema`, `datacontenttype`, `subject`) plus the `correlationid` extension, which is carried
through every event of one file's run. On EventBridge: `Source` = `source`, `DetailType` = `type`,
`Detail` = the whole envelope as JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.errors import EventTooLarge
from contracts.types import ContractType, UtcDatetime

SCHEMA_BASE_URI = "https://schemas.sluice.dev/"
# PutEvents rejects entries above 256 KB; Step Functions payloads share the cap.
MAX_ENTRY_BYTES = 256 * 1024
# EventBridge counts a present `Time` as 14 bytes towards the entry size.
_TIME_ENTRY_BYTES = 14


class ContractModel(BaseModel):
    """Base of every event payload: immutable, and a tolerant reader (unknown fields are ignored).

    Subclasses set `TYPE` (the contract type, e.g. `sluice.file.validated.v1`) and `SOURCE` (the
    producer that normally publishes it, e.g. `sluice.validate`).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    TYPE: ClassVar[str]
    SOURCE: ClassVar[str] = ""

    @classmethod
    def dataschema_uri(cls) -> str:
        """The URI of this contract's JSON schema (`<SCHEMA_BASE_URI><TYPE>.json`)."""
        return f"{SCHEMA_BASE_URI}{cls.TYPE}.json"


DataT = TypeVar("DataT")
ModelT = TypeVar("ModelT", bound=ContractModel)


class Envelope(BaseModel, Generic[DataT]):
    """A CloudEvents-shaped envelope around a typed `data` payload.

    Build one with `Envelope.wrap(model, correlationid=...)`; read one with
    `contracts.registry.parse_envelope`, which picks the data model from `type`.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid4()), min_length=1)
    source: str = Field(min_length=1)
    type: ContractType
    time: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))
    dataschema: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    subject: str | None = None
    correlationid: str = Field(min_length=1)
    data: DataT

    @model_validator(mode="after")
    def _type_names_the_data(self) -> Envelope[DataT]:
        if isinstance(self.data, ContractModel) and self.type != self.data.TYPE:
            raise ValueError(
                f"envelope type {self.type!r} does not match its data ({self.data.TYPE!r})"
            )
        return self

    @classmethod
    def wrap(
        cls,
        data: ModelT,
        *,
        correlationid: str,
        source: str | None = None,
        subject: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
    ) -> Envelope[ModelT]:
        """Put `data` in an envelope whose `type`, `source` and `dataschema` come from its model.

        `source` defaults to the model's `SOURCE`; `subject` defaults to `data.file_id` when the
        model has one; `id` to a fresh uuid4; `time` to now (UTC).
        Raises ValueError when no source is given and the model declares none, and
        pydantic's ValidationError when an attribute is invalid.
        """
        model_cls = type(data)
        chosen_source = source or model_cls.SOURCE
        if not chosen_source:
            raise ValueError(f"{model_cls.__name__} declares no SOURCE; pass source=...")
        if subject is None:
            file_id = getattr(data, "file_id", None)
            subject = file_id if isinstance(file_id, str) else None
        attributes: dict[str, Any] = {
            "source": chosen_source,
            "type": model_cls.TYPE,
            "dataschema": model_cls.dataschema_uri(),
            "subject": subject,
            "correlationid": correlationid,
            "data": data,
        }
        if id is not None:
            attributes["id"] = id
        if time is not None:
            attributes["time"] = time
        # Parametrise at runtime so `data` validates and serialises as its own model, not the base.
        typed = cast("type[Envelope[ModelT]]", envelope_class(model_cls))
        return typed(**attributes)

    def to_json(self) -> bytes:
        """The envelope as compact JSON: what EventBridge carries as `Detail`."""
        return self.model_dump_json().encode()


_ENVELOPE_CLASSES: dict[type[Any], type[Envelope[Any]]] = {}


def envelope_class(model_cls: type[Any]) -> type[Envelope[Any]]:
    """`Envelope[model_cls]`, built once per model and kept.

    pydantic caches parametrised generics only weakly: with no one holding `Envelope[X]` it was
    rebuilt (a new model class, ~2-3 ms) for every event wrapped or parsed.
    """
    found = _ENVELOPE_CLASSES.get(model_cls)
    if found is None:
        found = cast("type[Envelope[Any]]", Envelope.__class_getitem__(model_cls))
        _ENVELOPE_CLASSES[model_cls] = found
    return found


def entry_size(source: str, detail_type: str, detail: str, *, with_time: bool = True) -> int:
    """The size EventBridge charges a PutEvents entry against its 256 KB limit, in bytes."""
    size = len(source.encode()) + len(detail_type.encode()) + len(detail.encode())
    return size + (_TIME_ENTRY_BYTES if with_time else 0)


def to_eventbridge_entry(envelope: Envelope[Any], bus_name: str) -> dict[str, Any]:
    """A PutEvents entry for `envelope` on the bus `bus_name`.

    Returns `{"Source", "DetailType", "Detail", "EventBusName", "Time"}` (Detail is a JSON string).
    Raises EventTooLarge when the entry exceeds 256 KB: events are claim checks (S3 URIs and
    counts), never rows.
    """
    detail = envelope.to_json().decode()
    size = entry_size(envelope.source, envelope.type, detail)
    if size > MAX_ENTRY_BYTES:
        raise EventTooLarge(
            f"{envelope.type} entry is {size} bytes, above the {MAX_ENTRY_BYTES}-byte EventBridge "
            "limit; put the payload in S3 and send its URI (a claim check)",
            contract_type=envelope.type,
        )
    return {
        "Source": envelope.source,
        "DetailType": envelope.type,
        "Detail": detail,
        "EventBusName": bus_name,
        "Time": envelope.time,
    }
