"""The root of Sluice's exception tree, its two public families, and the contract errors.

The whole tree, every class and the module that defines it, is drawn once, in
`sluice_shared.errors`, beside the outbound table that says what each class becomes on an SQS
queue and in a Step Functions state machine. This module holds the part of it that must not
depend on the services:

```
SluiceError                     .code: a stable snake_case reason
├── TransientError              public name (Step Functions `Retry` matches it)
│   └── ThrottledError          public name
└── PoisonInputError            public name (Step Functions `Catch` matches it)
    ├── ContractError           an event that breaks its contract
    │   ├── UnknownContractType
    │   ├── InvalidContract
    │   ├── ContractTypeMismatch
    │   └── EventTooLarge
    └── DatasetContractInvalid  a data contract that does not load
```

Why the root lives here. `contracts` is a leaf package (pydantic; PyYAML and pyarrow for the
data contracts; never `sluice_shared`), and its event half is installed on its own by producer
teams (`packages/sluice-contracts`), yet a contract error is poison
input: a consumer must park the event with its reason, never retry it. Two roots would need an
adapter in every consumer that remembers to translate; instead the root and the two public
families live with the contracts, and `sluice_shared.errors` re-exports them (the same class
objects) and derives every service error from them. The public names are part of the contract
between the Lambda functions and the state machines (which match exception class names
exactly), so they belong in the shared language as much as the events do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


class SluiceError(Exception):
    """Base of every error Sluice raises on purpose.

    `code` is a stable, machine-readable reason (snake_case) recorded in the ledger, in events and
    as the reason of a parked message.
    """

    code: str = "sluice_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The message the error was raised with."""
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


class ContractError(PoisonInputError):
    """Base of every contract error; `code` is recorded as the reason when the event is parked."""

    code = "contract_error"

    def __init__(
        self, message: str, *, code: str | None = None, contract_type: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.contract_type = contract_type


class UnknownContractType(ContractError):
    """No model is registered for the `type`; `known_majors` lists the majors of the same fact."""

    code = "unknown_contract_type"

    def __init__(
        self, message: str, *, contract_type: str | None = None, known_majors: Sequence[int] = ()
    ) -> None:
        super().__init__(message, contract_type=contract_type)
        self.known_majors = tuple(known_majors)


class InvalidContract(ContractError):
    """The event does not validate; `problems` holds one line per validation error."""

    code = "invalid_contract"

    def __init__(
        self, message: str, *, contract_type: str | None = None, problems: Sequence[str] = ()
    ) -> None:
        super().__init__(message, contract_type=contract_type)
        self.problems = tuple(problems)


class ContractTypeMismatch(ContractError):
    """The envelope's `type`/`source` disagree with the transport, or the type is not accepted."""

    code = "contract_type_mismatch"


class EventTooLarge(ContractError):
    """The EventBridge entry would exceed the 256 KB PutEvents limit."""

    code = "event_too_large"


class DatasetContractInvalid(PoisonInputError):
    """A data contract (`datasets/<name>/v<N>.yaml`) that does not load; `problems` holds one
    line per problem, each with its YAML path and a hint (`contracts.datasets.lint`).

    Poison for the file that needs it: the stage records the file QUARANTINED with this code
    and the problems instead of retrying it; a fixed contract makes a replay succeed."""

    code = "contract_invalid"

    def __init__(self, message: str, *, dataset: str = "", problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.problems = tuple(problems)
