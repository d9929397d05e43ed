"""Reading a Distributed Map's ResultWriter output: `manifest.json`, then the SUCCEEDED/FAILED/
PENDING result files it lists (AWS's shape, also written by the local workflow engine).

Reconcile reads results from S3, never from the state payload (which caps at 256 KB): a run of
thousands of partitions still fits.

Each child of the batch Maps handles a batch of items; its output is a list with one entry per
item: `{"outcome": "ok", "report": {...}}` (the function's report) or `{"outcome": "bad",
"partition"|"bucket": <item>, "error": {"Error", "Cause"}}` (a caught PoisonInputError). A child
that failed (after retries) has no output: each item of its input counts as failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson

from sluice_shared.errors import PoisonInputError

if TYPE_CHECKING:
    from sluice_shared.ports import ObjectStore

MAX_RESULT_FILE_BYTES = 512 * 2**20
MAX_MANIFEST_BYTES = 4 * 2**20

Outcome = Literal["ok", "bad", "failed"]


@dataclass(frozen=True)
class ItemResult:
    """What happened to one item (partition or bucket) of a Map.

    `index` is the partition number or the hash bucket; `report` the function's report (ok);
    `detail` what a bad partition's error said (JSON with `rows_in`, range, reason) when
    parseable; `error`/`cause` the error of a bad item or a failed child.
    """

    kind: Literal["partition", "bucket"]
    file_id: str
    index: int
    outcome: Outcome
    report: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    cause: str | None = None


def _loads(value: Any) -> Any:
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value


def error_detail(cause: str | None) -> tuple[str, dict[str, Any]]:
    """The message of a Lambda error Cause and, when the message is JSON, its fields.

    Lambda writes `Cause` as `{"errorMessage", "errorType", "stackTrace"}`.
    """
    if not cause:
        return "", {}
    message = cause
    try:
        doc = orjson.loads(cause)
        if isinstance(doc, dict) and "errorMessage" in doc:
            message = str(doc["errorMessage"])
    except orjson.JSONDecodeError:
        return cause, {}
    try:
        detail = orjson.loads(message)
    except orjson.JSONDecodeError:
        return message, {}
    return message, detail if isinstance(detail, dict) else {}


def _item_key(kind: str, item: dict[str, Any]) -> tuple[str, int]:
    index = item["partition"] if kind == "partition" else item["hash_bucket"]
    return str(item["file_id"]), int(index)


def parse_child_output(kind: Literal["partition", "bucket"], output: Any) -> list[ItemResult]:
    """The item results of one SUCCEEDED child (its Output)."""
    results = []
    for entry in _loads(output) or []:
        if entry.get("outcome") == "ok":
            report = entry["report"]
            index = report["partition"] if kind == "partition" else report["hash_bucket"]
            results.append(ItemResult(kind, report["file_id"], int(index), "ok", report=report))
            continue
        file_id, index = _item_key(kind, entry.get(kind) or {})
        error = entry.get("error") or {}
        message, detail = error_detail(error.get("Cause"))
        results.append(
            ItemResult(
                kind,
                file_id,
                index,
                "bad",
                detail=detail,
                error=error.get("Error"),
                cause=message,
            )
        )
    return results


def parse_failed_child(
    kind: Literal["partition", "bucket"], doc: dict[str, Any]
) -> list[ItemResult]:
    """Every item of a FAILED (or PENDING) child counts as failed, with the child's error."""
    child_input = _loads(doc.get("Input")) or {}
    message, _ = error_detail(doc.get("Cause"))
    results = []
    for selected in child_input.get("Items", []):
        file_id, index = _item_key(kind, selected[kind])
        results.append(
            ItemResult(
                kind,
                file_id,
                index,
                "failed",
                error=doc.get("Error") or doc.get("Status") or "States.Failed",
                cause=message,
            )
        )
    return results


async def read_map_results(
    objects: ObjectStore, details: dict[str, Any], kind: Literal["partition", "bucket"]
) -> list[ItemResult]:
    """Every item result of one Map Run, from its ResultWriter `manifest.json` and files.

    `details` is the Map state's `ResultWriterDetails` (`{"Bucket", "Key"}`). Raises
    PoisonInputError when the manifest is not a ResultWriter manifest.
    """
    bucket, key = details["Bucket"], details["Key"]
    manifest = orjson.loads(await objects.get_bytes(bucket, key, max_bytes=MAX_MANIFEST_BYTES))
    files = manifest.get("ResultFiles")
    if not isinstance(files, dict):
        raise PoisonInputError(f"s3://{bucket}/{key} is not a ResultWriter manifest")
    destination = manifest.get("DestinationBucket", bucket)
    results: list[ItemResult] = []
    for group in ("SUCCEEDED", "FAILED", "PENDING"):
        for entry in files.get(group, []):
            raw = await objects.get_bytes(
                destination, entry["Key"], max_bytes=MAX_RESULT_FILE_BYTES
            )
            docs = _documents(raw)
            for doc in docs:
                if group == "SUCCEEDED":
                    results.extend(parse_child_output(kind, doc.get("Output")))
                else:
                    results.extend(parse_failed_child(kind, doc))
    return results


def _documents(raw: bytes) -> list[dict[str, Any]]:
    text = raw.strip()
    if not text:
        return []
    if text.startswith(b"["):
        docs = orjson.loads(text)
        return list(docs)
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]
