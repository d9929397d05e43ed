"""`sluice replay FILE_ID | --prefix P`: run files again from their raw objects, without
duplicating outputs.

A replay resets the file's ledger record (its history stays, with a `REPLAY` step), removes the
file's manifest, quarantine and staged objects, and sends the S3 "Object Created" notification
of the raw object to the ingest queue again. Ingest registers the same file id anew and the
stages redo their work into the same deterministic keys: Parquet objects are overwritten, not
added, and the manifest is written last again, so a reader that trusts manifests never sees a
half-replayed file. Files still in flight are refused (replaying them would race their own run).

The notification goes to the ingest queue directly: EventBridge refuses custom events with an
`aws.` source, so the bus cannot carry a replayed S3 event.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import click
import orjson

from sluice.context import CliContext, table
from sluice.ops.calls import Failed, Missing, aws_errors
from sluice_shared.aws.dynamodb import file_pk, iso, plain
from sluice_shared.clock import TICK, not_before
from sluice_shared.keys import StageKeys, file_id_for

TERMINAL = ("COMPLETED", "FAILED", "QUARANTINED")


@dataclass(frozen=True, slots=True)
class Replayed:
    """One file sent around again (or why not)."""

    file_id: str
    key: str
    previous_status: str | None
    replayed: bool
    reason: str = ""


def ingest_queue_name(stage: str) -> str:
    """The name the service templates give ingest's queue."""
    return f"sluice-{stage}-ingest-queue"


def s3_notification(
    *, bucket: str, key: str, size: int, etag: str, version_id: str | None, region: str
) -> dict[str, Any]:
    """An EventBridge S3 "Object Created" event as S3 sends it (key URL-encoded)."""
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {"key": quote_plus(key, safe="/"), "size": size, "etag": etag},
        "request-id": "sluice-replay",
        "requester": "sluice-replay",
        "reason": "PutObject",
    }
    if version_id:
        detail["object"]["version-id"] = version_id
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "000000000000",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": detail,
    }


