"""The short cuts of the vectorised checks give the answers of the plain kernels they replace."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice_shared.datapath import checks
from sluice_shared.datapath.readers import index_mask

BLIND = [
    r"^ORD-[0-9]{6,12}$",
    r"^[A-Z]{2}$",
    r"^\d+(\.\d+)?$",
    r"^[^0-9]*$",
    r"^\D\w\s\S$",
    r"(?i)^sku-[a-z0-9]+$",
    checks._FLOAT_RE,
    checks._INT_RE,
]
NOT_BLIND = [
    r"^[0-5]$",  # a class with some digits
    r"^x1$",  # a digit literal
    r"^[^7]+$",
    r"a{,3}",  # RE2 reads the braces as literal text, Python as a repeat
    r"^[[:digit:]]$",  # POSIX class: Python's parser reads it otherwise
    r"^\pN$",
    checks._DATE_RE,
    checks._TS_RE,
]
# Values whose digits matter to the NOT_BLIND patterns, beside any text.
DIGITS_AND_TEXT = st.one_of(
    st.text(alphabet="0123456789x.-+eE{,}3a", max_size=6),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8),
)


@pytest.mark.parametrize("pattern", BLIND)
def test_digit_blind_patterns_are_recognised(pattern: str) -> None:
    assert checks.digit_blind(pattern)


@pytest.mark.parametrize("pattern", NOT_BLIND)
def test_patterns_that_tell_digits_apart_are_not_blind(pattern: str) -> None:
    assert not checks.digit_blind(pattern)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(DIGITS_AND_TEXT, min_size=1, max_size=40))
def test_a_blind_pattern_matches_a_value_exactly_when_it_matches_its_shape(
    values: list[str],
) -> None:
    text = pa.array(values, pa.string())
    shapes = checks._shapes(text)
    for pattern in BLIND:
        assert checks._matches(shapes, pattern).equals(checks._matches(text, pattern)), pattern


def _column(n: int, seed: int) -> pa.Array:
    rng = random.Random(seed)
    values: list[str | None] = []
    for i in range(n):
        kind = rng.randrange(8)
        if kind == 0:
            values.append(None)
        elif kind == 1:
            values.append(
                rng.choice(["ORD-12", "ord-1234567", "ORD-1234567x", "", "ÄÖ", "ORD-١٢٣٤٥٦٧"])
            )
        elif kind == 2:
            values.append(
                rng.choice(["DE", "FR", "D1", "12.5", "-3", "7e3", "0", "7", "9", "x1", "x0"])
            )
        else:
            values.append(f"ORD-{i:0{rng.randrange(5, 14)}d}")
    return pa.array(values, pa.string())


def _ids(n: int, seed: int) -> pa.Array:
    """One shape (ORD- and ten digits) in the first 2000 rows, then one row in 100 otherwise
    or null: the sampled rows see one shape, the rest not only."""
    rng = random.Random(seed)
    odd = ["ORD-12", "ORD-1234567x", None, "", "ORD-١٢٣٤٥٦٧", "7", "x1", "ORD-00000000000"]
    return pa.array(
        [
            rng.choice(odd) if i > 2000 and rng.randrange(100) == 0 else f"ORD-{i:010d}"
            for i in range(n)
        ],
        pa.string(),
    )


@pytest.mark.parametrize("pattern", BLIND + NOT_BLIND[:3])
@pytest.mark.parametrize("make", [_column, _ids])
def test_regex_matches_equals_one_regex_per_value(pattern: str, make: Any) -> None:
    column = make(5000, seed=len(pattern))
    expected = checks._matches(column, pattern)
    assert checks._regex_matches(column, pattern).equals(expected)
    assert checks._regex_matches(column.slice(7, 3000), pattern).equals(expected.slice(7, 3000))


def test_a_repeating_shape_runs_the_regex_once_per_distinct_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    column = pa.array([f"ORD-{i:010d}" for i in range(5000)], pa.string())
    real = pc.match_substring_regex
    sizes: list[int] = []

    def spy(values: pa.Array, pattern: str) -> pa.Array:
        sizes.append(len(values))
        return real(values, pattern)

    monkeypatch.setattr(pc, "match_substring_regex", spy)
    assert checks._regex_matches(column, r"^ORD-[0-9]{6,12}$").true_count == 5000
    assert sizes == [1]  # one shape: ORD-0000000000
    sizes.clear()
    assert checks._regex_matches(column, r"^ORD-0").true_count == 5000
    assert sizes == [5000]  # the digit literal: one regex per value


@pytest.mark.parametrize("limit", [0, 2, 5, 9])
def test_longer_than_counts_characters_not_bytes(limit: int) -> None:
    values = ["", "abc", "äöüß", "äöüßäöüß", "日本語テキスト", None, "x" * 9, "€" * 4]
    column = pa.array(values * 300, pa.string())
    expected = pc.fill_null(pc.greater(pc.utf8_length(column), limit), False)
    assert checks._longer_than(column, limit).equals(expected)
    one_long = pa.array(["ab"] * 999 + ["äöüßäöüßäöüß"], pa.string())
    expected = pc.fill_null(pc.greater(pc.utf8_length(one_long), limit), False)
    assert checks._longer_than(one_long, limit).equals(expected)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 100, 5000])
def test_index_mask_is_true_exactly_at_the_indices(n: int) -> None:
    rng = random.Random(n)
    for count in (0, 1, 3, n // 2, n):
        indices = [rng.randrange(n) for _ in range(count)]
        expected = pc.is_in(pa.array(range(n), pa.int64()), pa.array(indices, pa.int64()))
        assert index_mask(n, indices).equals(expected)
        as_array = pa.array(indices, pa.int64())
        assert index_mask(n, as_array).equals(expected)
        assert index_mask(n, pa.array(indices, pa.uint64())).equals(expected)


def _reference_timestamp(value: str) -> datetime | None:
    """The accepted timestamp forms of `checks`' docstring, one value at a time."""
    if not re.fullmatch(checks._TS_RE.strip("^$"), value):
        return None
    date_part, clock = value[:10], value[11:]
    zone = UTC
    if clock.endswith("Z"):
        clock = clock[:-1]
    elif clock[-6] in "+-":
        sign = 1 if clock[-6] == "+" else -1
        zone = timezone(sign * timedelta(hours=int(clock[-5:-3]), minutes=int(clock[-2:])))
        clock = clock[:-6]
    whole, _, fraction = clock.partition(".")
    try:
        local = datetime.fromisoformat(f"{date_part}T{whole}")
    except ValueError:
        return None  # not a real calendar day
    micros = int((fraction + "000000")[:6])
    return (local.replace(tzinfo=zone) + timedelta(microseconds=micros)).astimezone(UTC)


