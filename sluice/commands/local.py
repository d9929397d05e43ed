"""`sluice local …`: the whole deployed suite on this machine (no AWS, no Docker).

sluice local up [--detach]      bring the suite up from deploy/*.yaml on 127.0.0.1:4566
sluice local down               stop a detached runtime
sluice local run FILE…|--sample upload, follow every file to a terminal state, summarise
sluice local trigger NAME       fire a schedule (or any rule's targets) once, now
sluice local status-lite        functions, pollers and schedules of the running runtime
sluice local credentials NAME   `export AWS_...` lines: act as a function's role (or a role)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import click

from sluice.context import LOCAL_PORT, CliContext, local_port_default
from sluice.local.errors import LocalRuntimeError, RuntimeNotRunning

DEFAULT_PORT = LOCAL_PORT


def repo_root() -> Path:
    """The project checkout this CLI runs from (templates, samples, services live there)."""
    here = Path(__file__).resolve().parents[2]
    if (here / "deploy").is_dir():
        return here
    return Path.cwd()


def _state_dir(value: str | None) -> Path:
    return Path(value).resolve() if value else repo_root() / ".sluice"


def _call(port: int, action: str, body: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    """Call the runtime's control API; raises RuntimeNotRunning when nothing answers."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_sluice/{action}",
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        doc = json.loads(exc.read() or b"{}")
        raise LocalRuntimeError(str(doc.get("error") or doc.get("message") or exc)) from exc
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as exc:
        raise RuntimeNotRunning(f"no sluice local runtime answers on 127.0.0.1:{port}") from exc


def running(port: int) -> dict[str, Any] | None:
    """The health document of a sluice runtime on `port`, or None."""
    try:
        doc = _call(port, "health", timeout=2.0)
    except LocalRuntimeError:
        return None
    return doc if isinstance(doc, dict) and doc.get("service") == "sluice-local" else None


def _port(ctx: click.Context, port: int | None) -> int:
    """The runtime port this command acts on: `CliContext.local_port`, the one resolution
    every command shares (--port, else --endpoint-url, else SLUICE_LOCAL_PORT, else 4566)."""
    obj = ctx.find_root().obj
    if isinstance(obj, CliContext):
        return obj.local_port(port)
    return port if port is not None else local_port_default()


def _down_command(port: int) -> str:
    """The `local down` a user types for the runtime on `port` (its port named unless default)."""
    return "sluice local down" + ("" if port == local_port_default() else f" --port {port}")


def other_checkout(health: dict[str, Any]) -> str | None:
    """The checkout a running runtime serves when it is not this one, else None."""
    served = health.get("repo_root")
    if not isinstance(served, str) or not served:
        return None
    return None if Path(served).resolve() == repo_root().resolve() else served


def refuse_other_checkout(health: dict[str, Any], port: int) -> None:
    """A usage error naming both checkouts when the runtime on `port` serves another one."""
    served = other_checkout(health)
    if served is None:
        return
    raise click.UsageError(
        f"the sluice local runtime on 127.0.0.1:{port} serves another checkout: {served} "
        f"(this is {repo_root()}). Stop it (`sluice local down --port {port}`) or use another "
        "port (`--port N`, or SLUICE_LOCAL_PORT=N for every command)"
    )


def print_report(resources: list[dict[str, Any]]) -> None:
    """Summarise a provisioning report: counts, emulated resources, everything skipped."""
    by_action: dict[str, int] = defaultdict(int)
    for res in resources:
        by_action[res["action"]] += 1
    click.echo(
        "resources: "
        + ", ".join(f"{count} {action}" for action, count in sorted(by_action.items()))
    )
    for res in resources:
        if res["action"] == "emulated":
            click.echo(f"  emulated  {res['physical_id']:<40} {res['type']}  {res['note']}")
    skipped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for res in resources:
        if res["action"] == "skipped":
            skipped[(res["type"], res["note"])].append(f"{res['stack']}/{res['logical_id']}")
    for (rtype, reason), ids in sorted(skipped.items()):
        click.echo(f"  skipped   {len(ids):>3} x {rtype}: {reason}")


@click.group("local")
def command() -> None:
    """The whole suite on this machine: one endpoint, the templates' resources, no AWS."""


