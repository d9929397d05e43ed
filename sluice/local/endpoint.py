"""The one local AWS endpoint (default `http://127.0.0.1:4566`): an aiohttp front that routes.

- Lambda `Invoke` (`POST /2015-03-31/functions/<name>/invocations`) → the function runner.
- Step Functions (`X-Amz-Target: AWSStepFunctions.*`) → the workflow engine's API facade.
- Schema Registry (`schemas`) → `schemas.SchemaRegistries`: the templates' registries and
  schemas, read-only (moto has no such service).
- `/_sluice/*` → the runtime's control API (health, state, provision, trigger, shutdown) and
  the status page (`/_sluice/status`).
- Everything else → moto's WSGI application, called in-process: the hot, short calls of the
  event path (`INLINE_ACTIONS`: object reads and writes, item reads and writes, PutEvents, SQS
  sends and deletes, with a body of at most `INLINE_MAX_BODY`) on the event loop itself, anything
  else on a thread pool, where a long poll (`ReceiveMessage`), a scan or a large upload can take
  its time without holding up the loop. A call of a millisecond or two gains nothing from a
  thread (moto holds the GIL throughout) and paid the hand-over twice: about 15% of the
  runtime's CPU per request, measured, and the wait for the GIL at each hand-over.

With an `Enforcer` (enabled), every AWS request — moto-bound, Lambda, Step Functions, schemas —
is authorized before it is dispatched: `iam.requests` maps it to the accesses it needs, the
caller is the principal of its access key, and the first denied access answers with AWS's
AccessDenied shape for the request's protocol. `/_sluice/*` is never authorized. As on S3, a
GetObject/HeadObject of a missing key answers 403 (not 404) to a caller without `s3:ListBucket`.

Calling moto's WSGI app in-process (rather than forwarding to a moto server on a second port)
removes a loopback hop and the Nagle/delayed-ACK stalls that capped forwarded calls at ≈40–50/s;
`bench/local_sqs.py` measures both. aiohttp sets TCP_NODELAY on the sockets it accepts.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict

from sluice.local.iam.ports import Access
from sluice.local.iam.requests import HttpRequest, MappedRequest, RequestMapper, denial_response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sluice.local.iam.enforcer import Enforcer
    from sluice.local.iam.ports import Principal
    from sluice.local.runner import FunctionRunner
    from sluice.local.schemas import SchemaRegistries

_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_FUNCTION = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/?$")
_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/(?P<service>[^/]+)/aws4_request")
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "server", "date"}
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 256 * 1024
INLINE_MAX_BODY = 256 * 1024
"""The largest request body a moto call is run inline for (see the module docstring)."""
INLINE_ACTIONS = frozenset(
    {
        # S3 object requests (path style, `/<bucket>/<key>`); bucket-level ones (listings) and
        # POSTs (multipart completion, DeleteObjects) stay on the pool.
        "s3.GET",
        "s3.PUT",
        "s3.HEAD",
        "s3.DELETE",
        "DynamoDB_20120810.GetItem",
        "DynamoDB_20120810.PutItem",
        "DynamoDB_20120810.UpdateItem",
        "DynamoDB_20120810.DeleteItem",
        "DynamoDB_20120810.TransactGetItems",
        "DynamoDB_20120810.TransactWriteItems",
        "AWSEvents.PutEvents",
        "AmazonSQS.SendMessage",
        "AmazonSQS.SendMessageBatch",
        "AmazonSQS.DeleteMessage",
        "AmazonSQS.DeleteMessageBatch",
    }
)
"""Moto calls short enough to run on the event loop. Never `ReceiveMessage` (it may block), nor
the batch reads and writes (up to 100 items: tens of milliseconds that would hold up every other
request, where the pool lets them take turns)."""


def _latin1(text: str) -> str:
    # PEP 3333: WSGI strings carry bytes as latin-1 code points.
    return text.encode("utf-8").decode("latin-1")


def _error(status: int, code: str, message: str, *, json_10: bool = False) -> web.Response:
    body = {"__type": code, "message": message, "Message": message, "Type": "User"}
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={
            "x-amzn-ErrorType": code,
            "Content-Type": "application/x-amz-json-1.0" if json_10 else "application/json",
        },
    )


class Endpoint:
    """The routing front. Build it, then `start()`; `stop()` closes the listener.

    Args:
        moto_app: moto's WSGI application (`DomainDispatcherApplication`).
        runner: the function runner (Lambda Invoke).
        sfn: the Step Functions facade, `async (target, body) -> (status, body)`.
        control: handlers of `/_sluice/<name>`, `async (request) -> response`.
        host: listen address (loopback only).
        port: listen port.
        threads: threads for moto calls (long polls hold one each).
        enforcer: IAM enforcement; None (or disabled) dispatches every request unchecked.
    """

    def __init__(
        self,
        moto_app: Any,
        runner: FunctionRunner,
        sfn: Callable[[str, dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]],
        control: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]],
        host: str,
        port: int,
        threads: int = 64,
        enforcer: Enforcer | None = None,
        schemas: SchemaRegistries | None = None,
    ) -> None:
        self.moto_app = moto_app
        self.schemas = schemas
        self.runner = runner
        self.sfn = sfn
        self.control = control
        self.host = host
        self.port = port
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="moto")
        self._runner: web.AppRunner | None = None
        self.enforcer = enforcer
        self._mapper: RequestMapper | None = None
        if enforcer is not None:
            self._mapper = RequestMapper(enforcer.account, enforcer.region)
        self.requests = 0
        self.requests_by_action: dict[str, int] = {}
        """Requests by `<service>.<action>` (JSON protocols: `X-Amz-Target`; S3: `s3.<METHOD>`;
        Lambda invokes: `lambda.Invoke`); what a load test's request mix is made of."""
        self.inline_calls = 0
        """Moto calls run on the event loop rather than the pool (`INLINE_ACTIONS`)."""
        self.requests_by_caller: dict[str, dict[str, int]] = {}
        """The same, per caller: the role name of a role session (a function's role), `root`
        for the account's own keys (a user, a test, a load generator), `service` for a service
        principal, `-` when IAM is not enforced (the caller is then not resolved). Who made a
        request is what tells a pipeline's requests from its producer's and observer's."""

    async def start(self) -> None:
        """Bind and serve. Raises OSError if the port is taken."""
        app = web.Application(client_max_size=5 * 1024**3)
        app.router.add_route("*", "/{tail:.*}", self.route)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=512)
        await site.start()

    async def stop(self) -> None:
        """Close the listener and the moto thread pool."""
        if self._runner is not None:
            await self._runner.cleanup()
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def route(self, request: web.Request) -> web.StreamResponse:
        """Dispatch one request (see the module docstring)."""
        self.requests += 1
        path = request.path
        if path.startswith("/_sluice/"):
            # `/_sluice/<name>` or, for a handler with routes of its own, `/_sluice/<name>/…`
            # (the status page: `/_sluice/status/api/status`, `/_sluice/status/why/<file>`).
            name = path.removeprefix("/_sluice/").strip("/")
            handler = self.control.get(name) or self.control.get(name.split("/", 1)[0] + "/")
            if handler is None:
                return _error(404, "NotFound", f"no control action {path}")
            return await handler(request)
        target = request.headers.get("X-Amz-Target", "")
        action = target or f"{_service_of(request)}.{request.method}"
        self.requests_by_action[action] = self.requests_by_action.get(action, 0) + 1
        enforcer = self.enforcer
        authorized: tuple[MappedRequest, Principal] | None = None
        denied: web.Response | None = None
        if enforcer is not None and enforcer.enabled and self._mapper is not None:
            denied, authorized = await self._authorize(request, enforcer, self._mapper)
        self._count_caller(authorized[1] if authorized is not None else None, action)
        if denied is not None:
            return denied
        if target.startswith("AWSStepFunctions."):
            return await self._step_functions(request, target)
        service = ""
        scope = _SCOPE.search(request.headers.get("Authorization", ""))
        if scope:
            service = scope.group("service")
        if service == "lambda" or path.startswith("/2015-03-31/functions"):
            return await self._lambda(request)
        if service == "schemas":
            if self.schemas is None:
                return _error(
                    501, "NotImplemented", "sluice local: no Schema Registry on this endpoint"
                )
            return await self.schemas.handle(request)
        response = await self._moto(request, action)
        if response.status == 404 and enforcer is not None and authorized is not None:
            return self._missing_object(response, enforcer, *authorized)
        return response

    def _count_caller(self, principal: Principal | None, action: str) -> None:
        if principal is None:
            caller = "-"
        elif principal.kind == "role":
            caller = (principal.role_arn or principal.arn).rsplit("/", 1)[-1]
        else:
            caller = principal.kind
        counts = self.requests_by_caller.setdefault(caller, {})
        counts[action] = counts.get(action, 0) + 1

    def _missing_object(
        self,
        response: web.Response,
        enforcer: Enforcer,
        mapped: MappedRequest,
        principal: Principal,
    ) -> web.Response:
        """S3 answers a missing key with 404 only to a caller that may list the bucket, and
        with 403 AccessDenied to one that may not (S3 User Guide, GetObject/HeadObject
        permissions): without `s3:ListBucket`, "not there" is not disclosed."""
        if mapped.service != "s3" or mapped.operation not in ("GetObject", "HeadObject"):
            return response
        if mapped.operation == "GetObject" and b"<Code>NoSuchKey</Code>" not in (
            response.body if isinstance(response.body, bytes) else b""
        ):
            return response
        bucket = mapped.accesses[0].resource.split("/", 1)[0]
        decision = enforcer.decide(principal, Access("s3:ListBucket", bucket))
        if decision.allowed:
            return response
        status, headers, payload = denial_response(mapped, decision.message, uuid.uuid4().hex)
        return web.Response(status=status, body=payload, headers=headers)

    async def _authorize(
        self, request: web.Request, enforcer: Enforcer, mapper: RequestMapper
    ) -> tuple[web.Response | None, tuple[MappedRequest, Principal]]:
        """(None, what was authorized) when every access the request needs is allowed, else
        (AWS's denial, ...)."""
        # Only POST bodies name resources (JSON and query protocols, S3 DeleteObjects); an
        # upload's body is not read here. aiohttp keeps what it read for the dispatch.
        body = await request.read() if request.method == "POST" else b""
        path, _, query = request.raw_path.partition("?")
        mapped = mapper.map(
            HttpRequest(request.method, request.host, path, query, request.headers, body)
        )
        principal = enforcer.principals.resolve(mapped.access_key_id)
        for access in mapped.accesses:
            decision = enforcer.decide(principal, access)
            if not decision.allowed:
                status, headers, payload = denial_response(
                    mapped, decision.message, uuid.uuid4().hex
                )
                return web.Response(status=status, body=payload, headers=headers), (
                    mapped,
                    principal,
                )
        return None, (mapped, principal)

    async def _step_functions(self, request: web.Request, target: str) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _error(400, "SerializationException", "request body is not JSON", json_10=True)
        status, doc = await self.sfn(target, body if isinstance(body, dict) else {})
        return web.Response(
            status=status,
            body=json.dumps(doc).encode(),
            headers={"Content-Type": "application/x-amz-json-1.0"},
        )

    async def _lambda(self, request: web.Request) -> web.Response:
        from sluice.local.runner import FunctionNotFound

        raw_path = request.raw_path.split("?", 1)[0]
        invoke = _INVOKE.match(raw_path)
        if invoke is None or request.method != "POST":
            return self._lambda_read(request, raw_path)
        name = unquote(invoke.group("name"))
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        payload = await request.read()
        try:
            self.runner.resolve(name)
        except FunctionNotFound as exc:
            return _error(404, "ResourceNotFoundException", str(exc))
        if kind == "DryRun":
            return web.Response(status=204)
        if kind == "Event":
            if len(payload) > MAX_ASYNC_PAYLOAD:
                return _error(413, "RequestEntityTooLargeException", "payload over 256 KB")
            self.runner.invoke_async(name, payload)
            return web.Response(status=202)
        if len(payload) > MAX_SYNC_PAYLOAD:
            return _error(413, "RequestEntityTooLargeException", "payload over 6 MB")
        result = await self.runner.invoke(name, payload)
        headers = {"X-Amz-Executed-Version": result.executed_version}
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        if request.headers.get("X-Amz-Log-Type") == "Tail":
            headers["X-Amz-Log-Result"] = result.log_tail_b64
        headers["Content-Type"] = "application/json"
        return web.Response(status=200, body=result.payload, headers=headers)

    def _lambda_read(self, request: web.Request, raw_path: str) -> web.Response:
        from sluice.local.runner import FunctionNotFound

        functions = self.runner.functions
        if request.method == "GET" and raw_path.rstrip("/") == "/2015-03-31/functions":
            doc = {"Functions": [_describe(cfg) for cfg in functions.values()]}
            return web.json_response(doc)
        single = _FUNCTION.match(raw_path)
        if request.method == "GET" and single:
            try:
                name = self.runner.resolve(unquote(single.group("name")))
            except FunctionNotFound as exc:
                return _error(404, "ResourceNotFoundException", str(exc))
            return web.json_response({"Configuration": _describe(functions[name])})
        return _error(
            501,
            "NotImplemented",
            f"sluice local: Lambda {request.method} {raw_path} is not emulated "
            "(functions come from the templates; Invoke, GetFunction and ListFunctions work)",
        )

    async def _moto(self, request: web.Request, action: str) -> web.Response:
        body = await request.read()
        raw = request.raw_path
        path, _, query = raw.partition("?")
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            # The whole body is already read: werkzeug may use the stream as it is instead of
            # copying it again through a length-limited wrapper in small chunks.
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": _latin1(unquote(path)),
            "QUERY_STRING": _latin1(query),
            "REQUEST_URI": _latin1(raw),
            "RAW_URI": _latin1(raw),
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": 0,
            "SERVER_NAME": self.host,
            "SERVER_PORT": str(self.port),
            "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
            "CONTENT_LENGTH": str(len(body)),
        }
        for key, value in request.headers.items():
            if "_" in key:
                continue
            name = key.upper().replace("-", "_")
            if name == "CONTENT_LENGTH" or name == "TRANSFER_ENCODING":
                continue
            if name != "CONTENT_TYPE":
                name = f"HTTP_{name}"
                if name in environ:
                    value = f"{environ[name]},{value}"
            environ[name] = _latin1(value)
        if _runs_inline(action, path, body):
            self.inline_calls += 1
            status, headers, payload = self._call_moto(environ)
        else:
            loop = asyncio.get_running_loop()
            status, headers, payload = await loop.run_in_executor(
                self.pool, self._call_moto, environ
            )
        out = CIMultiDict[str]()
        length = None
        for key, value in headers:
            if key.lower() == "content-length":
                length = value
            if key.lower() in _HOP_HEADERS:
                continue
            out.add(key, value)
        response = web.Response(status=status, body=payload, headers=out)
        if request.method == "HEAD" and length is not None:
            # HeadObject's Content-Length is the object's size, not this (empty) body's.
            response.headers["Content-Length"] = length
        return response

    def _call_moto(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            captured["status"] = status
            captured["headers"] = headers
            return lambda data: None

        chunks = self.moto_app(environ, start_response)
        try:
            payload = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return int(str(captured["status"]).split(" ", 1)[0]), captured["headers"], payload


def _runs_inline(action: str, path: str, body: bytes) -> bool:
    """Whether a moto call is short enough to run on the event loop (see `INLINE_ACTIONS`)."""
    if action not in INLINE_ACTIONS or len(body) > INLINE_MAX_BODY:
        return False
    if action.startswith("s3."):
        bucket, _, key = path.lstrip("/").partition("/")
        return bool(bucket and key)
    return True


def _service_of(request: web.Request) -> str:
    scope = _SCOPE.search(request.headers.get("Authorization", ""))
    return scope.group("service") if scope else "unsigned"


def _describe(config: Any) -> dict[str, Any]:
    return {
        "FunctionName": config.name,
        "FunctionArn": config.arn,
        "Runtime": config.runtime,
        "Handler": config.handler,
        "Timeout": int(config.timeout_s),
        "MemorySize": config.memory_mb,
        "Architectures": [config.architecture],
        "Environment": {"Variables": dict(config.env)},
        "Version": "$LATEST",
        "State": "Active",
        "PackageType": "Zip",
    }
