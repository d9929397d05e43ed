"""Errors of the local workflow engine.

```
WorkflowError
├── DefinitionError        a definition the engine cannot run (names the state and field)
├── StatesError            a runtime failure inside an execution (ASL error name + cause);
│                          Retry/Catch match on `error`
└── ApiError               an API call the facade rejects; `type_name` is the AWS `__type`
```
"""

from __future__ import annotations


class WorkflowError(Exception):
    """Base of every error the workflow engine raises."""


class DefinitionError(WorkflowError):
    """The definition is invalid; the message names the state and the field."""

    def __init__(self, message: str, *, state: str | None = None, field: str | None = None):
        where = []
        if state is not None:
            where.append(f"state {state!r}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{message}")
        self.state = state
        self.field = field


class StatesError(WorkflowError):
    """A runtime error with an ASL error name (`States.Runtime`, `TransientError`, ...)."""

    def __init__(self, error: str, cause: str = ""):
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause


class ApiError(WorkflowError):
    """An API-level rejection, returned as `{"__type": type_name, "message": ...}` with 400."""

    def __init__(self, type_name: str, message: str, status: int = 400):
        super().__init__(message)
        self.type_name = type_name
        self.message = message
        self.status = status


def runtime_error(cause: str) -> StatesError:
    """A `States.Runtime` error: bad paths, wrong types; never retried nor caught (AWS rule)."""
    return StatesError("States.Runtime", cause)
