"""The promise table of docs/guarantees.md is the registry's (`tests/prove`), every mutation still
applies to the code it mutates, and every test it names exists."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.prove.mutation import Edit, Mutation, MutationError
from tests.prove.registry import PROMISES, Promise, mutations
from tests.prove.table import current, rows, table

ROOT = Path(__file__).resolve().parents[3]


def test_guarantees_table_is_generated_from_the_registry() -> None:
    # Regenerate with: python -m tests.prove --write-doc
    assert current() == table()


def test_promises_are_numbered_in_order_and_each_has_a_caught_mechanism() -> None:
    assert [p.number for p in PROMISES] == list(range(1, len(PROMISES) + 1))
    assert all(p.mechanisms and all(m.caught_by for m in p.mechanisms) for p in PROMISES)
    assert len(mutations()) == sum(len(p.mechanisms) for p in PROMISES)


def test_a_promise_without_a_mechanism_cannot_be_listed() -> None:
    with pytest.raises(ValueError, match="names no mechanism"):
        rows(Promise(99, "an unproved promise", ()))


@pytest.mark.parametrize("name", sorted(mutations()))
def test_mutation_applies_to_the_current_source(name: str) -> None:
    mutations()[name][1].mutation.check()


def test_mutation_of_a_snippet_not_in_the_source_is_refused() -> None:
    mutation = Mutation("gone", (Edit("sluice_shared.stages", "no such line", "x"),))
    with pytest.raises(MutationError, match="occurs 0 times"):
        mutation.check()


def _defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


@pytest.mark.parametrize("name", sorted(mutations()))
def test_every_catching_test_exists(name: str) -> None:
    for node_id in mutations()[name][1].caught_by:
        path, _, function = node_id.partition("::")
        assert (ROOT / path).is_file(), node_id
        assert function.split("[", 1)[0] in _defined_tests(ROOT / path), node_id
