"""Errors of the local runtime.

```
LocalRuntimeError
├── ProvisioningError     a template the runtime cannot honour (names the resource and property)
├── PortInUseError        the endpoint port is held by another process
└── RuntimeNotRunning     a command needs a running `sluice local up` and found none
```
"""

from __future__ import annotations


class LocalRuntimeError(Exception):
    """Base of every error the local runtime raises on purpose."""


class ProvisioningError(LocalRuntimeError):
    """A resource or property the local runtime cannot honour.

    The message always names the stack, the logical resource id and (when known) the property, so
    the template author can act on it.
    """

    def __init__(
        self, message: str, *, stack: str = "", resource: str = "", prop: str = ""
    ) -> None:
        where = "/".join(part for part in (stack, resource) if part)
        detail = f"{where}" + (f" property {prop}" if prop else "")
        super().__init__(f"{detail}: {message}" if detail else message)
        self.stack = stack
        self.resource = resource
        self.prop = prop


class PortInUseError(LocalRuntimeError):
    """The endpoint port is already bound by someone else."""

    def __init__(self, port: int, holder: str | None) -> None:
        who = f" by {holder}" if holder else " by another process"
        super().__init__(f"port {port} on 127.0.0.1 is already in use{who}; stop it or pass --port")
        self.port = port
        self.holder = holder


class RuntimeNotRunning(LocalRuntimeError):
    """No local runtime answers on the expected endpoint."""
