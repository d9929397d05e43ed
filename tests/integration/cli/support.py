"""Types shared by the CLI integration tests and their fixtures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from click.testing import Result

from sluice_shared.aws.dynamodb import DynamoDbLedger

STAGE = "it"
REGION = "us-east-1"

Invoke = Callable[..., Result]
"""`sluice(*args, input=None)`: run the CLI against the moto server for stage `it`."""


@dataclass
class Platform:
    endpoint: str
    names: dict[str, str]
    ledger: DynamoDbLedger
    dlq_urls: dict[str, str]

    def client(self, service: str) -> Any:
        factory: Any = boto3.client
        return factory(service, region_name=REGION, endpoint_url=self.endpoint)
