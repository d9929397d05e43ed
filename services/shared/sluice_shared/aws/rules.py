"""`BusRules` over EventBridge ListRules and TestEventPattern (`sluice_shared.subscribers`).

No retry of its own beyond botocore's (`client_config`): a caller that cannot get an answer
stages the file (the fail-safe of `sluice_shared.subscribers`), which costs requests, not facts;
waiting out a throttle would hold up the file instead.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sluice_shared.aws.errors import translating
from sluice_shared.errors import TransientError
from sluice_shared.ports import BusRule

if TYPE_CHECKING:
    from collections.abc import Mapping

    from types_aiobotocore_events.client import EventBridgeClient

PAGE_SIZE = 100  # ListRules' largest page
# A bus holds 300 rules by default (an adjustable quota): 50 pages is 5,000 rules. A listing that
# never ends (a token that keeps coming back) is an error, not a loop.
MAX_PAGES = 50


class EventBridgeRules:
    """The EventBridge implementation of `sluice_shared.ports.BusRules`.

    Args:
        client: an open aioboto3 EventBridge client (owned by the caller, see `open_aws_deps`).
        bus_name: the bus whose rules are listed.
    """

    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self.client = client
        self.bus_name = bus_name

    async def list_rules(self) -> list[BusRule]:
        """Every rule of the bus (`State` ENABLED or ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS
        counts as enabled). Raises TransientError when the listing has more than `MAX_PAGES`
        pages, and the translated error of a failed request."""
        rules: list[BusRule] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            request: dict[str, Any] = {"EventBusName": self.bus_name, "Limit": PAGE_SIZE}
            if token:
                request["NextToken"] = token
            with translating():
                page = await self.client.list_rules(**request)
            for rule in page.get("Rules", []):
                rules.append(
                    BusRule(
                        name=rule.get("Name", ""),
                        arn=rule.get("Arn", ""),
                        event_pattern=rule.get("EventPattern") or None,
                        enabled=str(rule.get("State", "")).startswith("ENABLED"),
                    )
                )
            token = page.get("NextToken")
            if not token:
                return rules
        raise TransientError(f"ListRules of bus {self.bus_name} did not end in {MAX_PAGES} pages")

    async def matches(self, pattern: str, event: Mapping[str, Any]) -> bool:
        """EventBridge's answer to TestEventPattern (`pattern` against `event`). Raises the
        translated error of a failed request (an invalid pattern: `AwsServiceError`)."""
        with translating():
            answer = await self.client.test_event_pattern(
                EventPattern=pattern, Event=json.dumps(event, separators=(",", ":"))
            )
        return bool(answer.get("Result", False))
