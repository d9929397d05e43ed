"""Turning AWS failures into the CLI's exit codes (see `sluice.cli`: 3 = endpoint unreachable or
resource missing), so every command reports them the same way."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

import click
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from sluice.context import EndpointUnreachable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sluice.context import CliContext

_MISSING = {
    "ResourceNotFoundException",
    "NoSuchBucket",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "StateMachineDoesNotExist",
}


class Failed(click.ClickException):
    """The thing checked is not right (a failed file, an invalid event, a contract problem)."""

    exit_code = 1


class Missing(click.ClickException):
    """What was asked for does not exist (a file id, a run id): exit 3, like a missing resource."""

    exit_code = 3


@contextmanager
def aws_errors(ctx: CliContext, doing: str) -> Iterator[None]:
    """Raise EndpointUnreachable (exit 3) for a connection failure or a missing resource met
    while `doing` something; other AWS errors become a ClickException (exit 1) with the code."""
    where = ctx.endpoint_url or f"AWS ({ctx.region})"
    try:
        yield
    except EndpointConnectionError as error:
        hint = " — is `sluice local up` running?" if ctx.is_local else ""
        raise EndpointUnreachable(f"cannot reach {where} while {doing}: {error}{hint}") from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", str(error))
        if code in _MISSING:
            raise EndpointUnreachable(
                f"{doing}: a resource of stage {ctx.stage!r} is missing at {where}: {message}"
            ) from None
        raise click.ClickException(f"{doing}: {code}: {message}") from None
    except BotoCoreError as error:
        raise EndpointUnreachable(f"{doing} at {where} failed: {error}") from None
