"""Sluice's one exception tree, and what each error becomes at the two outbound boundaries.

```
SluiceError                              contracts.errors   (the root; see there for why)
├── TransientError                       contracts.errors   public name
│   └── ThrottledError                   contracts.errors   public name
├── PoisonInputError                     contracts.errors   public name
│   ├── ContractError                    contracts.errors   an event that breaks its contract
│   │   ├── UnknownContractType          contracts.errors   no model for `type` (or its major)
│   │   ├── InvalidContract              contracts.errors   envelope or data fails validation
│   │   ├── ContractTypeMismatch         contracts.errors   transport and envelope disagree
│   │   ├── EventTooLarge                contracts.errors   a PutEvents entry above 256 KB
│   │   └── ContractViolation            sluice_shared.errors  not JSON, type not accepted here
│   ├── DatasetContractInvalid           contracts.errors   a data contract that does not load
│   ├── UnknownDatasetError              sluice_shared.errors  the key names no dataset contract
│   ├── InputLimitExceeded               sluice_shared.errors  a limit on outside input breached
│   ├── EventLedgerMismatch              sluice_shared.errors  an event disagrees with the ledger
│   ├── ObjectNotFoundError              sluice_shared.ports   the object (version) is gone
│   ├── RequestRejected                  sluice_shared.aws.errors  AWS refused what it carried
│   ├── UnknownFileError                 sluice_shared.stages  a fact about an unregistered file
│   ├── LookupTableError                 sluice_shared.datapath.transform  bad lookup table
│   ├── EphemeralStorageExhausted        sluice_shared.scratch  /tmp full (ENOSPC) in a unit
│   └── ReconciliationError              sluice_output.domain  counts do not add up
├── StaleStateError                      sluice_shared.ports   ledger record in another state
├── SupersededError                      sluice_shared.ports   a later notice of the key came first
├── StaleRunError                        sluice_shared.ports   batch run record changed
├── IllegalTransitionError               sluice_shared.ports   never-allowed transition (a bug)
├── PublishRejected                      sluice_shared.ports   the bus refused an entry for good
├── PublishFailed                        contracts.publish   a producer's entries refused
├── ConditionalCheckFailed               sluice_shared.aws.errors  a DynamoDB condition lost
├── AwsConfigurationError                sluice_shared.aws.errors  missing resource, no access
├── AwsServiceError                      sluice_shared.aws.errors  any other AWS 4xx
└── MalformedBatchError                  sluice_shared.errors  the event is not an SQS batch
```

Foreign exceptions (botocore, aiohttp, sockets) enter the tree in one place,
`sluice_shared.aws.errors.translate`. Contract errors need no translation: they are poison input.

## Outbound: one table

`OUTBOUND` maps each family to what an SQS consumer does with the message (`sluice_shared.sqs`)
and to the error name a Step Functions task raises (`sluice_batch.handlers`, via `boundary`).
The first family an exception belongs to wins:

| family              | SQS outcome                          | Step Functions error name        |
|---------------------|--------------------------------------|----------------------------------|
| ThrottledError      | retry                                | `ThrottledError` (`Retry`)       |
| TransientError      | retry                                | `TransientError` (`Retry`)       |
| PoisonInputError    | park in the DLQ at once, reason=code | `PoisonInputError` (`Catch`)     |
| MalformedBatchError | fail the batch                       | own name (`States.ALL`)          |
| SluiceError         | retry                                | own name (`States.ALL`)          |
| Exception           | retry                                | own name (`States.ALL`)          |
| BaseException       | fail the batch (escapes the record)  | own name (`States.ALL`)          |

Retry: listed in `batchItemFailures`, redelivered, moved to the DLQ after `maxReceiveCount`.
Fail the batch: the invocation fails, so every record of the batch is redelivered. In a state
machine, `PoisonInputError` is caught and the item recorded as bad; an own name reaches only
`States.ALL` and the item is recorded as failed.

Step Functions matches the exception *class name* exactly, so `TransientError`, `ThrottledError`
and `PoisonInputError` are public API: never rename them. A task maps every poison subclass onto
`PoisonInputError` itself (keeping `code`); `tests/unit/shared/test_shared_error_model.py` checks
the table against the `ErrorEquals` lists of `orchestration/statemachines/*.asl.json`.
Errors that are neither transient nor poison (`AwsConfigurationError`, a lost condition, a bug)
are retried by SQS rather than parked: they are not the input's fault, and after
`maxReceiveCount` they wait in the DLQ to be redriven once the deployment is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from contracts.errors import (
    ContractError,
    PoisonInputError,
    SluiceError,
    ThrottledError,
    TransientError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "OUTBOUND",
    "ContractError",
    "ContractViolation",
    "EventLedgerMismatch",
    "InputLimitExceeded",
    "MalformedBatchError",
    "PoisonInputError",
    "Route",
    "SluiceError",
    "SqsOutcome",
    "ThrottledError",
    "TransientError",
    "UnknownDatasetError",
    "boundary",
    "route",
    "sfn_error_name",
]


class ContractViolation(ContractError):
    """An event that does not match any contract this consumer understands."""

    code = "contract_violation"


class UnknownDatasetError(PoisonInputError):
    """An object whose key prefix names no known dataset contract."""

    code = "unknown_dataset"


class InputLimitExceeded(PoisonInputError):
    """Something read from outside breached a configured limit."""

    code = "input_limit_exceeded"


class EventLedgerMismatch(PoisonInputError):
    """An event about a registered file whose fields disagree with the file's ledger record (or
    with what the settings derive from it, such as its staging prefixes): forged, or from
    another deployment. The file's own events always agree, so nothing of it is acted on.

    `differences`: (field, the event's value, the ledger's value) for every field that differs.
    """

    code = "event_ledger_mismatch"

    def __init__(
        self,
        message: str,
        *,
        file_id: str = "",
        differences: Sequence[tuple[str, object, object]] = (),
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.file_id = file_id
        self.differences = list(differences)

    @classmethod
    def of(
        cls, file_id: str, differences: Sequence[tuple[str, object, object]]
    ) -> EventLedgerMismatch:
        """The error for `file_id`, its message listing each difference with both values."""
        listed = "; ".join(
            f"{name}: event {got!r}, ledger {want!r}" for name, got, want in differences
        )
        return cls(
            f"event about file {file_id} disagrees with its ledger record: {listed}",
            file_id=file_id,
            differences=differences,
        )


class MalformedBatchError(SluiceError):
    """The Lambda event is not an SQS batch: no record can be reported, so the whole batch fails."""

    code = "malformed_batch"


class SqsOutcome(StrEnum):
    """What an SQS consumer does with a record whose handler raised."""

    RETRY = "retry"
    """Listed in `batchItemFailures`: redelivered, and moved to the DLQ after `maxReceiveCount`."""
    PARK = "park"
    """Sent to the DLQ at once with its reason code and reported as done: never retried."""
    FAIL_BATCH = "fail_batch"
    """The invocation fails: every record of the batch is redelivered."""


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the outbound table.

    `sfn_error` is the error name a Step Functions task raises for this family; None means the
    exception's own class name, which only a `States.ALL` clause matches.
    """

    family: type[BaseException]
    sqs: SqsOutcome
    sfn_error: str | None


