"""Checking a contract regex with RE2 costs a function nothing beyond pyarrow itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_regex_check_at_contract_load_does_not_import_pandas() -> None:
    # GIVEN a fresh interpreter where pandas is installed (the development environment; the
    # deployed layer has none) WHEN contract regexes are checked, good and bad
    probe = textwrap.dedent(
        """
        import importlib.util, sys
        from contracts.datasets.model import re2_problem
        assert importlib.util.find_spec("pandas") is not None, "pandas must be installed here"
        assert re2_problem("^[A-Z]{3}-[0-9]+$") is None
        assert "invalid perl operator: (?=" in re2_problem("^(?=a)b")
        print("pandas" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )

    # THEN pyarrow never loaded pandas (a fifth of a CPU second in a first invocation)
    assert done.stdout.strip() == "False"
