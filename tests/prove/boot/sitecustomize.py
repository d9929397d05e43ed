"""Installs the mutation named by `SLUICE_PROVE_MUTATION` at interpreter start (`make prove`).

This directory is on `PYTHONPATH` only in the processes `python -m tests.prove` runs (and the
worker processes their tests start with `tests.prove.mutation_env()`); nothing else imports it.
A run forked by `python -m tests.prove` installs its mutation itself: only the Python processes
it starts come through here.
"""

from __future__ import annotations

import os

_name = os.environ.get("SLUICE_PROVE_MUTATION")
if _name:
    from tests.prove.registry import mutation_named

    mutation_named(_name).install()
