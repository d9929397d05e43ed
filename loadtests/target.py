"""Where a load test points: the local runtime (default) or a deployed stage.

Configuration comes from the environment so that Locust's own command line stays Locust's:

| Variable | Meaning | Default |
|---|---|---|
| `SLUICE_LOADTEST_ENDPOINT` | AWS endpoint URL | `http://127.0.0.1:4566` unless a profile is set |
| `SLUICE_LOADTEST_PROFILE` | AWS profile (a deployed stage; no endpoint override) | none |
| `SLUICE_LOADTEST_REGION` | region | `us-east-1` |
| `SLUICE_LOADTEST_STAGE` | stage whose `/sluice/<stage>/...` SSM names are used | `dev` |

Names (buckets, bus, ledger) are read from the platform's SSM parameters, exactly as the CLI does,
so the same code runs against `sluice local up` and against a stage.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from sluice.context import LOCAL_ENDPOINT, CliContext

ENV_ENDPOINT = "SLUICE_LOADTEST_ENDPOINT"
ENV_PROFILE = "SLUICE_LOADTEST_PROFILE"
ENV_REGION = "SLUICE_LOADTEST_REGION"
ENV_STAGE = "SLUICE_LOADTEST_STAGE"
SERVICES = ("ingest", "validate", "transform", "output")


@dataclass
class Target:
    """An endpoint (or profile), a region and a stage; hands out shared boto3 clients.

    boto3 clients are thread-safe, so one client per service is shared by every Locust user of
    a process (one connection pool instead of one per user).
    """

    endpoint_url: str | None = LOCAL_ENDPOINT
    profile: str | None = None
    region: str = "us-east-1"
    stage: str = "dev"
    max_pool_connections: int = 64
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _names: dict[str, str] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Target:
        """Build from the `SLUICE_LOADTEST_*` variables (see the module docstring)."""
        source = dict(os.environ) if env is None else env
        profile = source.get(ENV_PROFILE) or None
        endpoint = source.get(ENV_ENDPOINT) or (None if profile else LOCAL_ENDPOINT)
        return cls(
            endpoint_url=endpoint,
            profile=profile,
            region=source.get(ENV_REGION) or "us-east-1",
            stage=source.get(ENV_STAGE) or "dev",
        )

    def to_env(self) -> dict[str, str]:
        """The variables that make `from_env` rebuild this target (for Locust subprocesses)."""
        env = {ENV_REGION: self.region, ENV_STAGE: self.stage}
        if self.endpoint_url:
            env[ENV_ENDPOINT] = self.endpoint_url
        if self.profile:
            env[ENV_PROFILE] = self.profile
        return env

    @property
    def is_local(self) -> bool:
        """True when an endpoint URL (the local runtime) is used."""
        return self.endpoint_url is not None

    def client(self, service: str) -> Any:
        """A shared boto3 client for `service` (standard retries, a pool sized for many users)."""
        with self._lock:
            existing = self._clients.get(service)
            if existing is not None:
                return existing
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=self.max_pool_connections,
            )
            if self.profile is not None:
                session = boto3.Session(profile_name=self.profile, region_name=self.region)
            else:
                session = boto3.Session(
                    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                    region_name=self.region,
                )
            factory: Any = session.client
            made = factory(service, endpoint_url=self.endpoint_url, config=config)
            self._clients[service] = made
            return made

    def names(self) -> dict[str, str]:
        """Resource names of the stage from SSM (`raw_bucket`, `event_bus`, `ledger_table`, …).

        Raises:
            sluice.context.EndpointUnreachable: nothing answers, or the stage is not provisioned.
        """
        if self._names is None:
            ctx = CliContext.build(
                endpoint_url=self.endpoint_url,
                profile=self.profile,
                region=self.region,
                stage=self.stage,
                as_json=False,
            )
            self._names = ctx.names()
        return self._names

    def queue_name(self, service: str, dlq: bool = False) -> str:
        """The name the service templates give a service's queue or DLQ."""
        return f"sluice-{self.stage}-{service}-{'dlq' if dlq else 'queue'}"
