"""`LocalRuntime`: the whole suite in one process — endpoint, moto, runner, pollers, engine,
scheduler — provisioned from the templates.

All state is in memory: stopping the runtime loses every bucket, queue, table and execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sluice.context import RUNTIME_STATE_FILE, STATUS_PAGE_PATH
from sluice.local import moto_patches
from sluice.local.endpoint import Endpoint
from sluice.local.errors import LocalRuntimeError, PortInUseError
from sluice.local.iam.enforcer import AccessDeniedError, Enforcer
from sluice.local.iam.ports import Access
from sluice.local.iam.principals import Credentials, PrincipalRegistry, service_principal
from sluice.local.iam.resources import ResourcePolicyRegistry
from sluice.local.poller import (
    MAPPING_ACTIONS,
    AuthorizedQueue,
    MappingConfig,
    MotoSqsQueue,
    QueueClient,
    SqsPoller,
)
from sluice.local.provisioner import Limits, Provisioner, ResourceReport, ScheduleSpec
from sluice.local.runner import (
    AsyncInvokeConfig,
    FunctionConfig,
    FunctionNotFound,
    FunctionRunner,
    InvokeResult,
)
from sluice.local.schedules import parse_schedule, scheduled_event
from sluice.local.schemas import SchemaRegistries
from sluice.local.targets import (
    TargetAccessDenied,
    TargetDispatcher,
    TargetError,
    TargetNotFound,
    describe_counts,
)
from sluice.local.template import ACCOUNT_ID, REGION, load_template

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AsyncExitStack

    from sluice.local.workflow.engine import WorkflowEngine
    from sluice.ops.statuspage import StatusPage

log = logging.getLogger("sluice.local")

STATE_FILE = RUNTIME_STATE_FILE
CLIENT_POOL_CONNECTIONS = 256
"""Connections per runtime client (provisioning, schedules, targets): botocore's default of 10
starved concurrent callers when the pollers still long-polled over HTTP."""
POLL_THREADS = 64
"""Threads for the pollers' long polls: one per concurrent polling loop, which never exceed
(functions x max concurrency)."""
ROLE_SESSION = "sluice-local"
"""Session name of the role sessions the runtime runs state machines, rule targets and schedules
with (a function's session is named after the function, as Lambda does)."""
PREWARM_PARALLEL = max(1, os.cpu_count() or 1)
"""Workers initialised at once by `prewarm` (an init phase is CPU-bound: one per core)."""


DEPLOY_DIR_ENV = "SLUICE_DEPLOY_DIR"
"""Replaces `<repo>/deploy` as the folder the default templates come from: a modified copy of
the templates (`make iam-proof` removes one statement at a time). Read at each provisioning."""
STATUS_PATH = STATUS_PAGE_PATH


def default_templates(repo_root: Path) -> list[Path]:
    """The deploy order: platform, every service, orchestration (those that exist), from
    `<repo>/deploy` or the folder `SLUICE_DEPLOY_DIR` names.

    Raises:
        LocalRuntimeError: `SLUICE_DEPLOY_DIR` names no folder.
    """
    override = os.environ.get(DEPLOY_DIR_ENV)
    deploy = Path(override) if override else repo_root / "deploy"
    if override and not deploy.is_dir():
        raise LocalRuntimeError(f"{DEPLOY_DIR_ENV}={override} is not a folder")
    ordered = [deploy / "platform.yaml", *sorted((deploy / "services").glob("*.yaml"))]
    ordered.append(deploy / "orchestration.yaml")
    return [p for p in ordered if p.is_file()]


def samconfig_overrides(template: Path, stage: str) -> dict[str, str]:
    """The `parameter_overrides` of the `samconfig.toml` environment `<stage>-…` whose build
    `template_file` is `template` (the file next to the template or one folder up, as in
    `deploy/`); empty when there is none. Raises LocalRuntimeError for a file that is not TOML."""
    import tomllib

    for folder in (template.parent, template.parent.parent):
        config_path = folder / "samconfig.toml"
        if not config_path.is_file():
            continue
        try:
            config = tomllib.loads(config_path.read_text("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise LocalRuntimeError(f"{config_path}: {exc}") from exc
        for env, sections in config.items():
            if not env.startswith(f"{stage}-") or not isinstance(sections, dict):
                continue
            build = sections.get("build", {}).get("parameters", {})
            built = build.get("template_file")
            if built and (folder / str(built)).resolve() == template.resolve():
                deploy = sections.get("deploy", {}).get("parameters", {})
                text = str(deploy.get("parameter_overrides", ""))
                return dict(item.split("=", 1) for item in text.split() if "=" in item)
    return {}


def port_holder(port: int) -> str | None:
    """Describe the process listening on 127.0.0.1:`port`, if it can be found."""
    import psutil

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return None
            try:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline())[:120]})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return None


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUseError (naming the holder) if `host:port` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUseError(port, port_holder(port)) from exc


@dataclass
class RuntimeOptions:
    """How to run: where, which templates, which stage, local caps."""

    repo_root: Path
    state_dir: Path
    port: int = 4566
    host: str = "127.0.0.1"
    stage: str = "dev"
    templates: list[Path] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    schedules_enabled: bool = True
    prewarm: bool = True
    """Start each polled function's workers (one per concurrent batch of its mappings) before
    `start()` returns, so the first burst does not queue behind cold starts."""
    iam: bool = True
    """Enforce IAM: every call is decided by its caller's role and the resource's policy
    (`sluice local up --no-iam` switches it off; roles and credentials are provisioned either
    way)."""


