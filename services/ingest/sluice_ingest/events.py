"""The AWS event ingest consumes: S3 "Object Created" as EventBridge delivers it.

It is not a Sluice contract (AWS owns the shape), but it gets the same treatment: a tolerant
model, checked at the boundary, wrapped in an envelope so the shared SQS batch processing
(partial failures, parking of poison input) applies unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.envelope import ContractModel, Envelope
from contracts.errors import ContractTypeMismatch, InvalidContract

S3_SOURCE = "aws.s3"
OBJECT_CREATED = "Object Created"


class _Tolerant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class _Bucket(_Tolerant):
    name: str = Field(min_length=3, max_length=63)


class _Object(_Tolerant):
    key: str = Field(min_length=1)
    size: int | None = Field(default=None, ge=0)  # None: the notification did not say
    etag: str = ""
    version_id: str | None = Field(default=None, alias="version-id")
    sequencer: str | None = None

    @field_validator("version_id")
    @classmethod
    def _null_is_no_version(cls, value: str | None) -> str | None:
        # "null" is the version of every object written while versioning was off or suspended:
        # an overwrite replaces it, so it names no particular content. Such an object is
        # identified by its ETag, like one in a bucket that never had versions.
        return None if value == "null" else value


class S3ObjectCreated(ContractModel):
    """`detail` of an EventBridge "Object Created" event from S3 (fields ingest uses)."""

    TYPE: ClassVar[str] = "aws.s3.object_created.v1"  # shaped like a contract type, owned by AWS
    SOURCE: ClassVar[str] = S3_SOURCE

    bucket: _Bucket
    object: _Object
    reason: str | None = None
    event_time: datetime


def parse_s3_event(event: Any) -> Envelope[Any]:
    """Turn an EventBridge S3 event (dict, or the SQS body text) into an envelope.

    The correlation id is the EventBridge event id until ingest assigns the file id.
    Raises ContractTypeMismatch for any other source/detail-type and InvalidContract for a
    malformed detail (both `contracts.errors.ContractError`: the record is parked, not retried).
    """
    import orjson

    body = orjson.loads(event) if isinstance(event, (str, bytes)) else event
    if not isinstance(body, dict):
        raise InvalidContract("S3 event is not a JSON object", problems=["not an object"])
    if body.get("source") != S3_SOURCE or body.get("detail-type") != OBJECT_CREATED:
        raise ContractTypeMismatch(
            f"ingest consumes {S3_SOURCE} {OBJECT_CREATED!r} events, got "
            f"{body.get('source')!r} {body.get('detail-type')!r}",
            contract_type=str(body.get("detail-type")),
        )
    detail = body.get("detail")
    try:
        data = S3ObjectCreated.model_validate(
            {**(detail if isinstance(detail, dict) else {}), "event_time": _time(body)}
        )
    except ValidationError as invalid:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors()]
        raise InvalidContract(
            "S3 event detail is invalid: " + "; ".join(problems), problems=problems
        ) from None
    return Envelope.wrap(
        data,
        correlationid=str(body.get("id") or data.object.key),
        id=str(body.get("id")) if body.get("id") else None,
    )


def _time(body: dict[str, Any]) -> datetime:
    raw = body.get("time")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.now(UTC)
