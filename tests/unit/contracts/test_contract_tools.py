"""`python -m contracts.tools`: generate schemas and checksums, report every contract problem."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import orjson
import pytest

from contracts.envelope import ContractModel, Envelope
from contracts.tools import ContractFolder, ToolError, check, generate, main, render_schema


class _Counted(ContractModel):
    TYPE: ClassVar[str] = "acme.stock.counted.v1"
    SOURCE: ClassVar[str] = "acme.warehouse"
    sku: str
    quantity: int


class _CountedWithOptional(_Counted):
    note: str | None = None


class _CountedWithoutQuantity(ContractModel):
    TYPE: ClassVar[str] = "acme.stock.counted.v1"
    SOURCE: ClassVar[str] = "acme.warehouse"
    sku: str


def _example(quantity: object = 3) -> bytes:
    envelope = Envelope.wrap(
        _Counted(sku="A-1", quantity=3),
        correlationid="c",
        id="e-1",
        time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    detail = envelope.model_dump(mode="json")
    detail["data"]["quantity"] = quantity
    return orjson.dumps(detail)


@pytest.fixture
def folder(tmp_path: Path) -> ContractFolder:
    """A contract folder outside git, generated and with one recorded example."""
    path = tmp_path / "stock_counted" / "v1"
    (path / "examples").mkdir(parents=True)
    (path / "examples" / "basic.json").write_bytes(_example())
    contract = ContractFolder(model=_Counted, path=path)
    generate([contract])
    return contract


def test_generate_writes_schema_and_records_examples(folder: ContractFolder) -> None:
    assert folder.schema_path.read_bytes() == render_schema(_Counted)
    assert folder.schema_path.read_bytes().endswith(b"}\n")
    assert "  basic.json" in folder.checksums_path.read_text()
    assert check([folder]) == []


def test_generate_twice_writes_nothing_the_second_time(folder: ContractFolder) -> None:
    assert generate([folder]) == []


def test_check_stale_schema_is_reported(folder: ContractFolder) -> None:
    # An optional field is compatible, but the committed schema must be regenerated.
    problems = check([ContractFolder(model=_CountedWithOptional, path=folder.path)])

    assert len(problems) == 1
    assert "schema.json is stale" in problems[0]


def test_check_missing_schema_is_reported(folder: ContractFolder) -> None:
    folder.schema_path.unlink()

    assert any("schema.json is missing" in p for p in check([folder]))


def test_check_breaking_change_against_committed_schema_is_reported(
    folder: ContractFolder,
) -> None:
    problems = check([ContractFolder(model=_CountedWithoutQuantity, path=folder.path)])

    assert any("quantity: field removed" in p and "add a new major folder" in p for p in problems)


def test_check_example_that_does_not_parse_is_reported(folder: ContractFolder) -> None:
    (folder.examples_path / "broken.json").write_bytes(_example(quantity="many"))
    generate([folder])

    problems = check([folder])

    assert len(problems) == 1
    assert "examples/broken.json does not parse" in problems[0]
    assert "data.quantity" in problems[0]


def test_check_changed_example_is_reported(folder: ContractFolder) -> None:
    (folder.examples_path / "basic.json").write_bytes(_example(quantity=4))
    generate([folder])  # must not re-record a recorded example

    problems = check([folder])

    assert len(problems) == 1
    assert "basic.json changed after it was recorded" in problems[0]


def test_check_removed_example_is_reported(folder: ContractFolder) -> None:
    (folder.examples_path / "extra.json").write_bytes(_example(quantity=9))
    generate([folder])
    (folder.examples_path / "extra.json").unlink()

    assert any("extra.json was removed" in p for p in check([folder]))


def test_check_unrecorded_example_is_reported(folder: ContractFolder) -> None:
    (folder.examples_path / "new.json").write_bytes(_example(quantity=5))

    problems = check([folder])

    assert len(problems) == 1
    assert "new.json is not recorded in CHECKSUMS" in problems[0]


def test_check_folder_without_examples_is_reported(folder: ContractFolder) -> None:
    shutil.rmtree(folder.examples_path)

    assert any("no golden example" in p for p in check([folder]))


def test_check_folder_major_not_matching_type_is_reported(folder: ContractFolder) -> None:
    moved = folder.path.parent / "v2"
    folder.path.rename(moved)

    assert any("expected v1/" in p for p in check([ContractFolder(_Counted, moved)]))


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_check_against_git_ref_compares_with_that_commits_schema(
    folder: ContractFolder,
) -> None:
    # GIVEN the contract committed in a git repository (the baseline release)
    repo = folder.path.parents[1]
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "release")
    _git(repo, "tag", "release-1")
    # AND a later commit that removed a field and regenerated the schema
    breaking = ContractFolder(model=_CountedWithoutQuantity, path=folder.path)
    generate([breaking])
    _git(repo, "commit", "-q", "-am", "drop quantity")
    # WHEN checked against HEAD (the default) THEN the schema is in step and nothing is reported
    assert check([breaking]) == []
    # WHEN checked against the release THEN the removed field is a breaking change
    problems = check([breaking], against="release-1")
    assert problems
    assert all("quantity: field removed" in p for p in problems)


def test_check_against_changed_checksum_entry_is_reported(folder: ContractFolder) -> None:
    # GIVEN a committed example whose recorded checksum is later rewritten along with the file
    repo = folder.path.parents[1]
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "release")
    (folder.examples_path / "basic.json").write_bytes(_example(quantity=4))
    folder.checksums_path.unlink()
    generate([folder])
    # WHEN checked against HEAD THEN the rewritten entry is reported
    problems = check([folder])
    assert len(problems) == 1
    assert "the entry for basic.json was changed or removed" in problems[0]


def test_check_against_unknown_ref_raises(folder: ContractFolder) -> None:
    _git(folder.path.parents[1], "init", "-q")

    with pytest.raises(ToolError, match="not a git commit"):
        check([folder], against="no-such-ref")


def test_check_against_outside_git_raises(folder: ContractFolder) -> None:
    with pytest.raises(ToolError, match="not inside a git work tree"):
        check([folder], against="HEAD")


def test_main_check_on_builtins_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    assert "contracts OK" in capsys.readouterr().out


def test_main_check_unknown_ref_exits_two(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--against", "no-such-ref-anywhere"]) == 2
    assert "not a git commit" in capsys.readouterr().err


def test_main_check_with_problems_exits_one(
    folder: ContractFolder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stale = ContractFolder(model=_CountedWithOptional, path=folder.path)
    monkeypatch.setattr("contracts.tools.builtin_folders", lambda: [stale])

    assert main(["check"]) == 1
    captured = capsys.readouterr()
    assert "schema.json is stale" in captured.out
    assert "1 contract problem(s)" in captured.err
