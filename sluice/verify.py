"""The reconciliation checker: does what came out match what went in, exactly once?

From the ledger, the processed bucket (Parquet + manifests), the quarantine in the error bucket,
the service DLQs and, when given, the generator's ground truth, it checks for every file:

- the file reached a terminal state (COMPLETED, FAILED, QUARANTINED);
- `rows_in == rows_out + rows_quarantined`;
- a COMPLETED file has a manifest whose objects are exactly the file's Parquet objects (no stray
  object of an earlier attempt), holding `rows_out` rows, and `rows_quarantined` quarantined rows;
- a FAILED or QUARANTINED file has no Parquet output;
- with ground truth: the counts equal the truth (`rows_total`, bad + duplicate rows, good keys);

and across the whole output:

- no primary key appears twice in a file's output (no output row twice; keys are unique per
  file, not across files: two files may carry the same order, as producers re-export);
- every Parquet object belongs to a COMPLETED file's manifest (no unexpected row);
- every ground-truth file is in the ledger, and no object version is registered twice;
- every DLQ message is explained: parked with a reason (`sluice-reason-code`), or about a file
  that ended FAILED/QUARANTINED.

It also lists the events stages refused (`refused`: forged facts about real files, kept in
the files' ledger histories); they changed nothing, so they are reported, not failed.

Used by the reliability tests (`reconcile(...)`) and by `sluice verify`. Synchronous boto3.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from sluice.generate import GroundTruth
from sluice_shared.aws.dynamodb import plain
from sluice_shared.keys import StageKeys
from sluice_shared.ports import REASON_CODE_ATTRIBUTE, REFUSED_STEP

if TYPE_CHECKING:
    from pathlib import Path

TERMINAL = frozenset({"COMPLETED", "FAILED", "QUARANTINED"})
TRUTH_SUFFIX = ".truth.json"
MAX_MANIFEST_BYTES = 64 * 2**20


@dataclass(frozen=True, slots=True)
class Names:
    """Where to look: the ledger table, the two buckets and the DLQ URLs by service."""

    ledger_table: str
    processed_bucket: str
    error_bucket: str
    dlq_urls: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class FileCheck:
    """What was found for one file, and what is wrong with it (empty `problems`: reconciled)."""

    file_id: str
    key: str
    dataset: str
    status: str
    rows_in: int | None
    rows_out: int | None
    rows_quarantined: int | None
    parquet_rows: int = 0
    quarantined_rows: int = 0
    error_code: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DlqEntry:
    """One DLQ message and whether it is explained."""

    queue: str
    message_id: str
    reason_code: str | None
    file_id: str | None
    receive_count: int
    explained: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """An event about a file that a stage refused and parked (e.g. `event_ledger_mismatch`: it
    disagreed with the file's ledger record), as the file's ledger history keeps it."""

    file_id: str
    at: str
    file_status: str
    event_type: str
    event_id: str
    reason_code: str
    reason: str


@dataclass(slots=True)
class Reconciliation:
    """The checker's verdict. `ok` when no file and no global check found a problem.

    `refused` lists the events stages refused (forged or foreign facts about real files). They
    had no effect on any file, so they do not make the verdict fail, but they are reported:
    someone or something is putting facts on the bus that the ledger contradicts."""

    files: list[FileCheck] = field(default_factory=list)
    dlq: list[DlqEntry] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    output_rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and all(not f.problems for f in self.files)

    def all_problems(self) -> list[str]:
        """Every problem, each prefixed with the file it is about."""
        found = list(self.problems)
        for check in self.files:
            found.extend(f"{check.file_id} ({check.key}): {p}" for p in check.problems)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "output_rows": self.output_rows,
            "problems": self.all_problems(),
            "files": [asdict(f) for f in self.files],
            "dlq": [asdict(d) for d in self.dlq],
            "refused": [asdict(r) for r in self.refused],
        }


# ----------------------------------------------------------------------------------- ground truth


def load_truths(directory: Path) -> dict[str, GroundTruth]:
    """Ground truth by raw key from `<dir>/<dataset>/<path>.truth.json` files.

    The raw key is the path relative to `directory` minus the suffix, as `sluice local run`
    uploads samples (`samples/orders/a.csv.truth.json` → `orders/a.csv`).
    Raises ValueError for a truth file that does not parse.
    """
    truths: dict[str, GroundTruth] = {}
    for path in sorted(directory.rglob(f"*{TRUTH_SUFFIX}")):
        rel = path.relative_to(directory).as_posix()
        try:
            truths[rel[: -len(TRUTH_SUFFIX)]] = GroundTruth.from_json(path.read_bytes())
        except (TypeError, ValueError) as bad:
            raise ValueError(f"{path}: not a ground-truth file: {bad}") from None
    return truths


# -------------------------------------------------------------------------------------- readers


def ledger_items(dynamodb: Any, table: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every file's META item, and every refused-event step of the files' histories (both as
    plain values), in one scan of the table."""
    files: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression=(
            "begins_with(PK, :file) AND (SK = :meta OR (begins_with(SK, :step) AND #to = :refused))"
        ),
        ExpressionAttributeNames={"#to": "to_status"},
        ExpressionAttributeValues={
            ":meta": {"S": "META"},
            ":file": {"S": "FILE#"},
            ":step": {"S": "STEP#"},
            ":refused": {"S": REFUSED_STEP},
        },
        ConsistentRead=True,
    ):
        for item in page.get("Items", []):
            values = plain(item)
            (files if values["SK"] == "META" else refused).append(values)
    return files, refused


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield str(obj["Key"])


