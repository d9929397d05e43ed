"""Parsing envelopes: the right model per type, unknown majors parked, mismatches refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from contracts.envelope import ContractModel, Envelope, to_eventbridge_entry
from contracts.errors import (
    ContractError,
    ContractTypeMismatch,
    InvalidContract,
    PoisonInputError,
    SluiceError,
    UnknownContractType,
)
from contracts.events import BUILTIN_MODELS, FileValidatedV1
from contracts.registry import (
    REGISTRY,
    ContractRegistry,
    parse_envelope,
    parse_eventbridge_event,
    register,
)

EXAMPLE = (
    Path(__file__).resolve().parents[3]
    / "contracts/events/file_validated/v1/examples/with_quarantine.json"
)


@pytest.fixture
def detail() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(EXAMPLE.read_bytes())
    return copy.deepcopy(loaded)


def test_registry_default_holds_every_builtin_contract() -> None:
    assert REGISTRY.types() == sorted(model.TYPE for model in BUILTIN_MODELS)
    assert all(REGISTRY.model_for(model.TYPE) is model for model in BUILTIN_MODELS)


def test_parse_envelope_known_type_returns_typed_data(detail: dict[str, Any]) -> None:
    envelope = parse_envelope(detail, detail_type="sluice.file.validated.v1")

    assert isinstance(envelope, Envelope)
    assert isinstance(envelope.data, FileValidatedV1)
    assert envelope.data.rows_valid == detail["data"]["rows_valid"]


def test_parse_envelope_unknown_major_is_parked_naming_known_majors(
    detail: dict[str, Any],
) -> None:
    detail["type"] = "sluice.file.validated.v9"

    with pytest.raises(UnknownContractType) as raised:
        parse_envelope(detail)

    assert raised.value.code == "unknown_contract_type"
    assert raised.value.known_majors == (1, 2, 3)
    assert "v9" in str(raised.value)
    assert "knows v1, v2, v3" in str(raised.value)


def test_parse_envelope_unknown_fact_says_no_contract(detail: dict[str, Any]) -> None:
    detail["type"] = "sluice.file.teleported.v1"

    with pytest.raises(UnknownContractType, match=r"no contract for fact 'sluice\.file\.tele"):
        parse_envelope(detail)


def test_parse_envelope_malformed_type_is_unknown(detail: dict[str, Any]) -> None:
    detail["type"] = "FileValidated"

    with pytest.raises(UnknownContractType, match="not a contract type"):
        parse_envelope(detail)


def test_parse_envelope_detail_type_mismatch_raises(detail: dict[str, Any]) -> None:
    with pytest.raises(ContractTypeMismatch, match="does not match") as raised:
        parse_envelope(detail, detail_type="sluice.file.ingested.v1")

    assert raised.value.code == "contract_type_mismatch"


def test_parse_envelope_type_not_accepted_raises(detail: dict[str, Any]) -> None:
    with pytest.raises(ContractTypeMismatch, match="not accepted here"):
        parse_envelope(detail, accepted={"sluice.file.ingested.v1"})


def test_parse_envelope_accepted_type_parses(detail: dict[str, Any]) -> None:
    envelope = parse_envelope(detail, accepted={"sluice.file.validated.v1"})

    assert envelope.type == "sluice.file.validated.v1"


def test_parse_envelope_tolerant_reader_ignores_unknown_fields(detail: dict[str, Any]) -> None:
    # GIVEN a newer producer that added fields to the data and the envelope
    detail["data"]["compression_ratio"] = 3.2
    detail["data"]["dataset"]["owner"] = "team-commerce"
    detail["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    # WHEN an older reader parses it THEN the known fields are read and the rest ignored
    envelope = parse_envelope(detail)
    assert envelope.data.rows_in == detail["data"]["rows_in"]
    assert "compression_ratio" not in envelope.data.model_dump()


def test_parse_envelope_invalid_data_lists_every_problem(detail: dict[str, Any]) -> None:
    detail["data"]["rows_in"] = -1
    detail["data"]["file_id"] = "NOT-HEX"
    del detail["data"]["bucket_count"]
    detail["correlationid"] = ""

    with pytest.raises(InvalidContract) as raised:
        parse_envelope(detail)

    message = str(raised.value)
    assert raised.value.code == "invalid_contract"
    assert len(raised.value.problems) == 4
    for location in ("data.rows_in", "data.file_id", "data.bucket_count", "correlationid"):
        assert location in message


def test_parse_envelope_counts_as_strings_are_invalid(detail: dict[str, Any]) -> None:
    detail["data"]["rows_in"] = "1000"

    with pytest.raises(InvalidContract, match=r"data\.rows_in"):
        parse_envelope(detail)


def test_parse_envelope_non_utc_time_is_normalised(detail: dict[str, Any]) -> None:
    detail["data"]["object_created_at"] = "2024-01-15T12:30:00+02:00"

    envelope = parse_envelope(detail)

    assert envelope.data.object_created_at.isoformat() == "2024-01-15T10:30:00+00:00"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        ("[1, 2]", "not an object"),
        (b'{"data": {}}', "no contract 'type'"),
    ],
)
def test_parse_envelope_unreadable_detail_is_invalid(raw: bytes | str, reason: str) -> None:
    with pytest.raises(InvalidContract, match=reason):
        parse_envelope(raw)


def test_parse_eventbridge_event_source_mismatch_raises(detail: dict[str, Any]) -> None:
    event = {"source": "sluice.output", "detail-type": detail["type"], "detail": detail}

    with pytest.raises(ContractTypeMismatch, match="source"):
        parse_eventbridge_event(event)


def test_parse_eventbridge_event_without_detail_is_invalid() -> None:
    with pytest.raises(InvalidContract, match="detail"):
        parse_eventbridge_event({"source": "x", "detail-type": "sluice.file.validated.v1"})


def test_contract_errors_are_poison_input_with_codes() -> None:
    codes = {cls.code for cls in (UnknownContractType, InvalidContract, ContractTypeMismatch)}

    assert issubclass(ContractError, PoisonInputError)
    assert issubclass(PoisonInputError, SluiceError)
    assert codes == {"unknown_contract_type", "invalid_contract", "contract_type_mismatch"}


class _InventoryCounted(ContractModel):
    """A team's own event, carried in the same envelope."""

    TYPE: ClassVar[str] = "acme.inventory.counted.v1"
    SOURCE: ClassVar[str] = "acme.warehouse"
    sku: str
    quantity: int


