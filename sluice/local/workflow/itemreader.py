"""The Distributed Map's ItemReader: the items of an S3 listing, of one object (JSON, JSONL, CSV,
Parquet) or of a manifest (S3 Inventory, Athena).

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html
- `s3:listObjectsV2`: one item per object, `{Etag, Key, LastModified (epoch s), Size,
  StorageClass}`;
- `s3:getObject` with InputType JSON (an array), JSONL (one value a line), CSV (one object a row,
  headers from the first row or CSVHeaders), PARQUET (one object a row, keyed by column name),
  MANIFEST (an S3 Inventory manifest.json: rows of its gzip CSV files keyed by `fileSchema`);
- `ManifestType: ATHENA_DATA`: the object is an Athena UNLOAD manifest (one S3 URI a line); the
  items are the rows of every data file it lists, read as InputType (CSV, JSONL or PARQUET).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import gzip
import io
import json
from typing import TYPE_CHECKING, Any

from sluice.local.workflow.errors import StatesError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sluice.local.workflow.tree import ReaderConfig


_DELIMITERS = {"COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "SPACE": " ", "TAB": "\t"}


class ItemReaderRunner:
    """Reads a Distributed Map's items through `s3(action, params)` (the SDK caller's S3)."""

    def __init__(self, s3: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]):
        self._s3 = s3

    async def list_objects(self, params: dict[str, Any]) -> list[Any]:
        """Every object of a (paginated) listing, as AWS's listing items."""
        items: list[Any] = []
        request = dict(params)
        while True:
            page = await self._s3("listObjectsV2", request)
            for entry in page.get("Contents", []):
                items.append(
                    {
                        "Etag": entry.get("ETag"),
                        "Key": entry["Key"],
                        "LastModified": _epoch(entry.get("LastModified")),
                        "Size": entry.get("Size"),
                        "StorageClass": entry.get("StorageClass", "STANDARD"),
                    }
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return items
            request["ContinuationToken"] = token

    async def read_object(self, params: dict[str, Any], config: ReaderConfig) -> list[Any]:
        """The items of one object, or of the files its manifest lists."""
        body = _bytes((await self._s3("getObject", params)).get("Body", b""))
        manifest = config.manifest_type
        if manifest == "ATHENA_DATA":
            return await self._athena_items(body, config)
        if config.input_type == "MANIFEST" or manifest == "S3_INVENTORY":
            return await self._inventory_items(params, body)
        return parse_items(body, config)

    async def _athena_items(self, body: bytes, config: ReaderConfig) -> list[Any]:
        items: list[Any] = []
        for line in body.decode().splitlines():
            uri = line.strip()
            if not uri:
                continue
            if not uri.startswith("s3://") or "/" not in uri[5:]:
                raise StatesError(
                    "States.ItemReaderFailed", f"the Athena manifest lists {uri!r}, not an S3 URI"
                )
            bucket, _, key = uri[5:].partition("/")
            data = _bytes((await self._s3("getObject", {"Bucket": bucket, "Key": key}))["Body"])
            items.extend(parse_items(data, config))
        return items

    async def _inventory_items(self, params: dict[str, Any], body: bytes) -> list[Any]:
        # An S3 Inventory manifest: gzip CSV data files whose columns are `fileSchema`.
        manifest = json.loads(body)
        columns = [c.strip() for c in manifest.get("fileSchema", "Bucket, Key").split(",")]
        bucket = manifest.get("destinationBucket", params["Bucket"]).split(":::")[-1]
        items: list[Any] = []
        for entry in manifest.get("files", []):
            data = _bytes(
                (await self._s3("getObject", {"Bucket": bucket, "Key": entry["key"]}))["Body"]
            )
            for row in csv.reader(io.StringIO(_gunzip(data).decode())):
                items.append(dict(zip(columns, row, strict=False)))
        return items


def parse_items(body: bytes, config: ReaderConfig) -> list[Any]:
    """The items of one data object in `config.input_type` (gzip is undone first for text).

    Raises:
        StatesError: `States.ItemReaderFailed` for content that is not that type.
    """
    input_type = config.input_type
    if input_type == "PARQUET":
        return _parquet_items(body)
    text = _gunzip(body).decode()
    try:
        if input_type == "JSON":
            parsed = json.loads(text)
            if not isinstance(parsed, list):
                raise StatesError("States.ItemReaderFailed", "the JSON object is not an array")
            return parsed
        if input_type == "JSONL":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise StatesError("States.ItemReaderFailed", f"invalid {input_type}: {exc}") from exc
    return _csv_items(text, config)


def _parquet_items(body: bytes) -> list[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(body))
    except (pa.ArrowException, OSError) as exc:
        raise StatesError("States.ItemReaderFailed", f"invalid PARQUET: {exc}") from exc
    return [_json_value(row) for row in table.to_pylist()]


def _json_value(value: Any) -> Any:
    """A Parquet value as JSON: timestamps and dates as ISO 8601, decimals as numbers, binary
    as base64."""
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _csv_items(text: str, config: ReaderConfig) -> list[Any]:
    delimiter = _DELIMITERS.get(config.csv_delimiter, ",")
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    headers: list[str]
    if config.csv_header_location == "GIVEN":
        headers = list(config.csv_headers or ())
    else:
        if not rows:
            return []
        headers, rows = rows[0], rows[1:]
    return [dict(zip(headers, row, strict=False)) for row in rows if row]


def _bytes(body: Any) -> bytes:
    # The SDK caller returns a body as text when it decodes as UTF-8, else as bytes; encoding
    # the text again gives back the exact bytes.
    return body if isinstance(body, bytes) else str(body).encode()


def _gunzip(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _epoch(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    if isinstance(value, str):
        try:
            return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return value
    return value
