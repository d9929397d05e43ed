"""Errors raised while reading or writing event contracts.

```
ValueError
└── ContractError               .code is a stable snake_case reason
    ├── UnknownContractType     no model for this `type` (unknown fact, or unknown major)
    ├── InvalidContract         the envelope or its data fails validation (every problem listed)
    ├── ContractTypeMismatch    detail-type/source disagree with the envelope, or type not accepted
    └── EventTooLarge           the EventBridge entry would exceed 256 KB (events are claim checks)
```

`contracts` is a leaf package: it must not import `sluice_shared`. Service handlers map every
`ContractError` onto `sluice_shared.errors.ContractViolation` (a `PoisonInputError`), keeping
`code`, so a bad event is parked with its reason instead of being retried forever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


class ContractError(ValueError):
    """Base of every contract error; `code` is recorded as the reason when the event is parked."""

    code: str = "contract_error"

    def __init__(self, message: str, *, contract_type: str | None = None) -> None:
        super().__init__(message)
        self.contract_type = contract_type

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


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
