"""The Distributed Map's results: shaped per WriterConfig and, with a Resource, exported to S3.

AWS: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html
- `<Prefix>/<map run id>/manifest.json` with DestinationBucket, MapRunArn and ResultFiles
  {FAILED, PENDING, SUCCEEDED: [{Key, Size}]}; result files SUCCEEDED_0.json / FAILED_0.json
  (or `.jsonl` with OutputType JSONL); the state's output becomes
  {"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}};
- Transformation NONE (each child's execution result), COMPACT (its output; the default without
  a ResultWriter), FLATTEN (an array output's elements); an unsuccessful child's execution
  result is given unchanged whatever the transformation.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sluice.local.workflow.errors import StatesError, runtime_error
from sluice.local.workflow.interpreter import iso
from sluice.local.workflow.models import dumps
from sluice.local.workflow.ports import ServiceError

if TYPE_CHECKING:
    from sluice.local.workflow.models import ExecutionRecord, MapRunRecord
    from sluice.local.workflow.tree import ResultWriter
    from sluice.local.workflow.values import Scope

S3Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def child_document(child: ExecutionRecord) -> dict[str, Any]:
    """A child's execution result, as one entry of SUCCEEDED_n.json / FAILED_n.json."""
    doc: dict[str, Any] = {
        "ExecutionArn": child.arn,
        "Input": child.input_text,
        "InputDetails": {"Included": True},
        "Name": child.name,
    }
    if child.status == "SUCCEEDED":
        doc["Output"] = dumps(child.output)
        doc["OutputDetails"] = {"Included": True}
    else:
        doc["Error"] = child.error or "States.Aborted"
        doc["Cause"] = child.cause or ""
    doc.update(
        {
            "RedriveCount": child.redrive_count,
            "RedriveStatus": "NOT_REDRIVABLE",
            "RedriveStatusReason": f"Execution is {child.status} and cannot be redriven",
            "StartDate": iso(child.start),
            "StateMachineArn": child.state_machine_arn,
            "Status": child.status,
            "StopDate": iso(child.stop or child.start),
        }
    )
    return doc


def shape_results(map_run: MapRunRecord, transformation: str) -> dict[str, list[Any]]:
    """Children's results by result file (SUCCEEDED, FAILED, PENDING) and, under "ALL", in
    item order: a succeeded child's output per `transformation` (NONE: its execution
    document; COMPACT: its output; FLATTEN: an array output's elements), anything else its
    execution document."""
    groups: dict[str, list[Any]] = {"SUCCEEDED": [], "FAILED": [], "PENDING": [], "ALL": []}
    for index in sorted(map_run.children):
        execution = map_run.children[index].execution
        status = execution.status
        group = (
            "SUCCEEDED"
            if status == "SUCCEEDED"
            else ("PENDING" if status == "RUNNING" else "FAILED")
        )
        entries: list[Any]
        if group == "SUCCEEDED" and transformation in ("COMPACT", "FLATTEN"):
            output = execution.output
            flat = transformation == "FLATTEN" and isinstance(output, list)
            entries = list(output) if flat else [output]
        else:
            entries = [child_document(execution)]
        groups[group].extend(entries)
        groups["ALL"].extend(entries)
    return groups


async def write_results(
    s3: S3Call, writer: ResultWriter, scope: Scope, map_run: MapRunRecord
) -> dict[str, Any]:
    """Export the results and the manifest; returns the Map state's result.

    Raises:
        StatesError: `States.ResultWriterFailed` when S3 refuses a write, `States.Runtime` for
        parameters without a Bucket.
    """
    assert writer.parameters is not None
    params = writer.parameters.evaluate(scope)
    if not isinstance(params, dict) or not isinstance(params.get("Bucket"), str):
        raise runtime_error("ResultWriter parameters need a Bucket string")
    bucket: str = params["Bucket"]
    prefix: str = params.get("Prefix", "")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    jsonl = writer.output_type == "JSONL"
    base = f"{prefix}{map_run.id}/"
    children = [map_run.children[i] for i in sorted(map_run.children)]
    groups = shape_results(map_run, writer.transformation)
    del groups["ALL"]
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    try:
        for group, entries in groups.items():
            if not entries:
                continue
            key = f"{base}{group}_0.{'jsonl' if jsonl else 'json'}"
            body = "\n".join(dumps(e) for e in entries) + "\n" if jsonl else dumps(entries)
            await s3("putObject", {"Bucket": bucket, "Key": key, "Body": body})
            files[group].append({"Key": key, "Size": len(body.encode())})
        manifest = {"DestinationBucket": bucket, "MapRunArn": map_run.arn, "ResultFiles": files}
        await s3(
            "putObject",
            {
                "Bucket": bucket,
                "Key": f"{base}manifest.json",
                "Body": json.dumps(manifest, indent=2),
            },
        )
    except ServiceError as exc:
        raise StatesError("States.ResultWriterFailed", f"{exc.error}: {exc.cause}") from exc
    map_run.results_written = len(children)
    map_run.results_written_items = sum(c.items for c in children)
    return {
        "MapRunArn": map_run.arn,
        "ResultWriterDetails": {"Bucket": bucket, "Key": f"{base}manifest.json"},
    }