class _RunnerInvoker:
    """The workflow engine's `FunctionInvoker` over the function runner (no HTTP hop). The
    running execution's role must be allowed `lambda:InvokeFunction` on the function, as for an
    Invoke over the endpoint."""

    def __init__(self, runner: FunctionRunner, runtime: LocalRuntime) -> None:
        self.runner = runner
        self.runtime = runtime

    async def invoke(self, function_name_or_arn: str, payload: Any) -> Any:
        from sluice.local.workflow.ports import EXECUTION_ROLE, InvokeResult, ServiceError

        try:
            config = self.runner.functions[self.runner.resolve(function_name_or_arn)]
            role_arn = EXECUTION_ROLE.get()
            if role_arn:
                self.runtime.check_as_role(role_arn, "lambda:InvokeFunction", config.arn)
            result = await self.runner.invoke(function_name_or_arn, json.dumps(payload).encode())
        except FunctionNotFound as exc:
            raise ServiceError("Lambda.ResourceNotFoundException", str(exc)) from exc
        except AccessDeniedError as exc:
            raise ServiceError("Lambda.AccessDeniedException", str(exc)) from exc
        body = result.json()
        if result.function_error is None:
            return InvokeResult(payload=body)
        body = body if isinstance(body, dict) else {}
        return InvokeResult(
            error_type=str(body.get("errorType", "Lambda.Unknown")),
            error_message=str(body.get("errorMessage", "")),
            stack_trace=tuple(str(line) for line in body.get("stackTrace") or []),
        )