_port_option = click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Runtime port on 127.0.0.1 (default: the port of --endpoint-url, else "
    f"SLUICE_LOCAL_PORT, else {DEFAULT_PORT}).",
)
_state_option = click.option(
    "--state-dir", default=None, help="Logs and the pid file (default: <repo>/.sluice)."
)


@command.command("up")
@_port_option
@_state_option
@click.option(
    "--template",
    "templates",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Provision these templates, in order (default: deploy/platform.yaml, "
    "deploy/services/*.yaml, deploy/orchestration.yaml).",
)
@click.option("--param", "params", multiple=True, help="Template parameter override KEY=VALUE.")
@click.option("--detach", is_flag=True, help="Run in the background; stop with `local down`.")
@click.option(
    "--max-concurrency",
    type=int,
    default=2,
    show_default=True,
    help="Cap on an event source mapping's concurrent batches (one laptop, not a region).",
)
@click.option("--no-schedules", is_flag=True, help="Do not fire schedules on their clock.")
@click.option(
    "--no-prewarm",
    is_flag=True,
    help="Do not start the polled functions' workers at up (first events then pay cold starts).",
)
@click.option(
    "--no-iam",
    is_flag=True,
    help="Do not enforce IAM (roles and resource policies are still provisioned; every call is "
    "allowed).",
)
@click.option("--startup-timeout", type=float, default=120.0, show_default=True)
@click.pass_context
def up(
    ctx: click.Context,
    port: int | None,
    state_dir: str | None,
    templates: tuple[Path, ...],
    params: tuple[str, ...],
    detach: bool,
    max_concurrency: int,
    no_schedules: bool,
    no_prewarm: bool,
    no_iam: bool,
    startup_timeout: float,
) -> None:
    """Bring the suite up (foreground: Ctrl-C stops it). Re-running re-provisions in place."""
    stage = _stage(ctx)
    port = _port(ctx, port)
    health = running(port)
    if health:
        refuse_other_checkout(health, port)
        _refuse_changes_to_running(ctx, health, port, stage)
        body: dict[str, Any] = {
            "templates": [str(t.resolve()) for t in templates],
            "parameters": dict(_parse_param(p) for p in params),
        }
        try:
            doc = _call(port, "provision", body, timeout=startup_timeout)
        except LocalRuntimeError as exc:
            raise click.ClickException(str(exc)) from exc
        which = ", ".join(t.name for t in templates) if templates else "its templates"
        click.echo(f"sluice local is already running on 127.0.0.1:{port}; provisioned {which}")
        print_report(doc["resources"])
        click.echo(status_page_line(port))
        return
    directory = _state_dir(state_dir)
    overrides = dict(_parse_param(p) for p in params)
    if detach:
        args = ["--stage", stage, "local", "up", "--port", str(port), "--state-dir", str(directory)]
        for template in templates:
            args += ["--template", str(template.resolve())]
        for param in params:
            args += ["--param", param]
        args += ["--max-concurrency", str(max_concurrency)]
        if no_schedules:
            args.append("--no-schedules")
        if no_prewarm:
            args.append("--no-prewarm")
        if no_iam:
            args.append("--no-iam")
        start_detached(args, directory, port, startup_timeout)
        down = _down_command(port)
        click.echo(f"sluice local is up on http://127.0.0.1:{port} (detached; `{down}`)")
        print_report(_call(port, "state")["resources"])
        click.echo(status_page_line(port))
        return
    from sluice.local.provisioner import Limits
    from sluice.local.runtime import RuntimeOptions

    options = RuntimeOptions(
        repo_root=repo_root(),
        state_dir=directory,
        port=port,
        stage=stage,
        templates=[t.resolve() for t in templates],
        parameters=overrides,
        limits=Limits(max_concurrency=max_concurrency),
        schedules_enabled=not no_schedules,
        prewarm=not no_prewarm,
        iam=not no_iam,
    )
    try:
        asyncio.run(_serve(options))
    except LocalRuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


_FIXED_AT_START = ("max_concurrency", "no_schedules", "no_prewarm", "no_iam")
"""`up` options a running runtime was started with and cannot change (`--detach` is not one: a
runtime already up is what it asks for, so `up --detach` re-provisions it like `up`)."""


def _refuse_changes_to_running(
    ctx: click.Context, health: dict[str, Any], port: int, stage: str
) -> None:
    """A usage error when `up` against a running runtime asks for what only a new runtime can
    be: another stage, state dir, IAM mode, concurrency cap, schedules or pre-warming."""
    given = [
        name
        for name in _FIXED_AT_START
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]
    wanted_dir, used_dir = ctx.params.get("state_dir"), health.get("state_dir")
    if wanted_dir and used_dir and Path(wanted_dir).resolve() != Path(used_dir).resolve():
        given.insert(0, f"state dir {wanted_dir} (it uses {used_dir})")
    root = ctx.find_root()
    stage_given = root.get_parameter_source("stage") in (
        click.core.ParameterSource.COMMANDLINE,
        click.core.ParameterSource.ENVIRONMENT,
    )
    if stage_given and health.get("stage") not in (None, stage):
        given.insert(0, f"stage {stage} (it runs {health['stage']})")
    if given:
        options = ", ".join(f"--{g.replace('_', '-')}" if " " not in g else g for g in given)
        raise click.UsageError(
            f"the runtime on 127.0.0.1:{port} is already running; {options} cannot change it. "
            f"Stop it first (`sluice local down --port {port}`), or run `up` with `--template` "
            "and `--param` only to provision templates into it"
        )


def status_page_line(port: int) -> str:
    """Where the runtime serves its status page (files, rows, throughput, `why` per file)."""
    from sluice.context import STATUS_PAGE_PATH

    return f"status page: http://127.0.0.1:{port}{STATUS_PAGE_PATH}"


async def _serve(options: Any) -> None:
    from sluice.local.runtime import LocalRuntime

    runtime = LocalRuntime(options)
    reports = await runtime.start()
    from dataclasses import asdict

    print_report([asdict(r) for r in reports])
    click.echo(
        f"sluice local is up on {runtime.endpoint_url} (stage {options.stage}); "
        f"logs in {options.state_dir / 'logs'}; Ctrl-C stops it (all state is in memory)"
    )
    click.echo(status_page_line(options.port))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: loop.create_task(runtime.stop()))
    await runtime.wait_stopped()
    click.echo("sluice local stopped")


