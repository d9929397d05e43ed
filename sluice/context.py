"""What every CLI command shares: where AWS is, which stage, the resource names, output."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson

LOCAL_PORT = 4566
LOCAL_ENDPOINT = f"http://127.0.0.1:{LOCAL_PORT}"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
RUNTIME_STATE_FILE = "runtime.json"
"""What `sluice local up` writes into its state directory while it runs (pid, port, …)."""
STATUS_PAGE_PATH = "/_sluice/status/"
"""Where a local runtime serves its status page (files, rows, throughput, `why` per file)."""

# SSM parameters the platform stack publishes (deploy/platform.yaml); the local runtime
# provisions the same stack, so the same lookup works locally and on AWS.
NAME_PARAMETERS = {
    "raw_bucket": "raw-bucket-name",
    "work_bucket": "work-bucket-name",
    "processed_bucket": "processed-bucket-name",
    "error_bucket": "error-bucket-name",
    "event_bus": "event-bus-name",
    "ledger_table": "ledger-table-name",
    "batch_state_machine_arn": "batch-state-machine-arn",
}


class EndpointUnreachable(click.ClickException):
    exit_code = 3


def local_port_default() -> int:
    """SLUICE_LOCAL_PORT, else 4566: the runtime port when nothing else names one."""
    value = os.environ.get("SLUICE_LOCAL_PORT")
    if not value:
        return LOCAL_PORT
    try:
        return int(value)
    except ValueError:
        raise click.UsageError(f"SLUICE_LOCAL_PORT={value!r} is not a port number") from None


def resolve_endpoint(
    endpoint_url: str | None, port: int | None = None, *, profile: str | None = None
) -> tuple[str | None, int]:
    """Where a command talks to: the one resolution every command (`local *` included) uses.

    In order: `--port` of a `local` command, else `--endpoint-url`/SLUICE_ENDPOINT_URL, else
    SLUICE_LOCAL_PORT, else 4566 — on 127.0.0.1. With `--profile` and no endpoint, AWS (None).
    Giving both `--port` and an `--endpoint-url` with another port is a usage error.

    Returns:
        The endpoint URL (None: AWS) and the local runtime port it names (the default local
        port when the endpoint is not a local one).
    """
    if endpoint_url is not None:
        parsed = urllib.parse.urlsplit(endpoint_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise click.UsageError(f"--endpoint-url {endpoint_url!r}: expected http://HOST:PORT")
        named = parsed.port or (443 if parsed.scheme == "https" else 80)
        if port is not None and port != named:
            raise click.UsageError(
                f"--port {port} and --endpoint-url {endpoint_url} name different runtimes; "
                "give one of them"
            )
        return endpoint_url, named
    chosen = port if port is not None else local_port_default()
    if port is None and profile is not None:
        return None, chosen
    return f"http://127.0.0.1:{chosen}", chosen


@dataclass
class CliContext:
    endpoint_url: str | None
    profile: str | None
    region: str
    stage: str
    as_json: bool
    _names: dict[str, str] | None = field(default=None, repr=False)
    endpoint_given: str | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        *,
        endpoint_url: str | None,
        profile: str | None,
        region: str,
        stage: str,
        as_json: bool,
    ) -> CliContext:
        # With a profile we talk to AWS; otherwise to the local runtime (never to AWS by accident).
        resolved, _ = resolve_endpoint(endpoint_url, profile=profile)
        return cls(resolved, profile, region, stage, as_json, endpoint_given=endpoint_url)

    def local_port(self, port: int | None) -> int:
        """The port of the local runtime a `sluice local` command acts on (see
        `resolve_endpoint`); a usage error when the endpoint is not on this machine."""
        _, chosen = resolve_endpoint(self.endpoint_given, port)
        if self.endpoint_given is not None:
            host = urllib.parse.urlsplit(self.endpoint_given).hostname
            if host not in LOCAL_HOSTS:
                raise click.UsageError(
                    f"--endpoint-url {self.endpoint_given} is not a local runtime "
                    f"(`sluice local` commands act on 127.0.0.1)"
                )
        return chosen

    def local_state_dir(self) -> Path | None:
        """The state directory of the local runtime at the endpoint (its health answer names
        it), else the one of this checkout's state file (`<repo>/.sluice/runtime.json`), else
        None. Always None against AWS."""
        if not self.is_local or self.endpoint_url is None:
            return None
        import json
        import urllib.error
        import urllib.request

        url = self.endpoint_url.rstrip("/") + "/_sluice/health"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                health = json.loads(response.read())
            named = health.get("state_dir") if isinstance(health, dict) else None
            if isinstance(named, str) and named:
                return Path(named)
        except (urllib.error.URLError, OSError, ValueError):
            pass
        state_file = Path(__file__).resolve().parents[1] / ".sluice" / RUNTIME_STATE_FILE
        try:
            doc = json.loads(state_file.read_text())
        except (OSError, ValueError):
            return None
        named = doc.get("state_dir") if isinstance(doc, dict) else None
        return Path(named) if isinstance(named, str) and named else None

    @property
    def is_local(self) -> bool:
        return self.endpoint_url is not None

    def client(self, service: str) -> Any:
        """A boto3 client for `service` at the chosen endpoint (fake credentials locally)."""
        import boto3
        from botocore.config import Config

        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3)
        if self.profile is not None:
            session = boto3.Session(profile_name=self.profile, region_name=self.region)
        elif self.endpoint_url is not None:
            session = boto3.Session(
                aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
                aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
                region_name=self.region,
            )
        else:
            session = boto3.Session(region_name=self.region)
        factory: Any = session.client
        return factory(service, endpoint_url=self.endpoint_url, config=config)

    def names(self) -> dict[str, str]:
        """Resource names of the stage, read once from the platform's SSM parameters.

        Raises EndpointUnreachable (exit 3) when the endpoint does not answer or the stage is
        not deployed/provisioned there.
        """
        if self._names is None:
            from botocore.exceptions import BotoCoreError, ClientError

            ssm = self.client("ssm")
            found: dict[str, str] = {}
            try:
                for key, suffix in NAME_PARAMETERS.items():
                    name = f"/sluice/{self.stage}/{suffix}"
                    try:
                        found[key] = ssm.get_parameter(Name=name)["Parameter"]["Value"]
                    except ClientError as error:
                        if error.response["Error"]["Code"] != "ParameterNotFound":
                            raise
            except (BotoCoreError, ClientError) as error:
                raise EndpointUnreachable(self._unreachable(error)) from None
            if "ledger_table" not in found:
                where = self.endpoint_url or "AWS"
                raise EndpointUnreachable(
                    f"stage {self.stage!r} is not provisioned at {where}: "
                    f"SSM parameter /sluice/{self.stage}/ledger-table-name is missing"
                    + (" (start it with `sluice local up`)" if self.is_local else "")
                )
            self._names = found
        return self._names

    def _unreachable(self, error: Exception) -> str:
        where = self.endpoint_url or f"AWS ({self.region})"
        hint = " — is `sluice local up` running?" if self.is_local else ""
        return f"cannot reach {where}: {error}{hint}"

    def emit(self, data: Any, human: str) -> None:
        """Print `data` as JSON with --json, else the human-readable text."""
        if self.as_json:
            click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode())
        else:
            click.echo(human)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain aligned text table (no dependency; readable in CI logs)."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