def test_register_custom_team_event_round_trips_through_eventbridge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a team event registered in the default registry (restored after the test)
    monkeypatch.setattr(REGISTRY, "_models", dict(REGISTRY._models))
    assert register(_InventoryCounted) is _InventoryCounted
    envelope = Envelope.wrap(_InventoryCounted(sku="A-1", quantity=4), correlationid="run-7")
    entry = to_eventbridge_entry(envelope, "sluice-bus")
    # WHEN it is delivered and parsed
    event = {
        "source": entry["Source"],
        "detail-type": entry["DetailType"],
        "detail": orjson.loads(entry["Detail"]),
    }
    parsed = parse_eventbridge_event(event)
    # THEN the team's model reads it
    assert isinstance(parsed.data, _InventoryCounted)
    assert parsed.data.quantity == 4
    assert parsed.source == "acme.warehouse"
    assert parsed.dataschema == "https://schemas.sluice.dev/acme.inventory.counted.v1.json"


def test_register_same_class_twice_is_idempotent() -> None:
    registry = ContractRegistry()
    registry.register(_InventoryCounted)
    registry.register(_InventoryCounted)

    assert registry.types() == ["acme.inventory.counted.v1"]


def test_register_conflicting_class_for_taken_type_raises() -> None:
    registry = ContractRegistry([_InventoryCounted])

    class Impostor(ContractModel):
        TYPE: ClassVar[str] = "acme.inventory.counted.v1"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Impostor)


@pytest.mark.parametrize("bad_type", ["acme.inventory.counted", "Acme.Counted.v1", "counted.v0"])
def test_register_model_with_malformed_type_raises(bad_type: str) -> None:
    class Malformed(ContractModel):
        TYPE: ClassVar[str] = bad_type

    with pytest.raises(ValueError, match="not a contract type"):
        ContractRegistry().register(Malformed)


def test_register_model_without_type_raises() -> None:
    class Typeless(ContractModel):
        pass

    with pytest.raises(ValueError, match="no TYPE"):
        ContractRegistry().register(Typeless)


def test_registry_knows_every_major_of_a_fact() -> None:
    class CountedV2(ContractModel):
        TYPE: ClassVar[str] = "acme.inventory.counted.v2"

    registry = ContractRegistry([CountedV2, _InventoryCounted])

    assert registry.majors("acme.inventory.counted") == [1, 2]
    with pytest.raises(UnknownContractType, match="knows v1, v2"):
        registry.model_for("acme.inventory.counted.v3")
