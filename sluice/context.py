"""What every CLI command shares: where AWS is, which stage, the resource names, output."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import click
import orjson

LOCAL_ENDPOINT = "http://127.0.0.1:4566"

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


@dataclass
class CliContext:
    endpoint_url: str | None
    profile: str | None
    region: str
    stage: str
    as_json: bool
    _names: dict[str, str] | None = field(default=None, repr=False)

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
        if endpoint_url is None and profile is None:
            endpoint_url = LOCAL_ENDPOINT
        return cls(endpoint_url, profile, region, stage, as_json)

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
