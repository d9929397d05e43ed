"""Types shared by the CLI unit tests."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import Result

Invoke = Callable[..., Result]
"""`sluice(*args, input=None)`: run the CLI in-process against an endpoint nobody listens on."""