class Replayer:
    """Replays files: resets the ledger, clears the file's manifest, quarantine and staging,
    re-notifies.

    Args: boto3 clients, the stage's resource names (`raw_bucket`, `ledger_table`,
    `processed_bucket`, `error_bucket`, `work_bucket`), the ingest queue URL and the region.
    """

    def __init__(
        self,
        *,
        s3: Any,
        dynamodb: Any,
        sqs: Any,
        names: dict[str, str],
        queue_url: str,
        region: str,
    ) -> None:
        self.s3, self.dynamodb, self.sqs = s3, dynamodb, sqs
        self.names, self.queue_url, self.region = names, queue_url, region

    def record(self, file_id: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(
            TableName=self.names["ledger_table"],
            Key={"PK": {"S": file_pk(file_id)}, "SK": {"S": "META"}},
            ConsistentRead=True,
        ).get("Item")
        return plain(item) if item else None

    def replay_file(self, file_id: str) -> Replayed:
        """Replay one file of the ledger. Raises Missing when the file id is unknown."""
        record = self.record(file_id)
        if record is None:
            raise Missing(f"file {file_id} is not in the ledger")
        return self._replay(str(record["bucket"]), str(record["key"]), record)

    def replay_prefix(self, prefix: str) -> list[Replayed]:
        """Replay every current raw object under `prefix` that the ledger knows."""
        done = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.names["raw_bucket"], Prefix=prefix):
            for obj in page.get("Contents", []):
                done.append(self._replay(self.names["raw_bucket"], str(obj["Key"]), None))
        return done

    def _replay(self, bucket: str, key: str, record: dict[str, Any] | None) -> Replayed:
        head = self.s3.head_object(Bucket=bucket, Key=key)
        head_version = head.get("VersionId")
        head_version = None if head_version in (None, "null") else str(head_version)
        etag = str(head["ETag"]).strip('"')
        # Ingest derives the file id from the notification's version id, which is the literal
        # "null" for an object written while versioning was off (moto sends it for every
        # unversioned object). The replayed notification must carry the same value, or ingest
        # would register the same object as a new file and duplicate its output.
        candidates: list[str | None] = [head_version] + (["null"] if head_version is None else [])
        if record is not None:
            stored = record.get("version_id")
            if stored not in candidates or record.get("etag") != etag:
                return Replayed(
                    str(record["file_id"]),
                    key,
                    str(record["status"]),
                    False,
                    "the raw object has changed since: replay its current version instead",
                )
            version_id, current = stored, record
        else:
            version_id, current = head_version, None
            for candidate in candidates:
                found = self.record(file_id_for(bucket, key, candidate, etag))
                if found is not None:
                    version_id, current = candidate, found
                    break
            if current is None:
                # Which version id S3 would put in its notification is unknowable here (absent
                # or "null"); guessing wrong would register the object twice.
                return Replayed(
                    file_id_for(bucket, key, head_version, etag),
                    key,
                    None,
                    False,
                    "never ingested: not replayed (write the object again to notify it)",
                )
        file_id = file_id_for(bucket, key, version_id, etag)
        status = str(current["status"]) if current else None
        if status is not None and status not in TERMINAL:
            return Replayed(file_id, key, status, False, f"in flight ({status}): not replayed")
        assert current is not None
        self._reset(current)
        body = s3_notification(
            bucket=bucket,
            key=key,
            size=int(head["ContentLength"]),
            etag=etag,
            version_id=version_id,
            region=self.region,
        )
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=orjson.dumps(body).decode())
        return Replayed(file_id, key, status, True)

    def _delete_prefix(self, bucket: str, prefix: str) -> None:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                self.s3.delete_object(Bucket=bucket, Key=obj["Key"])

    def _reset(self, record: dict[str, Any]) -> None:
        file_id, status = str(record["file_id"]), str(record["status"])
        keys = StageKeys(file_id, str(record["dataset"]))
        # The manifest first: from here on, manifest-trusting readers skip the file until the
        # replay writes it again.
        self.s3.delete_object(Bucket=self.names["processed_bucket"], Key=keys.manifest)
        self._delete_prefix(self.names["error_bucket"], keys.quarantine_prefix)
        # The stages key their staging by ledger version, which restarts with the new record:
        # the old run's staged objects must not be found under the new run's prefixes.
        if self.names.get("work_bucket"):
            self._delete_prefix(self.names["work_bucket"], keys.staging_prefix)
        # After the file's last step whatever this machine's clock says, in the ledger's own
        # fixed-width format: the history stays in order (`sluice_shared.clock`).
        last = datetime.fromisoformat(str(record["updated_at"]))
        now = iso(not_before(datetime.now(UTC), last + TICK))
        self.dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Delete": {
                        "TableName": self.names["ledger_table"],
                        "Key": {"PK": {"S": file_pk(file_id)}, "SK": {"S": "META"}},
                        # Only a file that is still where we saw it: never one a run picked up.
                        "ConditionExpression": "#status = :status AND #version = :version",
                        "ExpressionAttributeNames": {"#status": "status", "#version": "version"},
                        "ExpressionAttributeValues": {
                            ":status": {"S": status},
                            ":version": {"N": str(record["version"])},
                        },
                    }
                },
                {
                    "Put": {
                        "TableName": self.names["ledger_table"],
                        "Item": {
                            "PK": {"S": file_pk(file_id)},
                            "SK": {"S": f"STEP#{now}#REPLAY"},
                            "at": {"S": now},
                            "from_status": {"S": status},
                            "to_status": {"S": "REPLAY"},
                        },
                    }
                },
            ]
        )


@click.command("replay")
@click.argument("file_id", required=False)
@click.option("--prefix", default=None, help="Replay every raw object under this key prefix.")
@click.option("--queue", default=None, help="Ingest queue (default: sluice-<stage>-ingest-queue).")
@click.pass_obj
def command(ctx: CliContext, file_id: str | None, prefix: str | None, queue: str | None) -> None:
    """Run FILE_ID (or every raw object under --prefix) again from its raw object; outputs are
    overwritten in place, never duplicated. Files in flight are skipped.

    Exit codes: 0 replayed, 1 some files were not replayed, 2 bad usage, 3 unreachable/unknown.
    """
    if (file_id is None) == (prefix is None):
        raise click.UsageError("give exactly one of FILE_ID or --prefix")
    names = ctx.names()
    sqs = ctx.client("sqs")
    with aws_errors(ctx, "replaying"):
        queue_url = (
            queue
            if queue and queue.startswith("http")
            else sqs.get_queue_url(QueueName=queue or ingest_queue_name(ctx.stage))["QueueUrl"]
        )
        replayer = Replayer(
            s3=ctx.client("s3"),
            dynamodb=ctx.client("dynamodb"),
            sqs=sqs,
            names=names,
            queue_url=queue_url,
            region=ctx.region,
        )
        results = (
            [replayer.replay_file(file_id)] if file_id else replayer.replay_prefix(prefix or "")
        )
    human = table(
        ["file", "key", "was", "replayed", "note"],
        [[r.file_id[:12], r.key, r.previous_status or "-", r.replayed, r.reason] for r in results],
    )
    ctx.emit([asdict(r) for r in results], human)
    if not all(r.replayed for r in results):
        raise Failed("some files were not replayed")
