"""Quarantined rows: one JSON object per bad row, appended to a local JSONL file.

Record fields (a public format: operators and `sluice why` read it):
`row_number` (1-based within the partition; the header is not a row), `partition`, `byte_offset`
(of the record in the decompressed source object), `reason_code` (stable snake_case),
`reason` (for people), `column` (or null), `raw_record` (the record's text; for rows rejected
after parsing, the row's values as JSON).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from types import TracebackType

MAX_RAW_RECORD_CHARS = 64 * 1024  # a quarantined record is kept whole up to this size


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    row_number: int
    byte_offset: int
    reason_code: str
    reason: str
    column: str | None = None
    raw_record: str = ""
    partition: int = 0

    def to_json(self) -> bytes:
        return encode_record(
            self.row_number,
            self.partition,
            self.byte_offset,
            self.reason_code,
            self.reason,
            self.column,
            self.raw_record,
        )


def encode_record(
    row_number: int,
    partition: int,
    byte_offset: int,
    reason_code: str,
    reason: str,
    column: str | None,
    raw: str,
) -> bytes:
    """One record's JSON line (without the newline): `QuarantineRecord.to_json` without
    building the record, for callers that encode many rows at once."""
    truncated = len(raw) > MAX_RAW_RECORD_CHARS
    return orjson.dumps(
        {
            "row_number": row_number,
            "partition": partition,
            "byte_offset": byte_offset,
            "reason_code": reason_code,
            "reason": reason,
            "column": column,
            "raw_record": raw[:MAX_RAW_RECORD_CHARS] if truncated else raw,
            "raw_truncated": truncated,
        }
    )


class QuarantineWriter:
    """Appends records to `path` (created on the first record only) and counts reasons.

    `keep_raw=False` implements the contract's `skip` policy: rows are counted with their reason
    but not written.
    """

    def __init__(self, path: Path, *, keep_raw: bool = True) -> None:
        self.path = path
        self.keep_raw = keep_raw
        self.count = 0
        self.reasons: Counter[str] = Counter()
        self._fh: IO[bytes] | None = None

    def write(self, record: QuarantineRecord) -> None:
        self.write_block({record.reason_code: 1}, [record.to_json()] if self.keep_raw else [])

    def write_block(self, reasons: Mapping[str, int], lines: Sequence[bytes]) -> None:
        """Count `reasons` (code → records) and append `lines`, records already encoded by
        `encode_record` (on another thread, say) in one write; `lines` holds one per record
        when raw records are kept, and is ignored otherwise."""
        total = sum(reasons.values())
        self.count += total
        self.reasons.update(reasons)
        if not self.keep_raw or not total:
            return
        if len(lines) != total:
            raise ValueError(f"{total} quarantine records to keep need as many encoded lines")
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("wb")
        self._fh.write(b"\n".join(lines) + b"\n")

    @property
    def written(self) -> bool:
        return self._fh is not None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    def __enter__(self) -> QuarantineWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