def start_detached(args: list[str], state_dir: Path, port: int, timeout: float) -> int:
    """Start `sluice <args>` in the background and wait until its endpoint answers.

    Returns:
        The background process id.

    Raises:
        click.ClickException: it exited or did not come up in time (with its log's tail).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "runtime.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from sluice.cli import main; main()", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(repo_root()),
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(
                f"sluice local up exited with {proc.returncode}:\n{_tail(log_path)}"
            )
        health = running(port)
        if health and health.get("pid") == proc.pid and (state_dir / "runtime.json").exists():
            return proc.pid
        time.sleep(0.2)
    proc.terminate()
    raise click.ClickException(f"sluice local up did not come up in {timeout:.0f} s")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@command.command("down")
@_port_option
@_state_option
@click.option("--timeout", type=float, default=30.0, show_default=True)
@click.pass_context
def down(ctx: click.Context, port: int | None, state_dir: str | None, timeout: float) -> None:
    """Stop the runtime on --port (all its state is lost)."""
    import psutil

    port = _port(ctx, port)
    health = running(port)
    pid: int | None = health.get("pid") if health else None
    if pid is not None:
        _shutdown_and_wait(port, timeout)
        click.echo(f"sluice local stopped (pid {pid})")
        return
    if pid is None:
        state_file = _state_dir(state_dir) / "runtime.json"
        if state_file.exists():
            doc = json.loads(state_file.read_text())
            if int(doc.get("port", port)) != port:
                click.echo(
                    f"sluice local is not running on 127.0.0.1:{port} "
                    f"({state_file} names port {doc.get('port')})"
                )
                return
            pid = int(doc["pid"])
            if not psutil.pid_exists(pid):
                state_file.unlink()
                click.echo("sluice local was not running (stale state file removed)")
                return
        else:
            click.echo(f"sluice local is not running on 127.0.0.1:{port}")
            return
    os.kill(pid, signal.SIGTERM)
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
    click.echo(f"sluice local stopped (pid {pid})")


def _shutdown_and_wait(port: int, timeout: float) -> None:
    """Ask the runtime on `port` to stop and wait for its process to exit (SIGKILL after)."""
    import psutil

    health = running(port)
    if health is None:
        return
    pid = int(health["pid"])
    try:
        _call(port, "shutdown", {})
    except LocalRuntimeError:
        os.kill(pid, signal.SIGTERM)
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)


@command.command("trigger")
@click.argument("name")
@_port_option
@click.pass_context
def trigger(ctx: click.Context, name: str, port: int | None) -> None:
    """Fire the schedule or rule NAME once, now (its targets get a Scheduled Event)."""
    port = _port(ctx, port)
    try:
        doc = _call(port, "trigger", {"name": name}, timeout=30)
    except LocalRuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"fired {doc['fired']} ({doc['kind']})")


@command.command("credentials")
@click.argument("name")
@_port_option
@click.pass_context
def credentials(ctx: click.Context, name: str, port: int | None) -> None:
    """Print `export AWS_ACCESS_KEY_ID=...` lines of the credentials the runtime issued for the
    role of function NAME (or for the role NAME): `eval "$(sluice local credentials NAME)"`, then
    the AWS CLI acts as that function, and its role's policies decide every call."""
    port = _port(ctx, port)
    try:
        doc = _call(port, "credentials", {"name": name})
    except LocalRuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"# {doc['AssumedRoleArn']} (role {doc['RoleArn']}), expires {doc['Expiration']}")
    click.echo(f"export AWS_ACCESS_KEY_ID={doc['AccessKeyId']}")
    click.echo(f"export AWS_SECRET_ACCESS_KEY={doc['SecretAccessKey']}")
    click.echo(f"export AWS_SESSION_TOKEN={doc['SessionToken']}")