TIMESTAMP_VALUES = [
    "2024-03-01T02:10:21Z",
    "2024-03-01 02:10:21Z",
    "2024-02-29T00:00:00Z",  # a leap day
    "2023-02-29T00:00:00Z",  # not one
    "2024-02-30 12:00:00Z",
    "2024-04-31T12:00:00Z",
    "2024-12-31T23:59:59Z",
    "2024-13-01T00:00:00Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T23:59:60Z",
    "2024-01-01T10:00:00",
    "2024-01-01T10:00:00.1234567Z",
    "2024-01-01T10:00:00+02:00",
    "2024-02-30T10:00:00-01:00",
    "yesterday",
    " 2024-01-01T10:00:00Z",
    "",
]


@pytest.mark.parametrize("seed", range(6))
def test_timestamps_of_any_mix_are_read_as_one_value_at_a_time(seed: int) -> None:
    rng = random.Random(seed)
    # Blocks of only common forms, with impossible days, with other forms, with junk.
    pool = TIMESTAMP_VALUES[: 2 + seed * 3]
    values = [rng.choice(pool) for _ in range(300)]
    text = pa.array(values, pa.string())
    present = pc.not_equal(pc.binary_length(text), 0)
    typed, ok = checks._parse_timestamp(text, present)
    expected = [_reference_timestamp(v) if v else None for v in values]
    assert ok.to_pylist() == [e is not None for e in expected]
    assert [t for t, good in zip(typed.to_pylist(), ok.to_pylist(), strict=True) if good] == [
        e for e in expected if e is not None
    ]


@pytest.mark.parametrize("markers", [[""], ["", "NA"], ["NA"], []])
def test_null_mask_marks_exactly_the_null_markers(markers: list[str]) -> None:
    for values in (["a", "b", "NA"], ["a", "", "NA", ""], ["x"] * 5000, [], ["a", None, ""]):
        column = pa.array(values, pa.string())
        expected = (
            [v is None or v in markers for v in values] if markers else [v is None for v in values]
        )
        assert checks._null_mask(column, markers).to_pylist() == expected
        longer = checks._null_mask(pa.array(["a"] * 70000, pa.string()), markers)
        assert longer.true_count == 0
        assert len(longer) == 70000
