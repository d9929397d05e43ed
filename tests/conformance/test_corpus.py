"""The corpus and the construct table of `sluice/local/workflow/README.md` stay in step: every
state machine case is listed against its construct, and every case the table names exists."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conformance.corpus import events_cases, states_cases

TABLE = Path(__file__).parents[2] / "sluice/local/workflow/README.md"
HEADING = "## Constructs and their conformance cases"


def _table_cases() -> set[str]:
    text = TABLE.read_text("utf-8")
    assert HEADING in text, f"{TABLE} lost its construct table"
    rows = [line for line in text[text.index(HEADING) :].splitlines() if line.startswith("| ")]
    names: set[str] = set()
    for row in rows[1:]:  # the header row names the columns
        last = row.rstrip(" |").rsplit(" | ", 1)[-1]
        names |= {n for n in re.findall(r"`([^`]+)`", last) if "/" not in n and "." not in n}
    return names


def test_every_case_loads_and_cites_aws() -> None:
    # GIVEN the case files THEN each parses into a case citing an AWS documentation page
    docs = [c.doc for c in states_cases()] + [c.doc for c in events_cases()]
    assert docs
    assert all(doc.startswith("https://docs.aws.amazon.com/") for doc in docs)


def test_construct_table_lists_exactly_the_state_machine_cases() -> None:
    # GIVEN the README's table and the case files
    listed = _table_cases()
    cases = {case.name for case in states_cases()}
    # THEN every case is listed against a construct, and every listed case exists
    assert cases - listed == set(), "cases missing from the construct table"
    assert listed - cases == set(), "the construct table names cases that do not exist"