@command.command("status-lite")
@_port_option
@click.pass_context
def status_lite(ctx: click.Context, port: int | None) -> None:
    """Functions (warm workers, invocations, errors), pollers and schedules of the runtime."""
    port = _port(ctx, port)
    try:
        state = _call(port, "state")
    except LocalRuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    if getattr(ctx.obj, "as_json", False):
        click.echo(json.dumps(state, indent=2))
        return
    click.echo(f"{state['endpoint']}  stage {state['stage']}  up {state['uptime_s']} s")
    iam = state.get("iam") or {}
    if iam:
        enforced = "enforced" if iam.get("enabled") else "not enforced (--no-iam)"
        click.echo(f"IAM {enforced}: {iam.get('denials', 0)} denial(s) (listed by sluice status)")
    click.echo(f"{'function':<40} {'warm':>4} {'busy':>4} {'cold':>4} {'calls':>6} {'errors':>6}")
    for name, fn in sorted(state["functions"].items()):
        click.echo(
            f"{name:<40} {fn['warm']:>4} {fn['busy']:>4} {fn['cold_starts']:>4} "
            f"{fn['invocations']:>6} {fn['errors']:>6}"
        )
    for poller in state["pollers"]:
        queue = poller["queue_arn"].rsplit(":", 1)[-1]
        click.echo(
            f"poller {queue} -> {poller['function']}: batch {poller['batch_size']}, "
            f"x{poller['concurrency']}, {poller['batches']} batches, {poller['deleted']} deleted, "
            f"{poller.get('failed', 0)} failed, {poller.get('redelivered', 0)} redelivered"
        )
    for sched in state["schedules"]:
        flag = "" if sched["enabled"] else " (disabled)"
        click.echo(f"schedule {sched['name']}: {sched['expression']}{flag}, next {sched['next']}")


