"""Derived columns: the contract's small vocabulary of operations, typed and computed with Arrow.

Each operation has a static result type (worked out from the contract alone, so the output schema
is known before any row is read) and a vectorised implementation over one record batch.

Semantics, chosen to never turn one odd row into a failed file:
- multiply/add/subtract: int64 when every argument is an integer, else float64. Integer overflow
  gives null for that row (not a wrapped value, not an exception).
- divide: always float64; division by zero gives null.
- upper/lower/trim: on strings (other types are cast to string first).
- concat: strings joined with `separator`; null arguments are skipped (like SQL `concat_ws`).
- date_of: timestamp → its UTC calendar date; a date stays as it is.
- round: `digits` decimals, half to even; integers are returned unchanged.
- coalesce: the first non-null argument; literals take the type of the first column argument.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from sluice_shared.datapath.schema import arrow_type, utc_as_naive

if TYPE_CHECKING:
    from collections.abc import Mapping

    from contracts.datasets import DerivedColumn

_ARITHMETIC = {"multiply", "add", "subtract", "divide"}
_STRING_OPS = {"upper", "lower", "trim"}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class DerivationError(ValueError):
    """A derived column cannot be computed from the contract as written (bad argument types)."""


Arg = str | dict[str, str | int | float | bool]


def _literal_value(arg: Arg) -> Any:
    assert isinstance(arg, dict)
    if set(arg) != {"literal"}:
        raise DerivationError(f"an argument object must be {{'literal': value}}, got {arg!r}")
    return arg["literal"]


def _literal_type(value: Any) -> pa.DataType:
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    return pa.string()


def _arg_types(derived: DerivedColumn, types: Mapping[str, pa.DataType]) -> list[pa.DataType]:
    return [
        types[a] if isinstance(a, str) else _literal_type(_literal_value(a)) for a in derived.args
    ]


def _natural_type(derived: DerivedColumn, types: Mapping[str, pa.DataType]) -> pa.DataType:
    arg_types = _arg_types(derived, types)
    op = derived.op
    if op in _ARITHMETIC:
        if len(arg_types) < 2:
            raise DerivationError(f"derived {derived.name!r}: {op} needs at least two arguments")
        for t in arg_types:
            if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
                raise DerivationError(f"derived {derived.name!r}: {op} needs numbers, got {t}")
        if op == "divide" or any(pa.types.is_floating(t) for t in arg_types):
            return pa.float64()
        return pa.int64()
    if op in _STRING_OPS or op == "concat":
        return pa.string()
    if op == "date_of":
        (t,) = arg_types[:1]
        if not (pa.types.is_timestamp(t) or pa.types.is_date(t)):
            raise DerivationError(f"derived {derived.name!r}: date_of needs a timestamp, got {t}")
        return pa.date32()
    if op == "round":
        t = arg_types[0]
        if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
            raise DerivationError(f"derived {derived.name!r}: round needs a number, got {t}")
        return t
    # coalesce: the type of the first column argument (literals follow it)
    columns = [types[a] for a in derived.args if isinstance(a, str)]
    return columns[0] if columns else arg_types[0]


def derived_type(derived: DerivedColumn, types: Mapping[str, pa.DataType]) -> pa.DataType:
    """The Arrow type of `derived` given the types of the columns it may reference.

    Raises DerivationError when the arguments do not fit the operation.
    """
    if derived.type is not None:
        return arrow_type(derived.type)
    return _natural_type(derived, types)


def _arg_values(derived: DerivedColumn, batch: pa.RecordBatch | pa.Table) -> list[Any]:
    return [batch.column(a) if isinstance(a, str) else _literal_value(a) for a in derived.args]


def _as_scalar_or_array(value: Any, target: pa.DataType) -> Any:
    if isinstance(value, pa.Array | pa.ChunkedArray):
        return value if value.type == target else pc.cast(value, target)
    return pa.scalar(value, type=target)


def _arith(op: str, values: list[Any], out: pa.DataType) -> pa.Array:
    operands = [_as_scalar_or_array(v, out) for v in values]
    if op == "divide":
        result = operands[0]
        for divisor in operands[1:]:
            zero = pc.equal(divisor, pa.scalar(0.0))
            result = pc.if_else(zero, pa.scalar(None, out), pc.divide(result, divisor))
        return result
    checked = getattr(pc, f"{op}_checked")
    try:
        result = operands[0]
        for operand in operands[1:]:
            result = checked(result, operand)
        return result
    except pa.ArrowInvalid:
        if out != pa.int64():
            raise
    # Integer overflow somewhere in the batch: the wrapped result where it is right, null where
    # the exact value (estimated in float64) leaves the int64 range.
    unchecked = getattr(pc, op)
    wrapped = operands[0]
    estimate = pc.cast(operands[0], pa.float64())
    for operand in operands[1:]:
        wrapped = unchecked(wrapped, operand)
        estimate = unchecked(estimate, pc.cast(operand, pa.float64()))
    in_range = pc.and_(
        pc.greater_equal(estimate, pa.scalar(float(_INT64_MIN))),
        pc.less(estimate, pa.scalar(float(_INT64_MAX))),
    )
    return pc.if_else(in_range, wrapped, pa.scalar(None, pa.int64()))


def compute_derived(
    derived: DerivedColumn, batch: pa.RecordBatch | pa.Table, length: int
) -> pa.Array:
    """The values of `derived` for every row of `batch`, before the optional result cast."""
    types = {name: batch.schema.field(name).type for name in batch.schema.names}
    natural = _natural_type(derived, types)
    values = _arg_values(derived, batch)
    op = derived.op
    result: Any
    if op in _ARITHMETIC:
        result = _arith(op, values, natural)
    elif op in _STRING_OPS:
        text = _as_scalar_or_array(values[0], pa.string())
        fn = {"upper": pc.utf8_upper, "lower": pc.utf8_lower, "trim": pc.utf8_trim_whitespace}
        result = fn[op](text)
    elif op == "concat":
        parts = [_as_scalar_or_array(v, pa.string()) for v in values]
        result = pc.binary_join_element_wise(*parts, derived.separator, null_handling="skip")
    elif op == "date_of":
        first = values[0]
        if isinstance(first, pa.Array | pa.ChunkedArray):
            first = utc_as_naive(first)  # the same UTC date, without a zone lookup per value
        result = _as_scalar_or_array(first, pa.date32())
    elif op == "round":
        if pa.types.is_integer(natural):
            result = values[0]
        else:
            result = pc.round(values[0], ndigits=derived.digits, round_mode="half_to_even")
    else:
        result = pc.coalesce(*[_as_scalar_or_array(v, natural) for v in values])
    if isinstance(result, pa.Scalar):
        # every argument was a literal: repeat the value for each row
        result = pa.array([result.as_py()] * length, type=result.type)
    if isinstance(result, pa.ChunkedArray):
        result = result.combine_chunks()
    return result
