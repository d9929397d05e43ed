"""The local Step Functions endpoint served on a free loopback port, and a boto3 client for it."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from sluice.local.workflow.server import make_server

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sluice.local.workflow import ThreadedWorkflowService

ROLE = "arn:aws:iam::123456789012:role/sfn"


@contextmanager
def served(service: ThreadedWorkflowService) -> Iterator[str]:
    """Serve a started `service` over HTTP on 127.0.0.1; yields the endpoint URL and closes the
    server and the service afterwards."""
    server = make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        service.close()


def client(url: str) -> Any:
    """A stepfunctions client for `url`. StartSyncExecution carries a `sync-` host prefix that
    an IP endpoint cannot take, so host prefixes are off."""
    return boto3.client(
        "stepfunctions",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(inject_host_prefix=False),
    )


def wait_done(sfn: Any, arn: str) -> dict[str, Any]:
    """DescribeExecution once the execution has left RUNNING."""
    deadline = time.monotonic() + 60  # a deadline for a broken run, not a budget
    while True:
        doc = sfn.describe_execution(executionArn=arn)
        if doc["status"] != "RUNNING" or time.monotonic() > deadline:
            return dict(doc)
        time.sleep(0.02)


def run_to_end(sfn: Any, name: str, definition: dict[str, Any], data: Any) -> dict[str, Any]:
    """Create a state machine, start it with `data` and wait for the execution to end."""
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(data))["executionArn"]
    return wait_done(sfn, execution)