def _file_id_of_part(key: str) -> str | None:
    name = key.rsplit("/", 1)[-1]
    if not (name.startswith("part-") and name.endswith(".parquet")):
        return None
    return name[len("part-") :].split("-", 1)[0]


def _primary_keys(dataset: str) -> list[str]:
    from contracts.datasets import DatasetCatalog

    try:
        return list(DatasetCatalog().load(dataset).primary_key)
    except KeyError:
        return []


def _parquet_keys(
    s3: Any, bucket: str, key: str, columns: list[str]
) -> tuple[int, list[tuple[str | None, ...]]]:
    import pyarrow.parquet as pq

    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    parquet = pq.ParquetFile(io.BytesIO(data))
    rows = parquet.metadata.num_rows
    if not columns:
        return rows, []
    present = [c for c in columns if c in parquet.schema_arrow.names]
    partition = dict(p.split("=", 1) for p in key.split("/")[:-1] if "=" in p)
    table = parquet.read(columns=present)
    values = {c: [str(v) for v in table.column(c).to_pylist()] for c in present}
    out = []
    for index in range(rows):
        out.append(tuple(values[c][index] if c in values else partition.get(c) for c in columns))
    return rows, out


def _dlq_file_id(body: str) -> str | None:
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict):
        return None
    data = detail.get("data")
    if isinstance(data, dict) and isinstance(data.get("file_id"), str):
        return str(data["file_id"])
    correlation = detail.get("correlationid")
    return correlation if isinstance(correlation, str) else None


# -------------------------------------------------------------------------------------- checker


def reconcile(
    *,
    s3: Any,
    dynamodb: Any,
    sqs: Any | None,
    names: Names,
    truths: Mapping[str, GroundTruth] | None = None,
) -> Reconciliation:
    """Check every file of the ledger and the whole output; see the module docstring.

    Args:
        s3, dynamodb, sqs: boto3 clients (sqs None: DLQs are not checked).
        names: where the ledger, buckets and DLQs are.
        truths: ground truth by raw key (from `load_truths` or the generator).

    Returns the verdict; never raises for a reconciliation problem (only for AWS errors).
    """
    result = Reconciliation()
    records, refused = ledger_items(dynamodb, names.ledger_table)
    result.refused = sorted(
        (_refusal(step) for step in refused), key=lambda r: (r.at, r.file_id, r.event_id)
    )
    by_id = {str(r["file_id"]): r for r in records}
    by_key: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_key.setdefault(str(record["key"]), []).append(record)

    # Every Parquet object, grouped by the file that wrote it.
    parts: dict[str, list[str]] = {}
    datasets = {str(r["dataset"]) for r in records}
    for dataset in sorted(datasets):
        for key in _keys(s3, names.processed_bucket, f"dataset={dataset}/"):
            owner = _file_id_of_part(key)
            if owner is None:
                result.problems.append(f"unexpected object {key} in the processed bucket")
                continue
            parts.setdefault(owner, []).append(key)

    for record in records:
        check = _check_file(s3, names, record, parts.pop(str(record["file_id"]), []))
        result.files.append(check)
        result.output_rows += check.parquet_rows
        truth = (truths or {}).get(check.key)
        if truth is not None:
            _check_truth(check, truth, by_key.get(check.key, []))

    for key, same in sorted(by_key.items()):
        etags = [r.get("etag") for r in same]
        twice = {e for e in etags if etags.count(e) > 1}
        if twice:
            result.problems.append(
                f"{key}: one object version registered as {etags.count(next(iter(twice)))} files"
            )
    for owner, keys in sorted(parts.items()):
        result.problems.append(
            f"{len(keys)} Parquet object(s) of file {owner}, which is not in the ledger"
        )
    for key in sorted(set(truths or {}) - set(by_key)):
        result.problems.append(f"{key}: in the ground truth but not in the ledger")
    if sqs is not None:
        _check_dlqs(sqs, names, by_id, result)
    return result


def _refusal(step: Mapping[str, Any]) -> Refusal:
    return Refusal(
        file_id=str(step["PK"]).removeprefix("FILE#"),
        at=str(step.get("at", "")),
        file_status=str(step.get("from_status", "")),
        event_type=str(step.get("event_type", "")),
        event_id=str(step.get("event_id", "")),
        reason_code=str(step.get("error_code", "")),
        reason=str(step.get("error", "")),
    )


