"""Annotated types shared by every event contract.

Each type carries its constraint into the generated JSON schema, so the schema other languages
read says the same thing the pydantic model enforces.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

FILE_ID_PATTERN = r"^[0-9a-f]{32}$"
BUCKET_PATTERN = r"^[a-z0-9.-]{3,63}$"
S3_URI_PATTERN = r"^s3://[a-z0-9.-]{3,63}/.+$"
DATASET_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
# Run ids double as Step Functions execution names: at most 80 of [A-Za-z0-9_-].
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$"
REASON_CODE_PATTERN = r"^[a-z][a-z0-9_]{0,127}$"
STATES_EXECUTION_ARN_PATTERN = r"^arn:[a-z0-9-]+:states:\S+$"
# `<producer namespace>.<fact words>.v<major>`: e.g. sluice.file.validated.v1, acme.order.placed.v2
CONTRACT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\.v[1-9][0-9]*$"

_CONTRACT_TYPE = re.compile(CONTRACT_TYPE_PATTERN)

FileId = Annotated[str, StringConstraints(pattern=FILE_ID_PATTERN)]
"""32 lowercase hex chars: the first half of sha256(bucket \\n key \\n version_id-or-etag)."""

BucketName = Annotated[str, StringConstraints(pattern=BUCKET_PATTERN)]
ObjectKey = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
S3Uri = Annotated[str, StringConstraints(pattern=S3_URI_PATTERN)]
"""`s3://<bucket>/<key or prefix>`; the bucket is 3-63 chars of [a-z0-9.-]."""

RunId = Annotated[str, StringConstraints(pattern=RUN_ID_PATTERN)]
ReasonCode = Annotated[str, StringConstraints(pattern=REASON_CODE_PATTERN)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
ExecutionArn = Annotated[str, StringConstraints(pattern=STATES_EXECUTION_ARN_PATTERN)]
ContractType = Annotated[str, StringConstraints(pattern=CONTRACT_TYPE_PATTERN)]

# Strict: a count sent as "12" or true is a producer bug, not something to coerce silently.
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]

# Upper bounds of the counts a consumer loops over or sizes work by (from the v2 majors on):
# S3's largest object is 5 TiB; a file is hashed into one bucket per 512 MiB
# (`sluice_shared.datapath.buckets.bucket_count_for`), so 10,240 buckets; and a 5 TiB object cut
# into partitions of at least 64 MiB is 81,920 byte ranges.
MAX_OBJECT_BYTES = 5 * 2**40
MAX_BUCKET_COUNT = 10_240
MAX_PARTITION_COUNT = 100_000
ObjectSize = Annotated[StrictInt, Field(ge=0, le=MAX_OBJECT_BYTES)]
BucketCount = Annotated[StrictInt, Field(ge=1, le=MAX_BUCKET_COUNT)]
PartitionCount = Annotated[StrictInt, Field(ge=1, le=MAX_PARTITION_COUNT)]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC; naive datetimes are rejected."""


class DatasetRef(BaseModel):
    """Which data contract (name and major version) a file was read with."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: Annotated[str, StringConstraints(pattern=DATASET_NAME_PATTERN)]
    version: PositiveInt

    @property
    def ref(self) -> str:
        """`<name>/v<version>`, the same form as `DatasetContract.ref`."""
        return f"{self.name}/v{self.version}"


LEDGER_STATUS_PATTERN = r"^[A-Z]{1,32}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
Sha256 = Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]

# Rows carried in a fact (`InlineRows`): at most this much Arrow IPC, 87,384 characters of
# base64, so the fact stays far below EventBridge's 256 KB entry and SQS's 256 KiB message.
MAX_INLINE_BYTES = 64 * 1024


class InlineRows(BaseModel):
    """A small file's rows in the fact itself: the Arrow IPC stream a stage would otherwise
    stage as an object, base64-encoded, with its sha256 (checked when the fact is read, and
    recorded in the ledger by the producer with its counts, so the consumer can check the rows
    are the ones the producer recorded)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    data: Annotated[str, StringConstraints(max_length=(MAX_INLINE_BYTES + 2) // 3 * 4)] = Field(
        description="The Arrow IPC stream, base64 (empty: no rows)."
    )
    sha256: Sha256 = Field(description="sha256 of the decoded bytes, lowercase hex.")
    rows: NonNegativeInt = Field(description="Rows in the stream.")

    @model_validator(mode="after")
    def _digest_matches(self) -> InlineRows:
        if hashlib.sha256(self.payload()).hexdigest() != self.sha256:
            raise ValueError("inline rows: sha256 is not the digest of data")
        return self

    def payload(self) -> bytes:
        """The decoded Arrow IPC bytes. Raises ValueError for data that is not base64."""
        try:
            return base64.b64decode(self.data, validate=True)
        except binascii.Error as bad:
            raise ValueError(f"inline rows: data is not base64 ({bad})") from None

    @classmethod
    def of(cls, payload: bytes, *, rows: int) -> InlineRows:
        """The inline form of `payload` (Arrow IPC bytes) holding `rows` rows."""
        return cls(
            data=base64.b64encode(payload).decode("ascii"),
            sha256=hashlib.sha256(payload).hexdigest(),
            rows=rows,
        )


class LedgerSnapshot(BaseModel):
    """A file's ledger record as the producer of a fact left it (its state after the
    producer's last ledger write), without the identity the fact carries itself (file id,
    dataset name, bucket, key).

    It lets the next stage claim the file without reading the record first. No consumer trusts
    it: the claim is conditional on the stored record being exactly this one, field by field, so
    a claim that succeeds proves the snapshot (and the fact it agrees with) true; one that fails
    falls back to reading the record. Optional in every fact that carries it.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: Annotated[str, StringConstraints(pattern=LEDGER_STATUS_PATTERN)]
    version: NonNegativeInt
    dataset_version: PositiveInt | None = None
    version_id: Annotated[str, StringConstraints(max_length=1024)] | None = None
    etag: Annotated[str, StringConstraints(max_length=1024)] | None = None
    size_bytes: ObjectSize = 0
    rows_in: NonNegativeInt | None = None
    rows_out: NonNegativeInt | None = None
    rows_quarantined: NonNegativeInt | None = None
    correlation_id: Annotated[str, StringConstraints(max_length=1024)] | None = None
    error_code: Annotated[str, StringConstraints(max_length=128)] | None = None
    error: Annotated[str, StringConstraints(max_length=4096)] | None = None
    validated_sha256: Sha256 | None = None
    transformed_sha256: Sha256 | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime


def split_contract_type(contract_type: str) -> tuple[str, int]:
    """Split `sluice.file.validated.v1` into its fact (`sluice.file.validated`) and major (1).

    Raises ValueError when the string is not a contract type.
    """
    if not _CONTRACT_TYPE.match(contract_type):
        raise ValueError(
            f"{contract_type!r} is not a contract type (expected e.g. 'sluice.file.validated.v1')"
        )
    fact, _, major = contract_type.rpartition(".v")
    return fact, int(major)
