"""Simple column predicates for reads (Query): column op value, typed like the column."""

from __future__ import annotations

import operator
from collections.abc import Callable

from common.coltypes import Column, ConversionError, convert
from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import types_pb2

_OPS: dict[str, Callable[[object, object], bool]] = {
    "=": operator.eq, "==": operator.eq, "!=": operator.ne, "<>": operator.ne,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
ALLOWED_OPS = "=, !=, <, <=, >, >=, IN, IS NULL, IS NOT NULL"


def _typed(value: str, col: Column) -> object:
    try:
        return convert(value, col.type, strict=True)
    except ConversionError as exc:
        raise InvalidArgument(f"predicate on '{col.name}': {exc}") from None


def compile_predicates(preds: list[types_pb2.Predicate], columns: list[Column]) -> Callable[[tuple], bool]:
    """One function testing a row against every predicate (AND)."""
    index = {c.name.lower(): (i, c) for i, c in enumerate(columns)}
    tests: list[Callable[[tuple], bool]] = []
    for p in preds:
        found = index.get(p.column.lower())
        if found is None:
            raise InvalidArgument(
                f"unknown column '{p.column}' in a predicate; columns: {', '.join(c.name for c in columns)}"
            )
        i, col = found
        op = p.op.strip().upper()
        if op == "IS NULL":
            tests.append(lambda row, i=i: row[i] is None)
        elif op == "IS NOT NULL":
            tests.append(lambda row, i=i: row[i] is not None)
        elif op == "IN":
            values = frozenset(_typed(v, col) for v in p.values)
            tests.append(lambda row, i=i, values=values: row[i] in values)
        elif op in _OPS:
            fn, value = _OPS[op], _typed(p.value, col)
            tests.append(lambda row, i=i, fn=fn, value=value: row[i] is not None and fn(row[i], value))
        else:
            raise InvalidArgument(f"unknown predicate operator '{p.op}'; allowed: {ALLOWED_OPS}")
    if not tests:
        return lambda row: True
    if len(tests) == 1:
        return tests[0]
    return lambda row: all(t(row) for t in tests)