@command.command("run")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sample", is_flag=True, help="Every file under samples/<dataset>/.")
@click.option("--dataset", default=None, help="Dataset (key prefix) for FILEs not in samples/.")
@_port_option
@_state_option
@click.option("--timeout", type=float, default=600.0, show_default=True)
@click.option("--keep-up", is_flag=True, help="Leave a runtime this command started running.")
@click.option(
    "--fresh",
    is_flag=True,
    help="Restart a runtime of this checkout already on the port, so the run starts from "
    "empty buckets and ledger (another checkout's runtime is still refused).",
)
@click.option(
    "--no-iam",
    is_flag=True,
    help="Start the runtime (when this command starts one) without IAM enforcement.",
)
@click.pass_context
def run(
    ctx: click.Context,
    files: tuple[Path, ...],
    sample: bool,
    dataset: str | None,
    port: int | None,
    state_dir: str | None,
    timeout: float,
    keep_up: bool,
    fresh: bool,
    no_iam: bool,
) -> None:
    """Upload FILEs (or the samples), follow each to a terminal state, print a summary."""
    from sluice.local.run import FileRun, expected_outcome, sample_files

    stage = _stage(ctx)
    port = _port(ctx, port)
    planned: list[tuple[Path, str, str]] = []
    if sample:
        planned += sample_files(repo_root() / "samples")
    for path in files:
        ds = dataset or _dataset_of(path)
        planned.append((path, ds, f"{ds}/{path.name}"))
    if not planned:
        raise click.UsageError("give FILEs or --sample")
    started_here = False
    health = running(port)
    if health:
        refuse_other_checkout(health, port)
    directory = _state_dir(state_dir)
    if health and isinstance(health.get("state_dir"), str):
        directory = Path(health["state_dir"])
    if fresh and health:
        click.echo(f"stopping this checkout's runtime on 127.0.0.1:{port} for a fresh run …")
        _shutdown_and_wait(port, 30.0)
        health = None
    if no_iam and health:
        raise click.UsageError(
            f"a runtime already runs on 127.0.0.1:{port}; --no-iam applies to one this command "
            f"starts (`sluice local down --port {port}`, then run again)"
        )
    if not health:
        click.echo(f"starting sluice local on 127.0.0.1:{port} …")
        up_args = ["--stage", stage, "local", "up", "--port", str(port)]
        up_args += ["--state-dir", str(directory), *(["--no-iam"] if no_iam else [])]
        start_detached(
            up_args,
            directory,
            port,
            300.0,
        )
        started_here = True
    click.echo(status_page_line(port))
    runs = [FileRun(p, ds, key, expected=expected_outcome(p)) for p, ds, key in planned]
    since_ms = int(time.time() * 1000)
    try:
        failed = _upload_and_follow(port, stage, runs, timeout, directory / "logs")
        _print_metrics(directory, since_ms, runs)
        _print_row_counts(port, stage, sorted({r.dataset for r in runs}))
    finally:
        if started_here and not keep_up:
            _shutdown_and_wait(port, 30.0)
    if keep_up or not started_here:
        click.echo(
            f'\nthe runtime stays up on http://127.0.0.1:{port}: `sluice query "SQL"`, '
            f"`sluice status`, the status page; `{_down_command(port)}` stops it"
        )
    if failed:
        raise SystemExit(1)


def _print_metrics(state_dir: Path, since_ms: int, runs: list[Any]) -> None:
    from sluice.local.run import collect_run_metrics
    from sluice.ops.metrics import summary_text

    completed = sum(r.status == "COMPLETED" for r in runs)
    click.echo(summary_text(collect_run_metrics(state_dir, since_ms, completed)))


def _print_row_counts(port: int, stage: str, datasets: list[str]) -> None:
    """End with one `sluice query`: the rows each dataset now holds (completed outputs only)."""
    from sluice.commands.query import query, render_table
    from sluice.context import CliContext

    ctx = CliContext.build(
        endpoint_url=f"http://127.0.0.1:{port}",
        profile=None,
        region="us-east-1",
        stage=stage,
        as_json=False,
    )
    sql = " union all ".join(
        f"select '{name}' as dataset, count(*) as rows from {name}" for name in datasets
    )
    try:
        result = query(ctx, f"{sql} order by dataset")
    except click.ClickException as error:
        click.echo(f"query: {error.format_message()}")
        return
    click.echo(f'\n$ sluice query "{sql} order by dataset"')
    click.echo(render_table(result))


