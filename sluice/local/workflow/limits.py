"""The size quotas Step Functions enforces, and the errors it reports for them.

AWS pages:
- https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html: 262,144 bytes (UTF-8)
  for the input or output of a task, state or execution ("input data when scheduling a task,
  entering a state, or starting an execution"); 1 MB per API request (a definition's maximum
  length in CreateStateMachine is 1,048,576).
- https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html:
  `States.DataLimitExceeded` is a terminal error, neither retried nor caught (`States.ALL` does
  not match it).
- https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html: a variable is at
  most 256 KiB, the variables of one `Assign` together at most 256 KiB, and the variables an
  execution stores at most 10 MiB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.local.workflow.errors import ApiError, StatesError

if TYPE_CHECKING:
    from collections.abc import Mapping

PAYLOAD_BYTES = 262_144
VARIABLE_BYTES = 262_144
ASSIGN_BYTES = 262_144
VARIABLES_TOTAL_BYTES = 10 * 1024 * 1024
DEFINITION_CHARS = 1_048_576
DATA_LIMIT = "States.DataLimitExceeded"


def over(text: str, limit: int = PAYLOAD_BYTES) -> bool:
    """Whether `text` is larger than `limit` bytes of UTF-8."""
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit:
        return False
    return len(text.encode("utf-8")) > limit


def check_output(state: str, text: str) -> None:
    """A state's output (or a task's result) within the payload quota.

    Raises:
        StatesError: `States.DataLimitExceeded`.
    """
    if over(text):
        raise StatesError(
            DATA_LIMIT,
            f"The state/task '{state}' returned a result with a size exceeding the maximum "
            "number of bytes service limit.",
        )


def check_input(state: str, text: str) -> None:
    """A state's input (entering it, or a task's Parameters/Arguments) within the quota.

    Raises:
        StatesError: `States.DataLimitExceeded`.
    """
    if over(text):
        raise StatesError(
            DATA_LIMIT,
            f"The state/task '{state}' has an input with a size exceeding the maximum "
            "number of bytes service limit.",
        )


def check_assigned(state: str, texts: Mapping[str, str]) -> int:
    """One `Assign`'s variables (name → JSON text) within the per-variable and per-Assign
    quotas; returns their combined size in bytes.

    Raises:
        StatesError: `States.DataLimitExceeded` naming the variable (or the state).
    """
    total = 0
    for name, text in texts.items():
        size = len(text.encode("utf-8"))
        if size > VARIABLE_BYTES:
            raise StatesError(
                DATA_LIMIT,
                f"The variable '{name}' assigned by state '{state}' has a size of {size} "
                f"bytes, exceeding the maximum of {VARIABLE_BYTES} bytes per variable.",
            )
        total += size
    if total > ASSIGN_BYTES:
        raise StatesError(
            DATA_LIMIT,
            f"The variables assigned by state '{state}' have a combined size of {total} "
            f"bytes, exceeding the maximum of {ASSIGN_BYTES} bytes per Assign.",
        )
    return total


def check_total(state: str, total: int) -> None:
    """The execution's stored variables within 10 MiB.

    Raises:
        StatesError: `States.DataLimitExceeded`.
    """
    if total > VARIABLES_TOTAL_BYTES:
        raise StatesError(
            DATA_LIMIT,
            f"Assigning the variables of state '{state}' would store {total} bytes of "
            f"variables, exceeding the maximum of {VARIABLES_TOTAL_BYTES} bytes per execution.",
        )


def length_error(member: str, text: str, limit: int) -> ApiError | None:
    """An API string over its documented maximum length (bytes of UTF-8, as the API reference
    counts payloads), as AWS's request validation words it (`ValidationException`)."""
    if not over(text, limit):
        return None
    return ApiError(
        "ValidationException",
        f"1 validation error detected: Value at '{member}' failed to satisfy constraint: "
        f"Member must have length less than or equal to {limit}",
    )
