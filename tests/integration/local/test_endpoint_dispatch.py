"""boto3 → the local endpoint (real socket, moto in process): which moto calls run on the event
loop and which on the thread pool, and that a long poll on the pool holds up nothing."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp import web
from botocore.config import Config

from sluice.local.endpoint import Endpoint
from sluice.local.runner import FunctionRunner
from tests.processes import free_port

REGION = "us-east-1"


class Recording:
    """moto's WSGI app, noting which thread served each request (by action)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.threads: dict[str, set[int]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET") or (
            f"s3.{environ['REQUEST_METHOD']}:{environ['PATH_INFO']}"
        )
        self.threads.setdefault(target, set()).add(threading.get_ident())
        return self.app(environ, start_response)


class Running:
    def __init__(self, tmp: Path) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.moto = Recording(DomainDispatcherApplication(create_backend_app))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.runner = FunctionRunner(tmp, self.url)

        async def sfn(target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            return 200, {}

        async def health(request: web.Request) -> web.StreamResponse:
            return web.json_response({"ok": True})

        self.endpoint = Endpoint(
            self.moto, self.runner, sfn, {"health": health}, "127.0.0.1", self.port
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.endpoint.start(), self.loop).result()

    def client(self, service: str, read_timeout: int = 60) -> Any:
        factory: Any = boto3.client
        return factory(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="AKIAUNKNOWNKEY000001",
            aws_secret_access_key="secret",
            config=Config(retries={"max_attempts": 1}, read_timeout=read_timeout),
        )

    def served_by(self, action: str) -> set[str]:
        """ "loop" and/or "pool": where moto calls of `action` ran."""
        loop_thread = self.thread.ident
        return {
            "loop" if ident == loop_thread else "pool"
            for name, idents in self.moto.threads.items()
            if name == action or name.startswith(action + ":")
            for ident in idents
        }

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.close(), self.loop).result()
        asyncio.run_coroutine_threadsafe(self.endpoint.stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Running]:
    running = Running(tmp_path)
    try:
        yield running
    finally:
        running.close()


def unique(name: str) -> str:
    """moto's state is per process: every test names its own resources."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


def test_event_path_calls_run_on_the_loop_the_rest_on_the_pool(local: Running) -> None:
    s3, dynamodb, sqs = local.client("s3"), local.client("dynamodb"), local.client("sqs")
    bucket, table = unique("raw"), unique("ledger")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/b.csv", Body=b"id\n1\n")
    assert s3.get_object(Bucket=bucket, Key="a/b.csv")["Body"].read() == b"id\n1\n"
    s3.list_objects_v2(Bucket=bucket)
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=table, Item={"PK": {"S": "f1"}})
    assert dynamodb.get_item(TableName=table, Key={"PK": {"S": "f1"}})["Item"]
    dynamodb.batch_get_item(RequestItems={table: {"Keys": [{"PK": {"S": "f1"}}]}})
    url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hi")
    received = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])

    for action in (f"s3.PUT:/{bucket}/a/b.csv", f"s3.GET:/{bucket}/a/b.csv"):
        assert local.served_by(action) == {"loop"}, action
    for action in ("GetItem", "PutItem"):
        assert local.served_by(f"DynamoDB_20120810.{action}") == {"loop"}, action
    for action in ("SendMessage", "DeleteMessage"):
        assert local.served_by(f"AmazonSQS.{action}") == {"loop"}, action
    assert local.served_by(f"s3.GET:/{bucket}") == {"pool"}  # a listing
    assert local.served_by("DynamoDB_20120810.CreateTable") == {"pool"}
    assert local.served_by("DynamoDB_20120810.BatchGetItem") == {"pool"}
    assert local.served_by("AmazonSQS.ReceiveMessage") == {"pool"}
    assert local.endpoint.inline_calls == 6


def test_a_large_upload_runs_on_the_pool(local: Running) -> None:
    s3, bucket = local.client("s3"), unique("raw")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=b"x" * (512 * 1024))

    assert local.served_by(f"s3.PUT:/{bucket}/big.bin") == {"pool"}


def test_a_long_poll_holds_up_no_other_request(local: Running) -> None:
    sqs, dynamodb = local.client("sqs"), local.client("dynamodb")
    url, table = sqs.create_queue(QueueName=unique("idle"))["QueueUrl"], unique("ledger")
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with ThreadPoolExecutor(1) as pool:
        polling = pool.submit(sqs.receive_message, QueueUrl=url, WaitTimeSeconds=2)
        time.sleep(0.3)  # the poll is waiting in moto
        began = time.monotonic()
        dynamodb.put_item(TableName=table, Item={"PK": {"S": "f1"}})
        took = time.monotonic() - began
        assert not polling.done()
        assert polling.result(timeout=10).get("Messages") is None

    assert took < 1.5