def _upload_and_follow(
    port: int, stage: str, runs: list[Any], timeout: float, logs_dir: Path
) -> bool:
    import boto3

    from sluice.local.run import LiveWatch, progress_line, summary_table, update_from_item
    from sluice_shared.keys import file_id_for
    from sluice_shared.published_contracts import publish

    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    endpoint = f"http://127.0.0.1:{port}"
    s3 = session.client("s3", endpoint_url=endpoint)
    ssm = session.client("ssm", endpoint_url=endpoint)
    ddb = session.client("dynamodb", endpoint_url=endpoint)
    try:
        bucket = ssm.get_parameter(Name=f"/sluice/{stage}/raw-bucket-name")["Parameter"]["Value"]
        table = ssm.get_parameter(Name=f"/sluice/{stage}/ledger-table-name")["Parameter"]["Value"]
    except Exception as exc:
        raise click.ClickException(
            f"stage {stage} is not provisioned on {endpoint} (SSM /sluice/{stage}/…): {exc}"
        ) from exc
    # The checkout's data contracts as they are now, unchecked (as provisioning publishes them):
    # an edited or new contract applies to this run, a broken one quarantines its files.
    processed = ssm.get_parameter(Name=f"/sluice/{stage}/processed-bucket-name")
    publish(s3, processed["Parameter"]["Value"], repo_root() / "contracts" / "datasets")
    sqs = session.client("sqs", endpoint_url=endpoint)
    watch = LiveWatch(logs_dir)
    _watch(watch, port, sqs, stage)  # the baseline: what happened before this run is not shown
    for item in runs:
        item.uploaded_at = time.time()
        response = s3.put_object(Bucket=bucket, Key=item.key, Body=item.path.read_bytes())
        item.file_id = file_id_for(
            bucket, item.key, response.get("VersionId"), response.get("ETag")
        )
        item.status = "UPLOADED"
    started = time.monotonic()
    interactive = sys.stdout.isatty()
    last_print = 0.0
    last_watch = time.monotonic()
    while time.monotonic() - started < timeout and not all(r.terminal for r in runs):
        if time.monotonic() - last_watch >= 1.0:
            last_watch = time.monotonic()
            for line in _watch(watch, port, sqs, stage):
                stamp = f"[{time.monotonic() - started:6.1f}s] {line}"
                click.echo(("\r" + stamp.ljust(80)) if interactive else stamp)
        for item in runs:
            if item.terminal:
                continue
            got = ddb.get_item(
                TableName=table, Key={"PK": {"S": f"FILE#{item.file_id}"}, "SK": {"S": "META"}}
            ).get("Item")
            if got:
                update_from_item(item, got, time.time())
        line = progress_line(runs, started)
        if interactive:
            click.echo("\r" + line, nl=False)
        elif time.monotonic() - last_print > 5:
            click.echo(line)
            last_print = time.monotonic()
        time.sleep(0.5)
    if interactive:
        click.echo("")
    for item in runs:
        if not item.terminal:
            item.status = f"TIMEOUT({item.status})"
    click.echo(summary_table(runs))
    failed = False
    for item in runs:
        for problem in item.problems():
            failed = True
            click.echo(f"FAIL {item.key}: {problem}" + (f" ({item.error})" if item.error else ""))
    return failed


def _watch(watch: Any, port: int, sqs: Any, stage: str) -> list[str]:
    """Errors, retries and parked messages since the last look (nothing when the runtime or
    SQS does not answer this once: the next look reports it)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from sluice.local.run import dlq_depths

    try:
        state = _call(port, "state")
        depths = dlq_depths(sqs, f"sluice-{stage}-")
    except (LocalRuntimeError, BotoCoreError, ClientError):
        return []
    lines: list[str] = watch.update(state, depths)
    return lines


def _dataset_of(path: Path) -> str:
    parts = path.resolve().parts
    if "samples" in parts:
        index = len(parts) - 1 - parts[::-1].index("samples")
        if index + 1 < len(parts) - 1:
            return parts[index + 1]
    return path.resolve().parent.name


def _parse_param(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE", param_hint="--param")
    key, value = text.split("=", 1)
    return key, value


def _stage(ctx: click.Context) -> str:
    obj = ctx.find_root().obj
    return str(getattr(obj, "stage", None) or "dev")
