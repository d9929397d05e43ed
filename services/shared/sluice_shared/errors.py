"""Sluice's exception tree.

```
SluiceError
├── TransientError            public: Step Functions `Retry` matches the class name; SQS redelivers
│   └── ThrottledError        the service asked us to slow down
└── PoisonInputError          public: never retried; the input is parked with a reason
    ├── ContractViolation     an event that is not a valid contract (or an unknown major)
    ├── UnknownDatasetError   the object's prefix names no dataset contract
    └── InputLimitExceeded    a limit on something read from outside was breached
```

`TransientError` and `PoisonInputError` are a public API: Step Functions `Retry`/`Catch` match the
exception *class name* exactly, so never rename them. Every internal failure is mapped onto one of
the two in the handler; botocore errors are translated in one place
(`sluice_shared.aws.errors.translate`).
"""

from __future__ import annotations


class SluiceError(Exception):
    """Base of every error Sluice raises on purpose.

    `code` is a stable, machine-readable reason (snake_case) recorded in the ledger and events.
    """

    code: str = "sluice_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class TransientError(SluiceError):
    """A failure that may succeed if retried unchanged (network, 5xx, throttling, timeouts)."""

    code = "transient"


class ThrottledError(TransientError):
    """The called service throttled us; retry with backoff."""

    code = "throttled"


class PoisonInputError(SluiceError):
    """The input can never succeed as it is; do not retry, park it with the reason."""

    code = "poison_input"


class ContractViolation(PoisonInputError):
    """An event that does not match any contract this consumer understands."""

    code = "contract_violation"


class UnknownDatasetError(PoisonInputError):
    """An object whose key prefix names no known dataset contract."""

    code = "unknown_dataset"


class InputLimitExceeded(PoisonInputError):
    """Something read from outside breached a configured limit."""

    code = "input_limit_exceeded"
