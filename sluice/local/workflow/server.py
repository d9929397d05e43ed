"""A tiny standalone Step Functions endpoint: `python -m sluice.local.workflow.server --port N`.

It exists so the API facade can be exercised with boto3 before the local runtime's single
endpoint routes to it. SDK integrations and Lambda calls go to `--aws-endpoint` (default:
`AWS_ENDPOINT_URL`). boto3's StartSyncExecution adds a `sync-` host prefix: create the client
with `Config(inject_host_prefix=False)`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sluice.local.workflow.adapters import Boto3FunctionInvoker, Boto3SdkCaller
from sluice.local.workflow.service import ThreadedWorkflowService


def make_server(service: ThreadedWorkflowService, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server answering AWS JSON 1.0 Step Functions calls through `service`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            target = self.headers.get("X-Amz-Target", "")
            try:
                body: Any = json.loads(raw or b"{}")
            except ValueError:
                status, doc = 400, {"__type": "SerializationException", "message": "bad JSON"}
            else:
                status, doc = service.handle(target, body if isinstance(body, dict) else {})
            payload = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8083)
    parser.add_argument("--aws-endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    args = parser.parse_args(argv)
    service = ThreadedWorkflowService(
        invoker=Boto3FunctionInvoker(args.aws_endpoint, args.region),
        sdk=Boto3SdkCaller(args.aws_endpoint, args.region),
        region=args.region,
    ).start()
    server = make_server(service, args.host, args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"sluice workflow endpoint on http://{args.host}:{server.server_port}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    service.close()


if __name__ == "__main__":
    main()