class LocalRuntime:
    """The local suite. `await start()`, then `await wait_stopped()`; `await stop()` ends it."""

    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options
        self.endpoint_url = f"http://{options.host}:{options.port}"
        self.state_dir = options.state_dir
        self.principals = PrincipalRegistry(ACCOUNT_ID)
        self.resource_policies = ResourcePolicyRegistry(ACCOUNT_ID, REGION, self.principals)
        self.schemas = SchemaRegistries()
        """The Schema Registry: provisioned from the templates, served by the endpoint."""
        self.runner = FunctionRunner(
            options.state_dir, self.endpoint_url, credentials=self._function_credentials
        )
        self.runner.destinations = self._send_to_destination
        self.runner.dead_letters = self._send_to_dead_letter
        self.enforcer = Enforcer(
            self.principals,
            self.resource_policies,
            enabled=options.iam,
            account=ACCOUNT_ID,
            region=REGION,
        )
        self.dispatcher: TargetDispatcher | None = None
        self.schedule_denials = 0
        self.destination_denials = 0
        self.pollers: dict[tuple[str, str], SqsPoller] = {}
        self.schedules: dict[str, tuple[ScheduleSpec, datetime]] = {}
        self.reports: list[ResourceReport] = []
        self.started_at = datetime.now(UTC)
        self._stopped = asyncio.Event()
        self._undo_patches: Any = None
        self._stack: AsyncExitStack | None = None
        self._clients: dict[str, Any] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._retries: set[asyncio.Task[Any]] = set()
        """Scheduled invocations being retried in the background."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self.engine: WorkflowEngine | None = None
        self.endpoint: Endpoint | None = None
        self._status_page: StatusPage | None = None
        self.provisioner: Provisioner | None = None
        self._provision_lock = asyncio.Lock()
        self._poll_pool = ThreadPoolExecutor(
            max_workers=POLL_THREADS, thread_name_prefix="sqs-poll"
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> list[ResourceReport]:
        """Start everything and provision the templates.

        Returns:
            The provisioning report.

        Raises:
            PortInUseError: the port is taken.
            ProvisioningError: a template the runtime cannot honour (the runtime is stopped).
        """
        from contextlib import AsyncExitStack

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from sluice.local.workflow.adapters import Boto3SdkCaller
        from sluice.local.workflow.engine import WorkflowEngine

        check_port_free(self.options.host, self.options.port)
        self._loop = asyncio.get_running_loop()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._undo_patches = moto_patches.apply()
        self.dispatcher = TargetDispatcher(
            self._invoke_from_thread,
            self._start_from_thread,
            ACCOUNT_ID,
            REGION,
            authorize=self._authorize_target,
            check_target=self._check_target,
        )
        moto_patches.set_dispatcher(self.dispatcher)
        self.engine = WorkflowEngine(
            invoker=_RunnerInvoker(self.runner, self),
            sdk=Boto3SdkCaller(
                endpoint_url=self.endpoint_url, region=REGION, credentials=self._role_credentials
            ),
            region=REGION,
            account=ACCOUNT_ID,
            authorize=self._denial_as_role,
        )
        self.endpoint = Endpoint(
            DomainDispatcherApplication(create_backend_app),
            self.runner,
            self._sfn,
            {
                "health": self._health,
                "state": self._state,
                "provision": self._provision_route,
                "trigger": self._trigger_route,
                "credentials": self._credentials_route,
                "shutdown": self._shutdown_route,
                "status": self._status_route,
                "status/": self._status_route,
            },
            self.options.host,
            self.options.port,
            enforcer=self.enforcer,
            schemas=self.schemas,
        )
        try:
            await self.endpoint.start()
        except OSError as exc:
            await self._teardown()
            raise PortInUseError(self.options.port, port_holder(self.options.port)) from exc
        import aioboto3

        self._stack = AsyncExitStack()
        session = aioboto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        from aiobotocore.config import AioConfig

        # Every poller loop holds an SQS connection for its long poll; with botocore's default
        # pool of 10, 4 functions x `--max-concurrency` loops starved each other's deletes and
        # the provisioner (`up --max-concurrency 4` hung before serving).
        config = AioConfig(max_pool_connections=CLIENT_POOL_CONNECTIONS)
        for service in (
            "s3",
            "sqs",
            "events",
            "dynamodb",
            "ssm",
            "kms",
            "logs",
            "sns",
            "iam",
            "glue",
            "athena",
        ):
            self._clients[service] = await self._stack.enter_async_context(
                session.client(service, endpoint_url=self.endpoint_url, config=config)
            )
        self.provisioner = Provisioner(
            self._clients.__getitem__,
            self,
            self.options.repo_root,
            self.options.limits,
            principals=self.principals,
            resource_policies=self.resource_policies,
            schemas=self.schemas,
        )
        self._tasks.append(asyncio.create_task(self._scheduler(), name="scheduler"))
        self._tasks.append(asyncio.create_task(self._reaper(), name="reaper"))
        try:
            reports = await self.provision()
        except BaseException:
            await self.stop()
            raise
        self._write_state()
        return reports

    async def provision(
        self, templates: list[Path] | None = None, parameters: dict[str, str] | None = None
    ) -> list[ResourceReport]:
        """Provision (or re-provision, idempotently) every template in order: `templates`
        when given (`up --template X` against a running runtime: X only, with `parameters`
        over the runtime's own), else the runtime's templates."""
        assert self.provisioner is not None
        async with self._provision_lock:
            overrides = {
                "Stage": self.options.stage,
                **self.options.parameters,
                **(parameters or {}),
            }
            reports: list[ResourceReport] = []
            templates = (
                templates or self.options.templates or default_templates(self.options.repo_root)
            )
            if not templates:
                raise LocalRuntimeError("no templates found (deploy/platform.yaml missing?)")
            for path in templates:
                stack = load_template(path, _stack_name(path, self.options.repo_root))
                params = stack.template.get("Parameters") or {}
                wanted = {k: v for k, v in overrides.items() if k in params}
                # What `sam deploy --config-env <stage>-<stack>` passes (the layer's SSM name).
                for name, value in samconfig_overrides(path, self.options.stage).items():
                    if name in params:
                        wanted.setdefault(name, value)
                for name, spec in params.items():
                    default = spec.get("Default")
                    if str(spec.get("Type", "")).startswith("AWS::SSM") and default:
                        # Service stacks default to /sluice/dev/...: follow the chosen stage.
                        wanted.setdefault(
                            name,
                            str(default).replace("/sluice/dev/", f"/sluice/{self.options.stage}/"),
                        )
                reports += await self.provisioner.provision(stack, wanted)
            await self.publish_contracts()
            self.reports = reports
            if self.options.prewarm:
                await self.prewarm()
            return reports

    async def publish_contracts(self) -> None:
        """Publish the checkout's data contracts to the processed bucket, as
        `sluice contracts publish --datasets` does on AWS: the functions read them from there
        (`sluice_shared.published_contracts`). Skipped when no platform stack is provisioned."""
        from sluice_shared.published_contracts import publish_plan

        ssm, s3 = self._clients["ssm"], self._clients["s3"]
        name = f"/sluice/{self.options.stage}/processed-bucket-name"
        try:
            bucket = (await ssm.get_parameter(Name=name))["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            return
        _, puts = publish_plan(self.options.repo_root / "contracts" / "datasets")
        for key, body in puts:
            await s3.put_object(Bucket=bucket, Key=key, Body=body)

    async def prewarm(self) -> dict[str, int]:
        """Start the workers the enabled event source mappings will use (their concurrent
        batches per function, capped by the function's worker limit), `PREWARM_PARALLEL` at a
        time so that no init phase runs into the runner's init limit on a busy machine.

        Returns:
            Workers started, by function name.
        """
        wanted: dict[str, int] = {}
        for poller in self.pollers.values():
            if poller.config.enabled:
                name = poller.config.function_name
                wanted[name] = wanted.get(name, 0) + poller.config.max_concurrency
        started: dict[str, int] = dict.fromkeys(wanted, 0)
        # Round-robin, one worker per function per round: every function gets its first warm
        # worker early, and at most PREWARM_PARALLEL init phases share the CPU at a time.
        for round_ in range(max(wanted.values(), default=0)):
            names = [n for n, count in wanted.items() if count > round_]
            for start in range(0, len(names), PREWARM_PARALLEL):
                chunk = names[start : start + PREWARM_PARALLEL]
                counts = await asyncio.gather(
                    *(self.runner.prewarm(n, round_ + 1) for n in chunk), return_exceptions=True
                )
                for name, count in zip(chunk, counts, strict=True):
                    if isinstance(count, int):
                        started[name] += count
        return started

    async def wait_stopped(self) -> None:
        """Block until `stop()` ran (Ctrl-C, `sluice local down`, or a control call)."""
        await self._stopped.wait()

    async def stop(self) -> None:
        """Stop pollers, workers, engine, endpoint; restore moto. Idempotent."""
        if self._stopped.is_set():
            return
        for task in [*self._tasks, *self._retries]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for poller in self.pollers.values():
            await poller.stop()
        # A long poll in flight ends within its wait (≤ 1 s); nobody waits for its answer.
        self._poll_pool.shutdown(wait=False, cancel_futures=True)
        await self.runner.close()
        if self.engine is not None:
            with contextlib.suppress(Exception):
                await self.engine.close()
        if self._stack is not None:
            await self._stack.aclose()
        await self._teardown()
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / STATE_FILE).unlink()
        self._stopped.set()

    async def _teardown(self) -> None:
        if self.endpoint is not None:
            await self.endpoint.stop()
        moto_patches.set_dispatcher(None)
        if self.dispatcher is not None:
            self.dispatcher.close()
        if self._undo_patches is not None:
            self._undo_patches()
            self._undo_patches = None

    def _write_state(self) -> None:
        doc = {
            "pid": os.getpid(),
            "port": self.options.port,
            "endpoint": self.endpoint_url,
            "stage": self.options.stage,
            "started_at": self.started_at.isoformat(),
            "state_dir": str(self.state_dir),
            "repo_root": str(self.options.repo_root.resolve()),
        }
        (self.state_dir / STATE_FILE).write_text(json.dumps(doc, indent=2))

    # ------------------------------------------------------------------ credentials

    def _function_credentials(self, config: FunctionConfig) -> dict[str, str]:
        # Lambda names the execution role's session after the function.
        return self.principals.issue(config.role_arn, config.name).env()

    def _role_credentials(self, role_arn: str) -> dict[str, str]:
        return self.principals.issue(role_arn, ROLE_SESSION).env()

    def credentials(self, name: str) -> Credentials:
        """The credentials the runtime issued for a function's role (by function name or ARN),
        or for a role (by name or ARN).

        Raises:
            LocalRuntimeError: no such function or role, or a function without a role.
        """
        try:
            config = self.runner.functions[self.runner.resolve(name)]
        except FunctionNotFound:
            role_arn = self.principals.role_arn(name)
            if role_arn is None:
                raise LocalRuntimeError(f"no function or role named {name}") from None
            return self.principals.issue(role_arn, ROLE_SESSION)
        if not config.role_arn:
            raise LocalRuntimeError(f"function {config.name} has no role")
        return self.principals.issue(config.role_arn, config.name)

    # ------------------------------------------------------------------ RuntimeSink

    async def register_function(self, config: FunctionConfig) -> None:
        """Provisioner hook: add or update a function."""
        await self.runner.register(config)

    async def register_invoke_config(self, function: str, config: AsyncInvokeConfig) -> None:
        """Provisioner hook: a function's `EventInvokeConfig`.

        Raises:
            FunctionNotFound: no such function.
        """
        self.runner.set_async_config(function, config)

    async def _send_to_destination(
        self, function: FunctionConfig, destination: str, record: dict[str, Any]
    ) -> None:
        """Send an asynchronous invocation's record to its destination as Lambda does, with the
        function's execution role (which needs `sqs:SendMessage`, `sns:Publish`,
        `events:PutEvents` or `lambda:InvokeFunction` on it)."""
        parts = destination.split(":")
        service = parts[2]
        action = _DESTINATION_ACTIONS[service]
        if function.role_arn:
            principal = self.principals.session(function.role_arn, function.name)
            try:
                self.enforcer.check(principal, Access(action, destination))
            except AccessDeniedError as exc:
                self.destination_denials += 1
                log.warning("destination %s of %s refused: %s", destination, function.name, exc)
                return
        body = json.dumps(record)
        if service == "lambda":
            self.runner.invoke_async(destination, body.encode())
            return
        success = record["requestContext"]["condition"] == "Success"

        def send() -> None:
            if service == "sqs":
                from moto.sqs.models import sqs_backends

                sqs_backends[parts[4]][parts[3]].send_message(
                    queue_name=parts[5], message_body=body
                )
            elif service == "sns":
                from moto.sns.models import sns_backends

                sns_backends[parts[4]][parts[3]].publish(message=body, arn=destination)
            elif service == "events":
                from moto.events.models import events_backends

                events_backends[parts[4]][parts[3]].put_events(
                    [
                        {
                            "Source": "lambda",
                            "DetailType": "Lambda Function Invocation Result - "
                            + ("Success" if success else "Failure"),
                            "Detail": body,
                            "Resources": [function.arn, destination],
                            "EventBusName": parts[5].split("/", 1)[1],
                        }
                    ]
                )

        pool = self.endpoint.pool if self.endpoint else None
        await asyncio.get_running_loop().run_in_executor(pool, send)

    async def _send_to_dead_letter(
        self, function: FunctionConfig, payload: bytes, result: InvokeResult | None
    ) -> None:
        """Send a failed asynchronous invocation's event, as it came, to the function's
        `DeadLetterConfig` queue or topic with Lambda's attributes (RequestID, ErrorCode,
        ErrorMessage), as the function's execution role
        (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html)."""
        target = function.dead_letter_arn
        parts = target.split(":")
        action = _DESTINATION_ACTIONS[parts[2]]
        if function.role_arn:
            principal = self.principals.session(function.role_arn, function.name)
            try:
                self.enforcer.check(principal, Access(action, target))
            except AccessDeniedError as exc:
                self.destination_denials += 1
                log.warning("dead-letter queue %s of %s refused: %s", target, function.name, exc)
                return
        body = result.json() if result is not None and result.payload else {}
        message = str(body.get("errorMessage", "")) if isinstance(body, dict) else ""
        attributes = {
            "RequestID": {"DataType": "String", "StringValue": result.request_id if result else ""},
            "ErrorCode": {
                "DataType": "Number",
                "StringValue": str(result.status_code if result else 200),
            },
            "ErrorMessage": {"DataType": "String", "StringValue": message[:1024] or "error"},
        }
        text = payload.decode() or "{}"

        def send() -> None:
            if parts[2] == "sqs":
                from moto.sqs.models import sqs_backends

                sqs_backends[parts[4]][parts[3]].send_message(
                    queue_name=parts[5], message_body=text, message_attributes=attributes
                )
            else:
                from moto.sns.models import sns_backends

                sns_backends[parts[4]][parts[3]].publish(
                    message=text, arn=target, message_attributes=attributes
                )

        pool = self.endpoint.pool if self.endpoint else None
        await asyncio.get_running_loop().run_in_executor(pool, send)

    def function_timeout(self, name_or_arn: str) -> float | None:
        """Provisioner hook: a registered function's `Timeout` (None: no such function)."""
        try:
            return self.runner.functions[self.runner.resolve(name_or_arn)].timeout_s
        except FunctionNotFound:
            return None

    async def register_mapping(self, config: MappingConfig, queue_url: str) -> None:
        """Provisioner hook: (re)start the poller of an SQS event source mapping.

        Raises:
            AccessDeniedError: the function's role may not receive, delete and read the queue's
                attributes.
        """
        key = (config.function_name, config.queue_arn)
        current = self.pollers.get(key)
        if current is not None:
            if current.config == config:
                return
            await current.stop()
        # The pollers are Lambda's side of the mapping: moto's SQS backend, in process, called
        # as the function's execution role (checked now, as CreateEventSourceMapping does, and
        # on every receive and delete).
        queue: QueueClient = MotoSqsQueue(config.queue_arn, self._poll_pool)
        function = self.runner.functions.get(config.function_name)
        if function is not None and function.role_arn:
            principal = self.principals.session(function.role_arn, function.name)
            for action in MAPPING_ACTIONS:
                self.enforcer.check(principal, Access(action, config.queue_arn))
            queue = AuthorizedQueue(queue, self._mapping_check(function, config.queue_arn))
        poller = SqsPoller(config, queue, self.runner)
        self.pollers[key] = poller
        poller.start()

    def _mapping_check(self, function: FunctionConfig, queue_arn: str) -> Callable[[str], None]:
        def check(action: str) -> None:
            principal = self.principals.session(function.role_arn, function.name)
            self.enforcer.check(principal, Access(action, queue_arn))

        return check

    async def register_state_machine(
        self, name: str, definition: str, role_arn: str, type_: str
    ) -> str:
        """Provisioner hook: create or update a state machine on the engine."""
        from sluice.local.workflow.errors import ApiError

        assert self.engine is not None
        try:
            record = self.engine.create_state_machine(name, definition, role_arn, type_)
        except ApiError as exc:
            if exc.type_name != "StateMachineAlreadyExists":
                raise LocalRuntimeError(f"state machine {name}: {exc.message}") from exc
            arn = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{name}"
            record = self.engine.update_state_machine(arn, definition, role_arn)
        return str(record.arn)

    async def register_schedule(self, spec: ScheduleSpec) -> None:
        """Provisioner hook: add or update a locally fired schedule."""
        current = self.schedules.get(spec.name)
        if current is not None and current[0] == spec:
            self.schedules[spec.name] = (spec, current[1])
            return
        first = parse_schedule(spec.expression).next_after(datetime.now(UTC))
        self.schedules[spec.name] = (spec, first)

    # ------------------------------------------------------------------ schedules

    async def _scheduler(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self.options.schedules_enabled:
                continue
            now = datetime.now(UTC)
            for name, (spec, due) in list(self.schedules.items()):
                if not spec.enabled or due > now:
                    continue
                self.schedules[name] = (spec, parse_schedule(spec.expression).next_after(now))
                try:
                    await self.fire(name, due)
                except Exception as exc:
                    log.warning("schedule %s failed to fire: %s", name, exc)

    async def fire(self, name: str, when: datetime | None = None) -> dict[str, Any]:
        """Fire a schedule (or any rule's targets) once, now.

        Raises:
            LocalRuntimeError: no schedule or rule of that name.
        """
        when = when or datetime.now(UTC)
        spec = self.schedules.get(name, (None, when))[0]
        if spec is not None and spec.kind == "scheduler":
            return await self._fire_scheduler(spec, when)
        bus = spec.bus if spec is not None else None
        return await asyncio.get_running_loop().run_in_executor(
            self.endpoint.pool if self.endpoint else None, self._fire_rule, name, bus, when
        )

    def _fire_rule(self, name: str, bus: str | None, when: datetime) -> dict[str, Any]:
        from moto.events.models import events_backends

        backend = events_backends[ACCOUNT_ID][REGION]
        buses = [backend.event_buses[bus]] if bus else list(backend.event_buses.values())
        for event_bus in buses:
            rule = event_bus.rules.get(name)
            if rule is None:
                continue
            event = scheduled_event(rule.arn, ACCOUNT_ID, REGION, when, str(uuid.uuid4()))
            assert moto_patches._dispatcher is not None
            moto_patches._dispatcher.deliver(rule, event)
            return {"fired": name, "kind": "rule", "targets": len(rule.targets)}
        raise LocalRuntimeError(f"no schedule or rule named {name}")

    async def _fire_scheduler(self, spec: ScheduleSpec, when: datetime) -> dict[str, Any]:
        """One invocation of an EventBridge Scheduler schedule, as the scheduler makes it
        (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-retry-policy.html,
        .../configuring-schedule-dlq.html): a refused call (a role that may not assume or act,
        a target that does not exist, an input the target refuses) goes to the target's
        `DeadLetterConfig` queue at once; any other failure is retried under the target's
        `RetryPolicy` (`MaximumRetryAttempts`, `MaximumEventAgeInSeconds` on the compressed
        clock of `sluice.local.targets.TIME_SCALE`), in the background, then dead-lettered.
        """
        invocation = _SchedulerInvocation(spec, when)
        fired: dict[str, Any] = {
            "fired": spec.name,
            "kind": "scheduler",
            "target": spec.target.get("Arn"),
        }
        outcome = await self._attempt_schedule(invocation)
        if outcome is None:
            return fired
        if outcome == "retrying":
            fired["retrying"] = True
            task = asyncio.create_task(self._retry_schedule(invocation), name=f"retry-{spec.name}")
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
            return fired
        fired["error"] = outcome
        if invocation.denied:
            fired["denied"] = outcome
        fired["dead_lettered"] = self._dead_letter_schedule(invocation, outcome, None)
        return fired

    async def _attempt_schedule(self, invocation: _SchedulerInvocation) -> str | None:
        """One attempt: None when delivered, "retrying" when it may be retried, else the error
        (`ERROR_CODE: message`) that sends it to the DLQ at once."""
        from sluice.local.workflow.errors import ApiError

        spec = invocation.spec
        payload = invocation.payload()
        try:
            await self._deliver_scheduler_target(spec, payload)
            return None
        except AccessDeniedError as exc:
            self.schedule_denials += 1
            invocation.denied = True
            log.warning("schedule %s: %s", spec.name, exc)
            invocation.error = ("AccessDeniedException", str(exc))
        except FunctionNotFound as exc:
            invocation.error = ("ResourceNotFoundException", str(exc))
        except ApiError as exc:
            code = (
                "ResourceNotFoundException"
                if exc.type_name == "StateMachineDoesNotExist"
                else exc.type_name
            )
            invocation.error = (code, exc.message)
        except Exception as exc:
            client_code = _client_error_code(exc)
            invocation.error = (client_code or type(exc).__name__, str(exc))
            if client_code is None or client_code in _RETRYABLE_CODES:
                return "retrying"
        log.warning("schedule %s failed: %s: %s", spec.name, *invocation.error)
        return f"{invocation.error[0]}: {invocation.error[1]}"

    async def _retry_schedule(self, invocation: _SchedulerInvocation) -> None:
        from sluice.local.targets import RETRY_BASE_S, RETRY_CAP_S, TIME_SCALE

        policy = invocation.spec.target.get("RetryPolicy") or {}
        max_retries = int(policy.get("MaximumRetryAttempts", 185))
        max_age = float(policy.get("MaximumEventAgeInSeconds", 86_400))
        while True:
            delay = min(RETRY_CAP_S, RETRY_BASE_S * 2**invocation.retries)
            age_then = (time.monotonic() + delay - invocation.started) * TIME_SCALE
            if invocation.retries >= max_retries:
                exhausted = "MaximumRetryAttempts"
                break
            if age_then > max_age:
                exhausted = "MaximumEventAgeInSeconds"
                break
            await asyncio.sleep(delay)
            invocation.retries += 1
            outcome = await self._attempt_schedule(invocation)
            if outcome is None:
                return
            if outcome != "retrying":
                self._dead_letter_schedule(invocation, outcome, None)
                return
        code, message = invocation.error
        self._dead_letter_schedule(invocation, f"{code}: {message}", exhausted)

    async def _deliver_scheduler_target(self, spec: ScheduleSpec, payload: str) -> None:
        """Deliver as EventBridge Scheduler does: assume the target's `RoleArn` (its trust
        policy must trust `scheduler.amazonaws.com`), then call the target as that role.

        Raises:
            AccessDeniedError: the role is missing, does not trust the scheduler, or may not
                call the target.
            FunctionNotFound: a Lambda target that does not exist.
            ApiError: StartExecution refused (a missing state machine, an input not JSON).
        """
        target = spec.target
        arn = str(target["Arn"])
        service = arn.split(":")[2]
        action = _SCHEDULER_ACTIONS.get(service, f"{service}:*")
        self.assume_and_check(
            "scheduler.amazonaws.com",
            str(target.get("RoleArn") or ""),
            action,
            arn,
            {"aws:SourceArn": _schedule_arn(spec.name), "aws:SourceAccount": ACCOUNT_ID},
        )
        if service == "states":
            assert self.engine is not None
            self.engine.start_execution(arn, input_text=payload)
        elif service == "lambda":
            self.runner.invoke_async(arn, payload.encode())
        elif service == "sqs":
            url = (await self._clients["sqs"].get_queue_url(QueueName=arn.split(":")[5]))[
                "QueueUrl"
            ]
            await self._clients["sqs"].send_message(QueueUrl=url, MessageBody=payload)

    def _dead_letter_schedule(
        self, invocation: _SchedulerInvocation, error: str, exhausted: str | None
    ) -> bool:
        """Send an undeliverable scheduled invocation to the target's DLQ with the attributes
        EventBridge Scheduler sets (the role must be allowed to send there, as on AWS).
        Returns whether it was dead-lettered."""
        from moto.sqs.models import sqs_backends

        spec = invocation.spec
        dlq = str((spec.target.get("DeadLetterConfig") or {}).get("Arn") or "")
        if not dlq:
            return False
        try:
            self.check_as_role(str(spec.target.get("RoleArn") or ""), "sqs:SendMessage", dlq)
        except AccessDeniedError as dlq_exc:
            log.warning("schedule %s: dead-letter queue refused: %s", spec.name, dlq_exc)
            return False
        code, _, message = error.partition(": ")
        attributes = {
            "ERROR_CODE": code,
            "ERROR_MESSAGE": message[:256] or code,
            "EXECUTION_ID": invocation.execution_id,
            "IS_PAYLOAD_TRUNCATED": "false",
            "RETRY_ATTEMPTS": str(invocation.retries),
            "SCHEDULED_TIME": invocation.scheduled_time,
            "SCHEDULE_ARN": _schedule_arn(spec.name),
            "TARGET_ARN": str(spec.target["Arn"]),
        }
        if exhausted:
            attributes["EXHAUSTED_RETRY_CONDITION"] = exhausted
        parts = dlq.split(":")
        try:
            sqs_backends[parts[4]][parts[3]].send_message(
                queue_name=parts[5],
                message_body=invocation.payload(),
                message_attributes={
                    k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
                },
            )
        except Exception as exc:
            log.error("schedule %s: dead-letter delivery failed: %s", spec.name, exc)
            return False
        return True

    # ------------------------------------------------------------------ authorization

    def check_as_role(self, role_arn: str, action: str, resource: str) -> None:
        """Check that a session of `role_arn` (one the runtime acts as: a state machine's, a
        rule target's, a schedule's) may perform `action` on `resource`.

        Raises:
            AccessDeniedError: it may not (counted by the enforcer).
        """
        principal = self.principals.session(role_arn, ROLE_SESSION)
        self.enforcer.check(principal, Access(action, resource))

    def _denial_as_role(self, role_arn: str, action: str, resource: str) -> str | None:
        """`check_as_role` for the workflow engine: the denial message, or None if allowed."""
        try:
            self.check_as_role(role_arn, action, resource)
        except AccessDeniedError as exc:
            return str(exc)
        return None

    def assume_and_check(
        self,
        service: str,
        role_arn: str,
        action: str,
        resource: str,
        context: dict[str, str],
    ) -> None:
        """What a service does to call a target with a role: `sts:AssumeRole` as `service`
        (the role's trust policy decides), then `action` as the role.

        Raises:
            AccessDeniedError: no role, a trust policy that does not trust `service`, or a role
                without the permission.
        """
        if not role_arn:
            role_arn = f"arn:aws:iam::{ACCOUNT_ID}:role/missing-RoleArn"
        trust = Access("sts:AssumeRole", role_arn, context)
        self.enforcer.check(service_principal(service, ACCOUNT_ID), trust)
        self.check_as_role(role_arn, action, resource)

    def _authorize_target(self, rule_arn: str, target: dict[str, Any]) -> None:
        """EventBridge's permission to deliver to one rule target (see `sluice.local.targets`).

        Raises:
            TargetAccessDenied: a resource policy, the role's trust or its policies refuse.
        """
        arn = str(target["Arn"])
        service = arn.split(":")[2]
        context = {"aws:SourceArn": rule_arn, "aws:SourceAccount": ACCOUNT_ID}
        try:
            if service == "states" or target.get("RoleArn"):
                action = "states:StartExecution" if service == "states" else "events:PutEvents"
                self.assume_and_check(
                    "events.amazonaws.com", str(target.get("RoleArn") or ""), action, arn, context
                )
            elif service == "sqs":
                self.enforcer.check(
                    service_principal("events.amazonaws.com", ACCOUNT_ID),
                    Access("sqs:SendMessage", arn, context),
                )
            elif service == "lambda":
                function_arn = ":".join(arn.split(":")[:7])
                self.enforcer.check(
                    service_principal("events.amazonaws.com", ACCOUNT_ID),
                    Access("lambda:InvokeFunction", function_arn, context),
                )
        except AccessDeniedError as exc:
            raise TargetAccessDenied(str(exc)) from exc

    # ------------------------------------------------------------------ cross-thread hooks

    def _check_target(self, target: dict[str, Any]) -> None:
        """A Lambda or Step Functions rule target must exist (EventBridge dead-letters an event
        for a deleted target at once, without retries).

        Raises:
            TargetNotFound: no such function or state machine.
        """
        from sluice.local.workflow.errors import ApiError

        arn = str(target["Arn"])
        service = arn.split(":")[2]
        try:
            if service == "lambda":
                self.runner.resolve(arn)
            elif service == "states" and self.engine is not None:
                self.engine.state_machine(arn)
        except FunctionNotFound as exc:
            raise TargetNotFound(str(exc)) from exc
        except ApiError as exc:
            raise TargetNotFound(exc.message) from exc

    def _invoke_from_thread(self, arn: str, payload: bytes) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._invoke_async, arn, payload)

    def _invoke_async(self, arn: str, payload: bytes) -> None:
        try:
            self.runner.invoke_async(arn, payload)
        except FunctionNotFound as exc:
            # Deleted between the check and the invoke; EventBridge would drop it the same way.
            log.warning("rule target %s: %s", arn, exc)

    def _start_from_thread(self, arn: str, payload: str) -> None:
        """StartExecution for a rule target, from a moto call (on the pool or, for the calls the
        endpoint runs inline, on the loop) or a timer thread: waits for the engine's answer so
        that a refusal (an input that is not JSON, a missing state machine) fails the delivery
        and reaches the target's DLQ.

        Raises:
            TargetError: the engine refused the execution.
        """
        from sluice.local.workflow.errors import ApiError

        assert self._loop is not None

        async def start() -> None:
            assert self.engine is not None
            self.engine.start_execution(arn, input_text=payload)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        try:
            if running is self._loop:
                # Already on the loop: the engine answers at once (the execution is a task).
                assert self.engine is not None
                self.engine.start_execution(arn, input_text=payload)
            else:
                asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=30)
        except ApiError as exc:
            error: TargetError = (
                TargetNotFound(exc.message)
                if exc.type_name == "StateMachineDoesNotExist"
                else TargetError(f"{exc.type_name}: {exc.message}")
            )
            raise error from exc

    async def _sfn(self, target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        from sluice.local.workflow import api

        assert self.engine is not None
        return await api.handle(self.engine, target, body)

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(60)
            await self.runner.reap_idle()

    # ------------------------------------------------------------------ control API

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "service": "sluice-local",
                "pid": os.getpid(),
                "port": self.options.port,
                "stage": self.options.stage,
                "started_at": self.started_at.isoformat(),
                "repo_root": str(self.options.repo_root.resolve()),
                "state_dir": str(self.state_dir.resolve()),
            }
        )

    @property
    def status_url(self) -> str:
        """The status page this runtime serves (see `sluice.ops.statuspage`)."""
        return self.endpoint_url + STATUS_PATH

    async def _status_route(self, request: web.Request) -> web.Response:
        if self._status_page is None:
            from datetime import timedelta

            from sluice.context import CliContext
            from sluice.ops.statuspage import stage_page

            ctx = CliContext.build(
                endpoint_url=self.endpoint_url,
                profile=None,
                region=REGION,
                stage=self.options.stage,
                as_json=False,
            )
            self._status_page = stage_page(ctx, timedelta(hours=1), base=STATUS_PATH)
        # The page reads the stage through this very endpoint (the same calls as `sluice
        # status` and `sluice why`), so it runs on a thread while this loop serves them.
        code, content_type, body = await asyncio.to_thread(
            self._status_page.respond, request.path_qs
        )
        headers = {"Content-Type": content_type, "Cache-Control": "no-store"}
        return web.Response(status=code, body=body, headers=headers)

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.describe())

    def describe(self) -> dict[str, Any]:
        """Everything `status-lite` shows: resources, functions, pollers, schedules."""
        return {
            "endpoint": self.endpoint_url,
            "stage": self.options.stage,
            "pid": os.getpid(),
            "uptime_s": round((datetime.now(UTC) - self.started_at).total_seconds(), 1),
            "requests": self.endpoint.requests if self.endpoint else 0,
            "requests_by_action": dict(self.endpoint.requests_by_action) if self.endpoint else {},
            "requests_by_caller": (
                {k: dict(v) for k, v in self.endpoint.requests_by_caller.items()}
                if self.endpoint
                else {}
            ),
            "resources": [asdict(r) for r in self.reports],
            "iam": {
                **self.enforcer.describe(),
                "roles_with_sessions": sorted({c.role_arn for c in self.principals.issued()}),
                "resource_policies": self.resource_policies.describe(),
                "rule_targets": describe_counts(self.dispatcher) if self.dispatcher else {},
                "schedule_denials": self.schedule_denials,
                "destination_denials": self.destination_denials,
            },
            "functions": {
                name: {
                    **stats,
                    "memory_mb": self.runner.functions[name].memory_mb,
                    "timeout_s": self.runner.functions[name].timeout_s,
                    "env": dict(self.runner.functions[name].env),
                }
                for name, stats in self.runner.stats().items()
            },
            "pollers": [
                {
                    "function": p.config.function_name,
                    "queue_arn": p.config.queue_arn,
                    "batch_size": p.config.batch_size,
                    "concurrency": p.config.max_concurrency,
                    "batches": p.batches,
                    "deleted": p.messages_deleted,
                    "failed": p.messages_failed,
                    "redelivered": p.messages_redelivered,
                }
                for p in self.pollers.values()
            ],
            "schedules": [
                {
                    "name": spec.name,
                    "expression": spec.expression,
                    "enabled": spec.enabled,
                    "kind": spec.kind,
                    "next": due.isoformat(),
                }
                for spec, due in self.schedules.values()
            ],
        }

    async def _provision_route(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        body = body if isinstance(body, dict) else {}
        templates = [Path(str(t)) for t in body.get("templates") or []]
        missing = [str(t) for t in templates if not t.is_file()]
        if missing:
            return web.json_response({"error": f"no such template: {missing[0]}"}, status=400)
        parameters = {str(k): str(v) for k, v in (body.get("parameters") or {}).items()}
        try:
            reports = await self.provision(templates or None, parameters)
        except LocalRuntimeError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        recycled = await self.runner.recycle() if body.get("recycle") is True else 0
        return web.json_response({"resources": [asdict(r) for r in reports], "recycled": recycled})

    async def _trigger_route(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            result = await self.fire(str(body["name"]))
        except LocalRuntimeError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.json_response(result)

    async def _credentials_route(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        name = str(body.get("name") or request.query.get("name", ""))
        try:
            creds = self.credentials(name)
        except LocalRuntimeError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.json_response(
            {
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key,
                "SessionToken": creds.session_token,
                "Expiration": creds.expiration.isoformat(),
                "RoleArn": creds.role_arn,
                "AssumedRoleArn": creds.session_arn,
            }
        )

    async def _shutdown_route(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        # Answer first; stopping closes this very listener.
        loop.call_later(0.1, lambda: loop.create_task(self.stop()))
        return web.json_response({"stopping": True, "pid": os.getpid()})


def _stack_name(path: Path, repo_root: Path) -> str:
    try:
        rel = path.resolve().relative_to(repo_root.resolve())
    except ValueError:
        return path.stem
    parts = [p for p in rel.with_suffix("").parts if p not in ("deploy",)]
    return "-".join(parts) or path.stem


_DESTINATION_ACTIONS = {
    "sqs": "sqs:SendMessage",
    "sns": "sns:Publish",
    "events": "events:PutEvents",
    "lambda": "lambda:InvokeFunction",
}
"""The action a function's role needs on an asynchronous invocation's destination."""

_SCHEDULER_ACTIONS = {
    "states": "states:StartExecution",
    "lambda": "lambda:InvokeFunction",
    "sqs": "sqs:SendMessage",
}
"""The action EventBridge Scheduler's role needs on its target, by service."""


def _schedule_arn(name: str) -> str:
    return f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/default/{name}"


@dataclass
class _SchedulerInvocation:
    """One scheduled invocation and its retry state."""

    spec: ScheduleSpec
    when: datetime
    execution_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)
    retries: int = 0
    denied: bool = False
    error: tuple[str, str] = ("", "")

    @property
    def scheduled_time(self) -> str:
        return self.when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def payload(self) -> str:
        """The target's `Input` with the scheduler's context attributes substituted."""
        template = self.spec.target.get("Input")
        if template is None:
            return "{}"
        values = {
            "aws.scheduler.scheduled-time": self.scheduled_time,
            "aws.scheduler.execution-id": self.execution_id,
            "aws.scheduler.attempt-number": str(self.retries + 1),
            "aws.scheduler.schedule-arn": _schedule_arn(self.spec.name),
        }
        text = str(template)
        for key, value in values.items():
            text = text.replace(f"<{key}>", value)
        return text


_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)
"""Errors of a target call the scheduler retries (others go to the DLQ at once)."""


def _client_error_code(exc: Exception) -> str | None:
    """The AWS error code of a botocore `ClientError`, else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or "") or None
    return None
