"""`make prove`: every promise of docs/guarantees.md, proved by switching its mechanisms off.

`registry.py` names, per promise, its mechanisms; per mechanism a mutation (a patch the harness
applies in the test process, never a production flag) and the tests that must fail under it.
`python -m tests.prove` runs each mutation's catching tests with the mutation applied and fails
when any of them survives; `python -m tests.prove --write-doc` regenerates the promise table of
docs/guarantees.md from the registry (`tests/unit/reliability/test_guarantees_table.py` fails when
the table is stale).

A mutation is applied before any module it edits is imported, so every `from module import name`
sees the mutant: in each run's process forked by `python -m tests.prove` (which has imported only
third-party libraries), or at interpreter start by `boot/sitecustomize.py` when
`SLUICE_PROVE_MUTATION` names it and `boot/` is on `PYTHONPATH`. A test that starts Python
processes of its own (the local function runner's workers) passes `mutation_env()` to them so
they run the mutant too.
"""

from __future__ import annotations

import os

MUTATION_ENV = "SLUICE_PROVE_MUTATION"


def mutation_env() -> dict[str, str]:
    """The environment a child Python process needs to run the active mutation ({} when none)."""
    name = os.environ.get(MUTATION_ENV)
    if not name:
        return {}
    return {MUTATION_ENV: name, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
