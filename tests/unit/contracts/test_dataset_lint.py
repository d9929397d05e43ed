"""`contracts.datasets.lint`: every problem of a data contract, with its YAML path and a hint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from contracts.datasets.lint import lint_catalog, lint_file, yaml_path
from contracts.datasets.loader import DATASETS_DIR


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    """GIVEN a copy of the repository's data contracts and lookups."""
    root = tmp_path / "datasets"
    shutil.copytree(DATASETS_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_repository_contracts_have_no_problem() -> None:
    assert lint_catalog(DATASETS_DIR) == []


def test_yaml_path_reads_like_the_file() -> None:
    assert yaml_path(("transform", "lookups", 0, "column")) == "transform.lookups[0].column"
    assert yaml_path(()) == ""


def test_bare_on_key_is_named_as_written_with_how_to_fix_it(datasets: Path) -> None:
    # WHEN a lookup is written with `on:` (YAML 1.1 reads it as the boolean true)
    contract = datasets / "orders" / "v1.yaml"
    _edit(contract, "{table: countries, column: country", "{table: countries, on: country")

    problems = lint_file(contract, expected=("orders", 1))

    # THEN the key is named as written, at its YAML path and line, with the fix
    first = problems[0]
    assert first.where == "transform.lookups[0].on"
    assert "read as the boolean true" in first.message
    assert "`column:`" in first.hint
    assert '"on":' in first.hint
    assert first.line == 30
    assert str(first).startswith(f"{first.file}: transform.lookups[0].on: ")
    # and pydantic's "Keys should be strings" with a numeric path is not what the author reads
    assert not any("Keys should be strings" in str(p) for p in problems)
    assert any(p.where == "transform.lookups[0].column" for p in problems)


@pytest.mark.parametrize(
    ("old", "new", "where", "words"),
    [
        (
            "args: [quantity, unit_price]",
            "args: [quantity, unit_prize]",
            "transform.derived[0].args[1]",
            "unknown column 'unit_prize'",
        ),
        (
            "{name: dt, column: order_ts",
            "{name: dt, column: order_time",
            "partition_by[0].column",
            "unknown column 'order_time'",
        ),
        ("primary_key: [order_id]", "primary_key: [order]", "primary_key[0]", "not a column"),
        (
            "columns: [name, region]",
            "columns: [name, regio]",
            "transform.lookups[0].columns[1]",
            "no column 'regio'",
        ),
        ("table: countries", "table: nations", "transform.lookups[0].table", "does not exist"),
        ("key: code", "key: iso", "transform.lookups[0].key", "no key column 'iso'"),
        ("drop: [currency_code]", "drop: [currency_cod]", "transform.drop[0]", "unknown column"),
        ("drop: [currency_code]", "drop: [order_ts]", "transform.drop[0]", "partition"),
        ("version: 1", "version: 2", "version", "its path names orders/v1"),
        ("policy: quarantine", "policy: park", "quarantine.policy", "'quarantine'"),
        ("  dedupe: true", "  dedup: true", "transform.dedup", "Extra inputs"),
    ],
)
def test_each_problem_has_its_yaml_path(
    datasets: Path, old: str, new: str, where: str, words: str
) -> None:
    contract = datasets / "orders" / "v1.yaml"
    _edit(contract, old, new)

    problems = lint_catalog(datasets)

    assert [p.where for p in problems] == [where], [str(p) for p in problems]
    assert words in problems[0].message
    assert problems[0].file.endswith("orders/v1.yaml")
    assert problems[0].line is not None


def test_lookup_with_repeated_key_is_a_problem(datasets: Path) -> None:
    lookup = datasets / "orders" / "lookups" / "countries.csv"
    lookup.write_text(lookup.read_text() + "DE,Germany again,EU\n")

    problems = lint_catalog(datasets)

    assert [p.where for p in problems] == ["transform.lookups[0].key"]
    assert "repeats 'code' values ['DE']" in problems[0].message


def test_not_yaml_names_the_line(datasets: Path) -> None:
    (datasets / "orders" / "v1.yaml").write_text("name: orders\ncolumns: [a\n")

    problems = lint_catalog(datasets)

    assert len(problems) == 1
    assert "not valid YAML" in problems[0].message
    assert problems[0].line is not None


def test_folder_without_a_version_file_is_a_problem(datasets: Path) -> None:
    (datasets / "returns").mkdir()
    (datasets / "returns" / "returns.yaml").write_text("name: returns\n")

    problems = lint_catalog(datasets)

    assert len(problems) == 1
    assert "no v<N>.yaml" in problems[0].message


def test_reference_problems_are_listed_with_field_problems(datasets: Path) -> None:
    # WHEN a contract has a field problem (pydantic then skips its reference checks) and an
    # unknown column in a derived column
    contract = datasets / "orders" / "v1.yaml"
    _edit(contract, "{table: countries, column: country", "{table: countries, on: country")
    _edit(contract, "args: [quantity, unit_price]", "args: [quantity, unit_prize]")

    problems = lint_catalog(datasets)

    # THEN one run lists both
    assert [p.where for p in problems] == [
        "transform.lookups[0].on",
        "transform.lookups[0].column",
        "transform.derived[0].args[1]",
    ]
