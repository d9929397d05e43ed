"""Step Functions look-ups: a file's batch execution, Map Run counts, console links."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.client import SFNClient


def execution_arn_for_file(state_machine_arn: str, file_id: str) -> str:
    """The ARN of the batch execution ingest starts for a file (it names it `file-<file_id>`,
    which makes the start idempotent)."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:file-{file_id}"


def console_url(arn: str, region: str) -> str:
    """The AWS console page of an execution or Map Run ARN."""
    kind = "map-runs" if ":mapRun:" in arn else "executions"
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/{kind}/details/{arn}"
    )


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    arn: str
    status: str
    started_at: str | None
    stopped_at: str | None
    error: str | None
    cause: str | None


def describe_execution(sfn: SFNClient, arn: str) -> ExecutionInfo | None:
    """The execution's status, or None when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        response = sfn.describe_execution(executionArn=arn)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"ExecutionDoesNotExist", "InvalidArn"}:
            return None
        raise
    started = response.get("startDate")
    stopped = response.get("stopDate")
    return ExecutionInfo(
        arn=arn,
        status=str(response["status"]),
        started_at=started.isoformat() if started else None,
        stopped_at=stopped.isoformat() if stopped else None,
        error=response.get("error"),
        cause=response.get("cause"),
    )


def map_run_counts(sfn: SFNClient, map_run_arn: str) -> dict[str, Any] | None:
    """`DescribeMapRun` item and child-execution counts (total, succeeded, failed, running,
    pending, aborted, timed out), its status and tolerance; None when the Map Run is unknown."""
    from botocore.exceptions import ClientError

    try:
        response = sfn.describe_map_run(mapRunArn=map_run_arn)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"ResourceNotFound", "InvalidArn"}:
            return None
        raise
    keys = ("total", "succeeded", "failed", "running", "pending", "aborted", "timedOut")
    items = response.get("itemCounts", {})
    executions = response.get("executionCounts", {})
    return {
        "status": response.get("status"),
        "max_concurrency": response.get("maxConcurrency"),
        "tolerated_failure_percentage": response.get("toleratedFailurePercentage"),
        "tolerated_failure_count": response.get("toleratedFailureCount"),
        "items": {k: items.get(k, 0) for k in keys},
        "executions": {k: executions.get(k, 0) for k in keys},
    }


def count_transitions(sfn: SFNClient, execution_arn: str) -> int:
    """State transitions of a Standard execution as billed: one per state entered."""
    total = 0
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        total += sum(1 for event in page["events"] if event["type"].endswith("StateEntered"))
    return total