def _check_file(
    s3: Any,
    names: Names,
    record: Mapping[str, Any],
    parts: list[str],
) -> FileCheck:
    check = FileCheck(
        file_id=str(record["file_id"]),
        key=str(record["key"]),
        dataset=str(record["dataset"]),
        status=str(record["status"]),
        rows_in=record.get("rows_in"),
        rows_out=record.get("rows_out"),
        rows_quarantined=record.get("rows_quarantined"),
        error_code=record.get("error_code"),
    )
    if check.status not in TERMINAL:
        check.problems.append(f"not terminal: {check.status}")
        return check
    keys = StageKeys(check.file_id, check.dataset)
    if check.status != "COMPLETED":
        if parts:
            check.problems.append(f"{check.status} but {len(parts)} Parquet object(s) exist")
        return check
    if None in (check.rows_in, check.rows_out, check.rows_quarantined):
        check.problems.append("COMPLETED without row counts")
        return check
    assert check.rows_in is not None
    assert check.rows_out is not None
    assert check.rows_quarantined is not None
    if check.rows_in != check.rows_out + check.rows_quarantined:
        check.problems.append(
            f"rows_in {check.rows_in} != rows_out {check.rows_out} + rows_quarantined "
            f"{check.rows_quarantined}"
        )
    try:
        body = s3.get_object(Bucket=names.processed_bucket, Key=keys.manifest)["Body"]
        manifest = orjson.loads(body.read(MAX_MANIFEST_BYTES + 1))
    except s3.exceptions.NoSuchKey:
        check.problems.append(f"COMPLETED but no manifest at {keys.manifest}")
        manifest = None
    if manifest is not None:
        listed = {str(o["key"]) for o in manifest.get("objects", [])}
        if listed != set(parts):
            extra, missing = sorted(set(parts) - listed), sorted(listed - set(parts))
            check.problems.append(
                f"manifest and Parquet objects differ: not in manifest {extra}, missing {missing}"
            )
        if manifest.get("rows_out") != check.rows_out:
            check.problems.append(
                f"manifest rows_out {manifest.get('rows_out')} != ledger {check.rows_out}"
            )
    columns = _primary_keys(check.dataset)
    counts: Counter[tuple[str | None, ...]] = Counter()
    for key in sorted(parts):
        rows, pks = _parquet_keys(s3, names.processed_bucket, key, columns)
        check.parquet_rows += rows
        counts.update(pks)
    twice = [k for k, n in counts.items() if n > 1]
    if twice:
        check.problems.append(
            f"{len(twice)} primary key(s) in the output more than once, e.g. {twice[0]!r}"
        )
    if check.parquet_rows != check.rows_out:
        check.problems.append(
            f"Parquet holds {check.parquet_rows} rows, ledger rows_out {check.rows_out}"
        )
    for key in _keys(s3, names.error_bucket, keys.quarantine_prefix):
        data = s3.get_object(Bucket=names.error_bucket, Key=key)["Body"].read()
        check.quarantined_rows += sum(1 for line in data.splitlines() if line.strip())
    if check.quarantined_rows != check.rows_quarantined:
        check.problems.append(
            f"quarantine holds {check.quarantined_rows} rows, ledger rows_quarantined "
            f"{check.rows_quarantined}"
        )
    return check


def _check_truth(check: FileCheck, truth: GroundTruth, same_key: list[dict[str, Any]]) -> None:
    if len(same_key) > 1:
        check.problems.append(f"{len(same_key)} ledger files for one raw key with ground truth")
    if check.status != "COMPLETED":
        check.problems.append(f"ground truth expects COMPLETED, found {check.status}")
        return
    expected = {
        "rows_in": truth.rows_total,
        "rows_out": truth.expected_good_keys,
        "rows_quarantined": truth.rows_bad_total + truth.rows_duplicate,
    }
    for name, want in expected.items():
        got = getattr(check, name)
        if got != want:
            check.problems.append(f"{name} {got}, ground truth says {want}")


def _check_dlqs(
    sqs: Any, names: Names, by_id: Mapping[str, Mapping[str, Any]], result: Reconciliation
) -> None:
    from sluice.ops.dlq import peek_queue

    for service, url in sorted(names.dlq_urls.items()):
        messages, complete = peek_queue(sqs, url)
        if not complete:
            result.problems.append(f"DLQ of {service} too deep to check completely")
        for message in messages:
            attributes = message.get("MessageAttributes", {})
            reason = attributes.get(REASON_CODE_ATTRIBUTE, {}).get("StringValue")
            file_id = _dlq_file_id(str(message.get("Body", "")))
            status = by_id.get(file_id, {}).get("status") if file_id else None
            explained = bool(reason) or status in ("FAILED", "QUARANTINED")
            entry = DlqEntry(
                queue=service,
                message_id=str(message["MessageId"]),
                reason_code=str(reason) if reason else None,
                file_id=file_id,
                receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
                explained=explained,
            )
            result.dlq.append(entry)
            if not explained:
                result.problems.append(
                    f"DLQ {service}: message {entry.message_id} (file {file_id}, status "
                    f"{status}) has no reason and its file did not fail"
                )