OUTBOUND: tuple[Route, ...] = (
    Route(ThrottledError, SqsOutcome.RETRY, ThrottledError.__name__),
    Route(TransientError, SqsOutcome.RETRY, TransientError.__name__),
    Route(PoisonInputError, SqsOutcome.PARK, PoisonInputError.__name__),
    Route(MalformedBatchError, SqsOutcome.FAIL_BATCH, None),
    Route(SluiceError, SqsOutcome.RETRY, None),
    Route(Exception, SqsOutcome.RETRY, None),
    Route(BaseException, SqsOutcome.FAIL_BATCH, None),
)
"""The outbound table (see the module docstring), most specific family first."""


def route(exc: BaseException) -> Route:
    """The row of `OUTBOUND` that decides what happens to `exc` (the first family it is in)."""
    for row in OUTBOUND:
        if isinstance(exc, row.family):
            return row
    raise AssertionError("OUTBOUND ends with BaseException")  # pragma: no cover


def sfn_error_name(exc: BaseException) -> str:
    """The error name a Step Functions task reports for `exc` (what `ErrorEquals` matches)."""
    return route(exc).sfn_error or type(exc).__name__


def boundary(exc: BaseException) -> BaseException:
    """The exception a Step Functions task raises for `exc`: `exc` itself when its class name is
    already the table's error name, else an instance of the public class the table names, with
    the same message and `code` (raise it `from exc`)."""
    name = sfn_error_name(exc)
    if type(exc).__name__ == name:
        return exc
    public = {cls.__name__: cls for cls in (ThrottledError, TransientError, PoisonInputError)}
    assert isinstance(exc, SluiceError)  # only Sluice families carry a fixed public name
    return public[name](exc.message, code=exc.code)
