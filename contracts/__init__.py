"""The shared event and data language of Sluice.

Producers and consumers outside the repository install the event half of this package on its
own, as `sluice-contracts` (import name `sluice_contracts`, built from this folder by
`packages/sluice-contracts`); inside the repository it is `contracts`, and `sluice_contracts`
names the same modules (`contracts._alias`), so a team's model written against the package
loads in the `sluice` CLI unchanged.
"""

from contracts._alias import install as _install_alias
from contracts.envelope import (
    MAX_ENTRY_BYTES,
    ContractModel,
    Envelope,
    entry_size,
    envelope_class,
    to_eventbridge_entry,
)
from contracts.errors import (
    ContractError,
    ContractTypeMismatch,
    EventTooLarge,
    InvalidContract,
    PoisonInputError,
    SluiceError,
    TransientError,
    UnknownContractType,
)
from contracts.publish import PublishFailed, entries, entries_json, publish, validated
from contracts.registry import (
    REGISTRY,
    ContractRegistry,
    parse_envelope,
    parse_eventbridge_event,
    register,
)

_install_alias(__name__)

__all__ = [
    "MAX_ENTRY_BYTES",
    "REGISTRY",
    "ContractError",
    "ContractModel",
    "ContractRegistry",
    "ContractTypeMismatch",
    "Envelope",
    "EventTooLarge",
    "InvalidContract",
    "PoisonInputError",
    "PublishFailed",
    "SluiceError",
    "TransientError",
    "UnknownContractType",
    "entries",
    "entries_json",
    "entry_size",
    "envelope_class",
    "parse_envelope",
    "parse_eventbridge_event",
    "publish",
    "register",
    "to_eventbridge_entry",
    "validated",
]
