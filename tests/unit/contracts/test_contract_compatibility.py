"""Within a major only additive, optional changes: proven on synthetic before/after models."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.envelope import ContractModel
from contracts.events import FileValidatedV1
from contracts.tools import check_compatibility, schema_of
from contracts.types import DatasetRef, FileId, NonNegativeInt, S3Uri

TYPE = "acme.thing.happened.v1"


class _Base(ContractModel):
    TYPE: ClassVar[str] = TYPE
    SOURCE: ClassVar[str] = "acme.test"


class Original(_Base):
    file_id: FileId
    dataset: DatasetRef
    rows_in: NonNegativeInt
    note: str | None = None
    path: Literal["realtime", "batch"] = "realtime"
    uri: S3Uri


def _problems(new: type[ContractModel]) -> list[str]:
    return check_compatibility(schema_of(Original), schema_of(new))


def test_identical_schema_is_compatible() -> None:
    assert _problems(Original) == []


def test_new_optional_field_is_backward_compatible() -> None:
    class WithOptional(Original):
        bytes_out: NonNegativeInt | None = None
        retries: NonNegativeInt = 0

    assert _problems(WithOptional) == []


def test_documentation_changes_are_compatible() -> None:
    class Documented(_Base):
        """A new docstring."""

        file_id: FileId = Field(description="The file.", title="File")
        dataset: DatasetRef
        rows_in: NonNegativeInt = Field(description="Rows read.")
        note: str | None = None
        path: Literal["realtime", "batch"] = "realtime"
        uri: S3Uri

    assert _problems(Documented) == []


def test_removed_field_needs_new_major() -> None:
    class WithoutNote(_Base):
        file_id: FileId
        dataset: DatasetRef
        rows_in: NonNegativeInt
        path: Literal["realtime", "batch"] = "realtime"
        uri: S3Uri

    problems = _problems(WithoutNote)

    assert problems == ["note: field removed (v1 readers still need it)"]


def test_new_required_field_needs_new_major() -> None:
    class WithRequired(Original):
        rows_out: NonNegativeInt

    problems = _problems(WithRequired)

    assert len(problems) == 1
    assert problems[0].startswith("rows_out: added as a required field")


def test_optional_to_required_needs_new_major() -> None:
    class RequiredPath(_Base):
        file_id: FileId
        dataset: DatasetRef
        rows_in: NonNegativeInt
        note: str | None = None
        path: Literal["realtime", "batch"]
        uri: S3Uri

    problems = _problems(RequiredPath)

    assert len(problems) == 1
    assert problems[0].startswith("path: optional field made required")


def test_type_change_needs_new_major() -> None:
    class StringRows(_Base):
        file_id: FileId
        dataset: DatasetRef
        rows_in: str
        note: str | None = None
        path: Literal["realtime", "batch"] = "realtime"
        uri: S3Uri

    problems = _problems(StringRows)

    assert problems == ["rows_in: type changed from integer to string"]


def test_enum_narrowing_needs_new_major() -> None:
    class RealtimeOnly(_Base):
        file_id: FileId
        dataset: DatasetRef
        rows_in: NonNegativeInt
        note: str | None = None
        path: Literal["realtime"] = "realtime"
        uri: S3Uri

    problems = _problems(RealtimeOnly)

    assert len(problems) == 1
    assert "enum narrowed" in problems[0]
    assert "'batch'" in problems[0]


def test_enum_widening_needs_new_major() -> None:
    class WithStream(_Base):
        file_id: FileId
        dataset: DatasetRef
        rows_in: NonNegativeInt
        note: str | None = None
        path: Literal["realtime", "batch", "stream"] = "realtime"
        uri: S3Uri

    problems = _problems(WithStream)

    assert len(problems) == 1
    assert "enum widened" in problems[0]
    assert "'stream'" in problems[0]


def test_nullability_change_needs_new_major() -> None:
    class NullableRows(_Base):
        file_id: FileId
        dataset: DatasetRef
        rows_in: NonNegativeInt | None
        note: str
        path: Literal["realtime", "batch"] = "realtime"
        uri: S3Uri

    problems = _problems(NullableRows)

    assert "rows_in: now accepts null (v1 readers built from the old model reject it)" in problems
    assert any(p.startswith("note: no longer accepts null") for p in problems)
    assert any(p.startswith("note: optional field made required") for p in problems)


def test_constraint_change_needs_new_major() -> None:
    class LooserUri(_Base):
        file_id: FileId
        dataset: DatasetRef
        rows_in: int = Field(ge=1)
        note: str | None = None
        path: Literal["realtime", "batch"] = "realtime"
        uri: str

    problems = _problems(LooserUri)

    assert "rows_in: constraint 'minimum' changed from 0 to 1" in problems
    assert any(p.startswith("uri: constraint 'pattern' changed") for p in problems)


class _RefV2(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    version: int = Field(ge=1)
    owner: str | None = None


class _StrictRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")


def test_nested_model_new_optional_field_is_compatible() -> None:
    class NestedAdded(_Base):
        file_id: FileId
        dataset: _RefV2
        rows_in: NonNegativeInt
        note: str | None = None
        path: Literal["realtime", "batch"] = "realtime"
        uri: S3Uri

    assert _problems(NestedAdded) == []


def test_nested_model_removed_field_needs_new_major() -> None:
    class NestedRemoved(_Base):
        file_id: FileId
        dataset: _StrictRef
        rows_in: NonNegativeInt
        note: str | None = None
        path: Literal["realtime", "batch"] = "realtime"
        uri: S3Uri

    assert _problems(NestedRemoved) == ["dataset.version: field removed (v1 readers still need it)"]


def test_builtin_schema_against_itself_is_compatible() -> None:
    schema = schema_of(FileValidatedV1)

    assert check_compatibility(schema, schema) == []
