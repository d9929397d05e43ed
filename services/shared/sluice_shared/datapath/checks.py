"""Vectorised data-contract checks: raw column values in, typed columns and failure masks out.

Every check is an Arrow compute kernel over a whole block; Python touches only the rows that
fail (to pick the first failing check and write a reason people can read). Checks run per
column in contract order and, within a column, in this order (the first failure wins):
`field_too_large`, `null_not_allowed`, `type_mismatch`, `below_min`, `above_max`, `not_in_enum`,
`regex_mismatch`, `too_long`.

Kernels per block are kept few (a block's fixed cost is what a second check thread cannot
share): a regex that treats all digits alike (`digit_blind`) runs once per distinct value shape
when shapes repeat, `max_length` counts characters only in values with more bytes than the
limit, and masks of a few rows are built from their indices (`readers.index_mask`).

Accepted text forms (values are never trimmed; surrounding spaces are a type mismatch):
- int64: optional sign and 1-19 digits, within the int64 range.
- float64: decimal or exponent notation (`1`, `-2.5`, `.5`, `1e-3`); NaN and infinities are not.
- bool: true/false, True/False, TRUE/FALSE, 1/0.
- date: `YYYY-MM-DD`, a real calendar day.
- timestamp: `YYYY-MM-DD` + `T` or space + `hh:mm:ss`, optional fraction (truncated to
  microseconds), then `Z`, `±hh:mm`, or nothing (naive: read as UTC); stored as UTC.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import cache
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from contracts.datasets import ColumnSpec, ColumnType, DatasetContract
from sluice_shared.datapath.readers import index_mask
from sluice_shared.datapath.schema import arrow_type

if TYPE_CHECKING:
    from collections.abc import Mapping

_INT_RE = r"^[+-]?[0-9]{1,19}$"
_FLOAT_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DATE_RE = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
_TS_RE = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$"
)
_TS_ZONE_RE = r"(Z|[+-][0-9]{2}:[0-9]{2})$"
_TRUE = pa.array(["true", "True", "TRUE", "1"])
_FALSE = pa.array(["false", "False", "FALSE", "0"])
_BOOL_WORDS = pa.concat_arrays([_TRUE, _FALSE])
_NULL_STRING = pa.scalar(None, pa.string())
_TIMESTAMP = pa.timestamp("us", tz="UTC")
_BINARY = {pa.string(): pa.binary(), pa.large_string(): pa.large_binary()}

FIELD_TOO_LARGE = "field_too_large"
NULL_NOT_ALLOWED = "null_not_allowed"
TYPE_MISMATCH = "type_mismatch"
BELOW_MIN = "below_min"
ABOVE_MAX = "above_max"
NOT_IN_ENUM = "not_in_enum"
REGEX_MISMATCH = "regex_mismatch"
TOO_LONG = "too_long"


@dataclass(frozen=True, slots=True)
class Failure:
    """Rows of a block failing one check of one column (`mask` is True where a row fails)."""

    code: str
    column: ColumnSpec
    mask: pa.BooleanArray


@dataclass(frozen=True, slots=True)
class CheckedBlock:
    """Typed columns of a block (garbage where a row failed) and its failures, first wins."""

    typed: dict[str, pa.Array]
    failures: list[Failure]

    def bad_mask(self, n: int) -> pa.BooleanArray | None:
        """True for every row with at least one failure; None when every row passed."""
        if not self.failures:
            return None
        mask = self.failures[0].mask
        for f in self.failures[1:]:
            mask = pc.or_(mask, f.mask)
        return mask


def _is_text(arr: pa.Array) -> bool:
    return bool(pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type))


def _clean(mask: pa.Array) -> pa.BooleanArray:
    return pc.fill_null(mask, False) if mask.null_count else mask


_false_cache: list[pa.BooleanArray] = [pa.array([], pa.bool_())]


def _all_false(n: int) -> pa.BooleanArray:
    """`n` False values: a zero-copy slice of one cached array, grown when too short."""
    values = _false_cache[0]
    if len(values) < n:
        size = max(n, 2 * len(values))
        values = pa.Array.from_buffers(pa.bool_(), size, [None, pa.py_buffer(bytes(size // 8 + 1))])
        _false_cache[0] = values  # one reference swap: safe to race, both values are right
    return values.slice(0, n)


def _matches(arr: pa.Array, pattern: str) -> pa.BooleanArray:
    # RE2, linear in the field length. The contract model refused at load any pattern RE2 cannot
    # compile (contracts.datasets.model.re2_problem), so nothing backtracks here.
    return _clean(pc.match_substring_regex(arr, pattern))


def _subset_matches(text: pa.Array, rows: pa.BooleanArray, pattern: str) -> pa.BooleanArray:
    """`_matches(text, pattern)` where `rows` is True, False elsewhere: the regex runs only on
    the rows a cheaper exact test could not decide (usually none or a few)."""
    if not rows.true_count:
        return rows
    if rows.true_count == len(rows) - rows.null_count:
        return pc.and_(rows, _matches(text, pattern))
    positions = pc.indices_nonzero(rows)
    hits = pc.filter(positions, _matches(text.take(positions), pattern))
    return index_mask(len(text), hits)


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")


def _shapes(text: pa.Array) -> pa.Array:
    """`text` with every ASCII digit written as "0": each value's form, so an exact form test is
    a hash lookup. One `bytes.translate` pass over the column's data buffer (a regex per value
    costs 5-10x more)."""
    validity, offsets, data = text.buffers()
    if data is None:
        return text
    shaped = pa.py_buffer(data.to_pybytes().translate(_DIGITS_AS_ZERO))
    return pa.Array.from_buffers(
        text.type, len(text), [validity, offsets, shaped], text.null_count, text.offset
    )


_DIGITS = frozenset(range(ord("0"), ord("9") + 1))
# Classes that hold every ASCII digit, or none.
_ALL_DIGITS = {sre.CATEGORY_DIGIT, sre.CATEGORY_WORD, sre.CATEGORY_NOT_SPACE}
_NO_DIGITS = {sre.CATEGORY_NOT_DIGIT, sre.CATEGORY_NOT_WORD, sre.CATEGORY_SPACE}


def _blind_class(items: list[tuple[Any, Any]]) -> bool:
    digits: set[int] = set()
    for op, arg in items:
        if op is sre.NEGATE:
            continue  # the complement of all or none of the digits is none or all
        if op is sre.LITERAL:
            digits |= _DIGITS & {arg}
        elif op is sre.RANGE:
            digits |= _DIGITS & set(range(arg[0], arg[1] + 1))
        elif op is sre.CATEGORY and arg in _ALL_DIGITS:
            digits |= _DIGITS
        elif not (op is sre.CATEGORY and arg in _NO_DIGITS):
            return False
    return len(digits) in (0, len(_DIGITS))


def _blind_items(items: Any) -> bool:
    for op, arg in items:
        if op in (sre.LITERAL, sre.NOT_LITERAL):
            if arg in _DIGITS:
                return False
        elif op is sre.IN:
            if not _blind_class(arg):
                return False
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            if not _blind_items(arg[2]):
                return False
        elif op is sre.SUBPATTERN:
            if not _blind_items(arg[3]):
                return False
        elif op is sre.BRANCH:
            if not all(_blind_items(branch) for branch in arg[1]):
                return False
        elif op not in (sre.ANY, sre.AT):
            return False
    return True


@cache
def digit_blind(pattern: str) -> bool:
    """Whether the RE2 `pattern` treats every ASCII digit alike (no digit literal, every class
    holds all ten digits or none), so it matches a value exactly when it matches the value's
    shape (`_shapes`). Read with Python's parser, whose syntax RE2's shares; any construct where
    the two may differ (POSIX and Unicode classes, `{,n}`) or not listed here counts as not
    blind, which only costs speed."""
    if "[:" in pattern or "\\p" in pattern or "\\P" in pattern or "{," in pattern:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FutureWarning on nested-set-like classes
            tree = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return False
    return _blind_items(tree)


# Values sampled to judge whether a column's shapes repeat enough for one regex per distinct
# shape to beat one regex per value (dictionary encoding costs about a fifth of a short regex).
_SHAPE_SAMPLE = 1024
_SHAPE_SAMPLE_DISTINCT = 256


def _regex_matches(text: pa.Array, pattern: str) -> pa.BooleanArray:
    """`_matches(text, pattern)`, running the regex once per distinct shape of `text` when the
    pattern is blind to digits and the shapes repeat (an id like ORD-0000000042 has one shape
    per block; a country code a few dozen)."""
    if len(text) <= _SHAPE_SAMPLE or not digit_blind(pattern):
        return _matches(text, pattern)
    # The sample's own copy: its shapes cost a translation of its bytes, not the column's.
    sample = pc.unique(_shapes(pa.concat_arrays([text.slice(0, _SHAPE_SAMPLE)])))
    if len(sample) > _SHAPE_SAMPLE_DISTINCT:
        return _matches(text, pattern)
    shapes = _shapes(text)
    if len(sample) == 1 and sample.null_count == 0:
        # One shape so far (ids): compare with it, and run the regex on the other rows alone.
        same = _clean(pc.equal(shapes, sample[0]))
        if not same.true_count * 64 < len(text) * 63:  # 63 in 64 rows have it
            verdict = _matches(sample, pattern)[0].as_py()
            hits = same if verdict else _all_false(len(text))
            return pc.or_(hits, _subset_matches(shapes, pc.invert(same), pattern))
    encoded = pc.dictionary_encode(shapes)
    return _clean(pc.take(_matches(encoded.dictionary, pattern), encoded.indices))


def _longer_than(text: pa.Array, limit: int) -> pa.BooleanArray:
    """Values of more than `limit` characters. A value has at least as many bytes as characters:
    only values of more than `limit` bytes (usually none or a few) have their characters
    counted."""
    longer = _clean(pc.greater(pc.binary_length(text), limit))
    if not longer.true_count:
        return longer
    if longer.true_count * 16 > len(text):
        return _clean(pc.greater(pc.utf8_length(text), limit))
    positions = pc.indices_nonzero(longer)
    lengths = pc.utf8_length(text.take(positions))
    return index_mask(len(text), pc.filter(positions, pc.greater(lengths, limit)))


def _day_checked(text: pa.Array, ok: pa.BooleanArray) -> tuple[pa.Array, pa.BooleanArray]:
    """Dates of `text` (its first 10 chars, already shape-checked where `ok`), impossible days
    (2024-02-30) rejected: strptime rolls them over into the next month, so compare the day."""
    date_part = pc.if_else(ok, pc.utf8_slice_codeunits(text, 0, 10), _NULL_STRING)
    parsed = pc.strptime(date_part, format="%Y-%m-%d", unit="s", error_is_null=True)
    day_text = pc.utf8_slice_codeunits(date_part, 8, 10)
    same_day = pc.equal(pc.day(parsed), pc.cast(day_text, pa.int64()))
    return parsed, pc.and_(ok, _clean(same_day))


def _parse_int(text: pa.Array, present: pa.BooleanArray) -> tuple[pa.Array, pa.BooleanArray]:
    # 1-19 ASCII digits match _INT_RE; only the rest (signs, junk) needs the regex.
    plain = pc.and_(_clean(pc.ascii_is_decimal(text)), pc.less_equal(pc.binary_length(text), 19))
    plain = pc.and_(present, _clean(plain))
    ok = pc.or_(plain, _subset_matches(text, pc.and_(present, pc.invert(plain)), _INT_RE))
    try:
        return pc.cast(pc.if_else(ok, text, _NULL_STRING), pa.int64()), ok
    except pa.ArrowInvalid:
        # Nineteen digits may overflow int64: decide those rows one by one.
        values: list[int | None] = []
        oks: list[bool] = []
        for v, good in zip(text.to_pylist(), ok.to_pylist(), strict=True):
            n = int(v) if good else None
            fits = n is not None and -(2**63) <= n < 2**63
            values.append(n if fits else None)
            oks.append(fits)
        return pa.array(values, pa.int64()), pa.array(oks, pa.bool_())


def _parse_float(text: pa.Array, present: pa.BooleanArray) -> tuple[pa.Array, pa.BooleanArray]:
    # _FLOAT_RE is blind to digits: one regex per distinct shape ("000.00").
    ok = pc.and_(present, _regex_matches(text, _FLOAT_RE))
    typed = pc.cast(pc.if_else(ok, text, _NULL_STRING), pa.float64())
    return typed, pc.and_(ok, _clean(pc.is_finite(typed)))


def _parse_bool(text: pa.Array, present: pa.BooleanArray) -> tuple[pa.Array, pa.BooleanArray]:
    ok = pc.and_(present, _clean(pc.is_in(text, value_set=_BOOL_WORDS)))
    typed = pc.if_else(ok, pc.is_in(text, value_set=_TRUE), pa.scalar(None, pa.bool_()))
    return typed, ok


def _parse_date(text: pa.Array, present: pa.BooleanArray) -> tuple[pa.Array, pa.BooleanArray]:
    ok = pc.and_(present, _matches(text, _DATE_RE))
    try:
        # Arrow's own parser rejects impossible days, but fails the whole array for one.
        return pc.cast(pc.if_else(ok, text, _NULL_STRING), pa.date32()), ok
    except pa.ArrowInvalid:
        pass
    parsed, ok = _day_checked(text, ok)
    return pc.cast(pc.if_else(ok, parsed, pa.scalar(None, parsed.type)), pa.date32()), ok


# The usual timestamp forms (digits shown as 0). Arrow's cast checks their calendar day and
# clock ranges, so one it accepts matches _TS_RE; every other form is decided by the regex.
_TS_COMMON = pa.array(["0000-00-00T00:00:00Z", "0000-00-00 00:00:00Z"], pa.string())
_TS_COMMON_FORMATS = {
    "0000-00-00T00:00:00Z": "%Y-%m-%dT%H:%M:%SZ",
    "0000-00-00 00:00:00Z": "%Y-%m-%d %H:%M:%SZ",
}


def _common_ts_valid(text: pa.Array, shapes: pa.Array, common: pa.BooleanArray) -> pa.BooleanArray:
    """Rows of a usual form (`common`) that match `_TS_RE` on a real calendar day. strptime
    rejects out-of-range months, days, hours and minutes but rolls impossible days (02-30)
    and seconds 60/61 over: the day and second it read are compared with the text."""
    valid = pc.and_(common, pa.scalar(False))
    for shape, fmt in _TS_COMMON_FORMATS.items():
        rows = pc.and_(common, _clean(pc.equal(shapes, shape)))
        if not rows.true_count:
            continue
        these = pc.if_else(rows, text, _NULL_STRING)
        parsed = pc.strptime(these, format=fmt, unit="s", error_is_null=True)
        day = pc.cast(_ascii_slice(these, 8, 10), pa.int64())
        second = pc.cast(_ascii_slice(these, 17, 19), pa.int64())
        same = pc.and_(
            _clean(pc.equal(pc.day(parsed), day)), _clean(pc.equal(pc.second(parsed), second))
        )
        valid = pc.or_(valid, pc.and_(rows, same))
    return valid


def _ascii_slice(text: pa.Array, start: int, stop: int) -> pa.Array:
    """Characters [start, stop) of values known to be ASCII (others come out cut anywhere): a
    byte slice costs a fifth of a character slice."""
    cut = pc.binary_slice(text.view(_BINARY[text.type]), start, stop)
    return cut.view(text.type)


def _impossible_days(
    text: pa.Array, shapes: pa.Array, common: pa.BooleanArray
) -> pa.BooleanArray | None:
    """The rows of `common` with an impossible day (2024-02-30), which Arrow's cast rejects for
    the whole array and strptime rolls over, or None when there is none: only a day of 29 or
    more can be one, and strptime decides those rows."""
    unsure = pc.and_(common, _clean(pc.greater_equal(_ascii_slice(text, 8, 10), "29")))
    if not unsure.true_count:
        return None
    impossible = pc.and_(unsure, pc.invert(_common_ts_valid(text, shapes, unsure)))
    return impossible if impossible.true_count else None


def _parse_timestamp(text: pa.Array, present: pa.BooleanArray) -> tuple[pa.Array, pa.BooleanArray]:
    shapes = _shapes(text)
    common = pc.and_(present, _clean(pc.is_in(shapes, value_set=_TS_COMMON)))
    other = pc.and_(present, pc.invert(common))
    if not other.true_count or not _subset_matches(text, other, _TS_RE).true_count:
        # Only common forms can pass (nearly every block): read them alone, so no other value
        # fails the cast. Arrow's cast checks their calendar day and clock ranges, so when it
        # reads them all they are the valid ones; else they are decided row by row below.
        impossible = _impossible_days(text, shapes, common)
        readable = common if impossible is None else pc.and_(common, pc.invert(impossible))
        try:
            return pc.cast(pc.if_else(readable, text, _NULL_STRING), _TIMESTAMP), readable
        except pa.ArrowInvalid:
            pass
    try:
        typed = pc.cast(pc.if_else(present, text, _NULL_STRING), _TIMESTAMP)
    except pa.ArrowInvalid:
        typed = None
    if typed is None:
        # Some value is not a timestamp Arrow reads: usually an impossible day of a common form
        # (2024-02-30); the rest is cast again without the impossible ones.
        impossible = _impossible_days(text, shapes, common)
        if impossible is not None:
            readable = pc.and_(present, pc.invert(impossible))
            try:
                typed = pc.cast(pc.if_else(readable, text, _NULL_STRING), _TIMESTAMP)
            except pa.ArrowInvalid:
                typed = None
            if typed is not None:
                common = pc.and_(common, pc.invert(impossible))
    if typed is not None:
        # Every present value is a real instant to Arrow: the common forms pass as they are.
        ok = pc.or_(common, _subset_matches(text, other, _TS_RE))
        if ok.true_count != present.true_count:
            typed = pc.if_else(ok, typed, pa.scalar(None, _TIMESTAMP))
        return typed, ok
    # Some value is not a timestamp Arrow reads (e.g. 2024-02-30): decide row by row, as
    # `_TS_RE` plus a real calendar day, then read the accepted rows in one cast.
    ok = _common_ts_valid(text, shapes, common)
    rest = _subset_matches(text, other, _TS_RE)
    if rest.true_count:
        _, rest = _day_checked(text, rest)
        ok = pc.or_(ok, rest)
    norm = pc.if_else(ok, text, _NULL_STRING)
    accepted = pc.filter(shapes, ok)
    if pc.any(_clean(pc.match_substring(accepted, ".0000000"))).as_py():
        # Arrow parses at most microseconds here: drop digits beyond six.
        norm = pc.replace_substring_regex(norm, r"(\.[0-9]{6})[0-9]+", r"\1")
    # A value of _TS_RE's form names its zone as "Z" or "+hh:mm"/"-hh:mm" at its end, or none.
    zoned = pc.or_(
        _clean(pc.ends_with(shapes, "Z")),
        pc.or_(_clean(pc.ends_with(shapes, "+00:00")), _clean(pc.ends_with(shapes, "-00:00"))),
    )
    naive = pc.and_(ok, pc.invert(zoned))
    if naive.true_count:
        norm = pc.if_else(naive, pc.binary_join_element_wise(norm, "Z", ""), norm)
    return pc.cast(norm, _TIMESTAMP), ok


_PARSERS = {
    ColumnType.INT64: _parse_int,
    ColumnType.FLOAT64: _parse_float,
    ColumnType.BOOL: _parse_bool,
    ColumnType.DATE: _parse_date,
    ColumnType.TIMESTAMP: _parse_timestamp,
}


def _null_mask(raw: pa.Array, markers: list[str]) -> pa.BooleanArray:
    if not _is_text(raw) or not markers:
        return pc.is_null(raw)
    if markers == [""]:
        lengths = pc.binary_length(raw)
        if len(raw) and not raw.null_count and pc.min(lengths).as_py() > 0:
            return _all_false(len(raw))  # no empty value (most columns of most blocks)
        mask = pc.equal(lengths, 0)
    else:
        mask = pc.is_in(raw, value_set=pa.array(markers, pa.string()))
    # A real null (JSON null, a missing key) is null whatever the markers: `is_in` calls it
    # False, `equal` null.
    return pc.or_kleene(mask, pc.is_null(raw)) if raw.null_count else mask


def _nulls_where(column: pa.Array, null: pa.BooleanArray) -> pa.Array:
    """`column` (strings) with the rows where `null` is true made null. Without nulls of its
    own, the column keeps its offsets and bytes and only gains a validity bitmap (the bytes of
    a null row are never read); otherwise its values are copied."""
    if column.null_count or null.null_count or column.offset or null.offset:
        return pc.if_else(null, _NULL_STRING, column)
    valid = pc.invert(null)
    return pa.Array.from_buffers(
        column.type,
        len(column),
        [valid.buffers()[1], *column.buffers()[1:]],
        null.true_count,
    )


def check_block(
    contract: DatasetContract,
    raw: Mapping[str, pa.Array],
    *,
    max_field_bytes: int,
    check_field_size: bool = True,
) -> CheckedBlock:
    """Check one block of raw values against `contract`.

    `raw` maps each contract column name to its values for the block's rows: strings as they
    appeared in the file (CSV, and JSON strings), or values already typed by the JSON reader
    (int64/float64/bool; JSON types are checked before this point). `check_field_size=False`
    skips the field-size kernel when no record of the block could hold a field that large.
    """
    typed: dict[str, pa.Array] = {}
    failures: list[Failure] = []

    def fail(code: str, spec: ColumnSpec, mask: pa.Array) -> None:
        if mask.true_count:
            failures.append(Failure(code, spec, mask))

    if check_field_size:
        for spec in contract.columns:
            values = raw[spec.name]
            if _is_text(values):
                fail(
                    FIELD_TOO_LARGE,
                    spec,
                    _clean(pc.greater(pc.binary_length(values), max_field_bytes)),
                )
    for spec in contract.columns:
        values = raw[spec.name]
        target = arrow_type(spec.type)
        markers = spec.null_values if spec.null_values is not None else contract.format.null_values
        null = _null_mask(values, markers)
        present = pc.invert(null)
        if not spec.nullable:
            fail(NULL_NOT_ALLOWED, spec, null)
        parser = _PARSERS.get(spec.type)
        if parser is not None and _is_text(values):
            column, ok = parser(values, present)
            fail(TYPE_MISMATCH, spec, pc.and_(present, pc.invert(ok)))
        else:
            column, ok = values, present
            if not column.type.equals(target):
                column = pc.cast(column, target)
            if _is_text(column) and null.true_count:
                # Null markers become real nulls in the typed column.
                column = _nulls_where(column, null)
        typed[spec.name] = column
        rules = spec.constraints
        numeric = spec.type in (ColumnType.INT64, ColumnType.FLOAT64)
        if numeric and rules.min is not None:
            fail(BELOW_MIN, spec, pc.and_(ok, _clean(pc.less(column, rules.min))))
        if numeric and rules.max is not None:
            fail(ABOVE_MAX, spec, pc.and_(ok, _clean(pc.greater(column, rules.max))))
        text = values if _is_text(values) else pc.cast(values, pa.string())
        if rules.enum is not None:
            allowed = pa.array(rules.enum, pa.string())
            fail(NOT_IN_ENUM, spec, pc.and_(ok, pc.invert(_clean(pc.is_in(text, allowed)))))
        if rules.regex is not None:
            fail(REGEX_MISMATCH, spec, pc.and_(ok, pc.invert(_regex_matches(text, rules.regex))))
        if rules.max_length is not None:
            too_long = _longer_than(text, rules.max_length)
            if too_long.true_count:
                fail(TOO_LONG, spec, pc.and_(ok, too_long))
    return CheckedBlock(typed, failures)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def reason_text(code: str, spec: ColumnSpec, value: Any, *, max_field_bytes: int) -> str:
    """A sentence for people saying why `value` of column `spec` failed check `code`."""
    name = spec.name
    rules = spec.constraints
    if code == FIELD_TOO_LARGE:
        size = len(value.encode("utf-8", "surrogatepass")) if isinstance(value, str) else 0
        return f"{name}: field of {size} bytes exceeds the limit of {max_field_bytes} bytes"
    if code == NULL_NOT_ALLOWED:
        return f"{name}: a value is required (got {_show(value)})"
    if code == TYPE_MISMATCH:
        return f"{name}: {_show(value)} is not a valid {spec.type.value}"
    if code == BELOW_MIN:
        return f"{name}: {_show(value)} is below the minimum {rules.min:g}"
    if code == ABOVE_MAX:
        return f"{name}: {_show(value)} is above the maximum {rules.max:g}"
    if code == NOT_IN_ENUM:
        return f"{name}: {_show(value)} is not one of {', '.join(rules.enum or [])}"
    if code == REGEX_MISMATCH:
        return f"{name}: {_show(value)} does not match {rules.regex}"
    if code == TOO_LONG:
        length = len(value) if isinstance(value, str) else 0
        return f"{name}: {length} characters, more than the maximum {rules.max_length}"
    return f"{name}: {code}"
