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
    """The definition is invalid; the message names the state and the field.

    `str()` is one diagnostic as AWS words it inside `InvalidDefinition`:
    `<CODE>: <message> at <JSON pointer>` (`SCHEMA_VALIDATION_FAILED: Field 'Parameters' is not
    supported at /States/Stop`); `pointer` locates the state (`/States/<name>`, nested ones as
    `/States/P/Branches/0/States/<name>`) and, where it applies, the field.
    """

    def __init__(
        self,
        message: str,
        *,
        state: str | None = None,
        field: str | None = None,
        code: str = "SCHEMA_VALIDATION_FAILED",
        pointer: str | None = None,
    ):
        if pointer is None:
            parts = [] if state is None else ["States", state]
            if field:
                parts.append(field)
            pointer = "/" + "/".join(parts) if parts else "null"
        super().__init__(f"{code}: {message} at {pointer}")
        self.message = message
        self.state = state
        self.field = field
        self.code = code
        self.pointer = pointer
        # Every problem found (this one first); `combine` gathers several.
        self.problems: list[DefinitionError] = [self]

    @classmethod
    def combine(cls, problems: list[DefinitionError]) -> DefinitionError:
        """One error for several problems: the first's fields, every problem in `problems`,
        `str()` listing them all as AWS's InvalidDefinition message does (`, `-separated)."""
        flat = [p for problem in problems for p in problem.problems]
        first = flat[0]
        if len(flat) == 1:
            return first
        combined = cls(
            first.message,
            state=first.state,
            field=first.field,
            code=first.code,
            pointer=first.pointer,
        )
        combined.problems = flat
        combined.args = (", ".join(str(problem) for problem in flat),)
        return combined


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
