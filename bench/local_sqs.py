"""Local endpoint benchmark: SQS ReceiveMessage/SendMessage rate by queue depth, with and without
the moto patch (`sluice.local.moto_patches`), and Lambda Invoke rate through the endpoint.

    .venv/bin/python -m bench.local_sqs [--depths 100,1000,3000] [--budget 6]

Every call goes over HTTP with boto3, like any client of `sluice local up`. Receives use
`VisibilityTimeout=0`, so the depth stays constant while measuring. Queues are filled through
moto's backend (with the patch on, or filling 3,000 messages unpatched alone takes over a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "unit" / "local" / "fixtures"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EndpointThread:
    """The sluice endpoint (moto in-process + function runner) on a loop in a thread."""

    def __init__(self, state_dir: Path) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from sluice.local.endpoint import Endpoint
        from sluice.local.runner import FunctionConfig, FunctionRunner

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.runner = FunctionRunner(state_dir, self.url)

        async def no_sfn(target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            return 400, {"__type": "NotImplemented"}

        self.endpoint = Endpoint(
            DomainDispatcherApplication(create_backend_app),
            self.runner,
            no_sfn,
            {},
            "127.0.0.1",
            self.port,
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.run(self.endpoint.start())
        config = FunctionConfig("bench-echo", "handlers.echo", FIXTURES, max_workers=4)
        self.run(self.runner.register(config))

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.run(self.runner.close())
        self.run(self.endpoint.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


def _client(service: str, url: str) -> Any:
    factory: Any = boto3.client
    return factory(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=32),
    )


def _rate(call: Callable[[], object], budget_s: float, max_calls: int = 2000) -> float:
    """Calls per second of `call`, run for `budget_s` seconds (at least once, after a warm-up)."""
    call()
    began = time.perf_counter()
    calls = 0
    while calls < max_calls:
        call()
        calls += 1
        if time.perf_counter() - began > budget_s:
            break
    return calls / (time.perf_counter() - began)


def _fill(queue_name: str, depth: int) -> None:
    from moto.sqs.models import sqs_backends

    backend = sqs_backends["123456789012"]["us-east-1"]
    for i in range(depth):
        backend.send_message(queue_name, f'{{"n": {i}}}')


def measure_sqs(
    url: str, depths: list[int], budget_s: float
) -> list[tuple[int, str, float, float]]:
    """(depth, variant, receives/s, sends/s) for moto as shipped and with the sluice patch."""
    from sluice.local import moto_patches

    sqs = _client("sqs", url)
    rows = []
    for depth in depths:
        for variant in ("moto 5.2.5", "sluice patch"):
            name = f"bench-{depth}-{variant.split()[0]}"
            queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
            undo = moto_patches.apply()
            _fill(name, depth)
            if variant.startswith("moto"):
                undo()

            def receive(queue_url: str = queue_url) -> None:
                sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)

            def send(queue_url: str = queue_url) -> None:
                sqs.send_message(QueueUrl=queue_url, MessageBody="x")

            receives = _rate(receive, budget_s)
            sends = _rate(send, budget_s / 2)
            if not variant.startswith("moto"):
                undo()
            rows.append((depth, variant, receives, sends))
            sqs.delete_queue(QueueUrl=queue_url)
    return rows


def measure_invoke(url: str, budget_s: float) -> list[tuple[str, float]]:
    """Lambda Invoke rate through the endpoint: sequential, and 4 concurrent callers."""
    lam = _client("lambda", url)
    lam.invoke(FunctionName="bench-echo", Payload=b"{}")  # cold start outside the measurement

    def one() -> None:
        lam.invoke(FunctionName="bench-echo", Payload=b"{}")

    rows = [("invoke, 1 caller", _rate(one, budget_s))]
    with ThreadPoolExecutor(4) as pool:
        began = time.perf_counter()
        done = 0
        while time.perf_counter() - began < budget_s:
            list(pool.map(lambda _: one(), range(16)))
            done += 16
        rows.append(("invoke, 4 callers", done / (time.perf_counter() - began)))
    return rows


def measure_moto_server(depth: int, budget_s: float) -> float:
    """GetQueueUrl rate on moto's own ThreadedMotoServer (the forwarding baseline)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        sqs = _client("sqs", f"http://127.0.0.1:{port}")
        sqs.create_queue(QueueName="ping")
        return _rate(lambda: sqs.get_queue_url(QueueName="ping"), budget_s)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--depths", default="100,1000,3000")
    parser.add_argument("--budget", type=float, default=6.0, help="seconds per measurement")
    args = parser.parse_args(argv)
    depths = [int(d) for d in args.depths.split(",")]
    with tempfile.TemporaryDirectory() as state:
        endpoint = EndpointThread(Path(state))
        try:
            sqs_rows = measure_sqs(endpoint.url, depths, args.budget)
            sqs = _client("sqs", endpoint.url)
            sqs.create_queue(QueueName="ping")
            ping_local = _rate(lambda: sqs.get_queue_url(QueueName="ping"), args.budget / 2)
            invoke_rows = measure_invoke(endpoint.url, args.budget / 2)
        finally:
            endpoint.close()
    ping_moto = measure_moto_server(0, args.budget / 2)

    print("SQS through the sluice local endpoint (boto3 over HTTP, calls/s)")
    print(f"{'depth':>6}  {'variant':<13} {'receives/s':>11} {'sends/s':>9}")
    for depth, variant, receives, sends in sqs_rows:
        print(f"{depth:>6}  {variant:<13} {receives:>11.1f} {sends:>9.1f}")
    print()
    print("Endpoint overhead (calls/s)")
    print(f"  GetQueueUrl, moto ThreadedMotoServer : {ping_moto:8.1f}")
    print(f"  GetQueueUrl, sluice endpoint          : {ping_local:8.1f}")
    for label, rate in invoke_rows:
        print(f"  Lambda {label:<30} : {rate:8.1f}")


if __name__ == "__main__":
    main()
