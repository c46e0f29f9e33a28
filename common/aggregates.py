"""Aggregates of a read: what a Query asks for, the partial results a BE sends, how they merge.

A Query with aggregates (count, sum, min, max, avg) and an optional group_by column is answered
in two steps, as StarRocks' two-phase aggregation does: every BE aggregates the matching rows of
the tablets it reads into *partial* aggregates per group (be/storage/aggregate.py), and the FE
merges the BEs' partials and renders the final values (fe/service/query.py). Both steps merge
partial tables with :meth:`AggregatePlan.merge`, so the BE can aggregate segment by segment.

A partial table (:meth:`AggregatePlan.partial_schema`) has these columns:

==============  ==========================================  ===========================
column          what                                        merged by
==============  ==========================================  ===========================
``g``           the group value (only with group_by)        the key
``rows``        matching rows of the group (int64)          sum
``a<i>_count``  count and avg: non-NULL values (int64);      sum
                rows for count(*)
``a<i>_sum``    sum and avg: the sum (:func:`sum_type`),     sum (NULL while every value
                NULL when the group has no non-NULL value    is NULL)
``a<i>_min``    min (the column's :func:`value_type`)        min
``a<i>_max``    max                                         max
==============  ==========================================  ===========================

Types, chosen to stay exact: a sum of integers (TINYINT .. BIGINT) is an integer of 38 digits (a
BIGINT sum that would wrap in 64 bits stays right), of LARGEINT one of 76 digits, of
DECIMAL(p,s) a decimal with scale s and 38 digits, of FLOAT/DOUBLE a float64. LARGEINT values,
stored as text in segments (common/columnar.py), are compared and grouped as decimal256(39, 0)
numbers, never as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from common.coltypes import INTEGER_RANGES, NUMERIC_KINDS, Column
from common.columnar import arrow_type
from common.errors import InvalidArgument

FUNCS = ("count", "sum", "min", "max", "avg")
ALLOWED_FUNCS = ", ".join(FUNCS)
NUMERIC_TEXT = "TINYINT, SMALLINT, INT, BIGINT, LARGEINT, FLOAT, DOUBLE, DECIMAL(p,s)"
LARGEINT_TYPE = pa.decimal256(39, 0)
"""How a LARGEINT column is compared and aggregated (its segments keep it as decimal text)."""
GROUP = "g"
ROWS = "rows"
_PARTS = {"count": ("count",), "sum": ("sum",), "avg": ("sum", "count"), "min": ("min",), "max": ("max",)}
_COUNT_SUM = pc.ScalarAggregateOptions(min_count=0)  # a sum of counts over no partials is 0, not NULL


def value_type(col: Column) -> pa.DataType:
    """The Arrow type a column's values are compared, grouped and aggregated in."""
    return LARGEINT_TYPE if col.type.kind == "LARGEINT" else arrow_type(col.type)


def value_column(table: pa.Table, col: Column) -> pa.ChunkedArray:
    """``col`` of a segment table (common/columnar.py) in its :func:`value_type`: LARGEINT's text
    as numbers, every other column as it is."""
    values = table.column(col.name)
    return values.cast(LARGEINT_TYPE) if col.type.kind == "LARGEINT" else values


def sum_type(col: Column) -> pa.DataType:
    """The type of a partial (and final) sum of ``col`` (see the module docstring)."""
    kind = col.type.kind
    if kind == "LARGEINT":
        return pa.decimal256(76, 0)
    if kind in INTEGER_RANGES:
        return pa.decimal128(38, 0)
    if kind == "DECIMAL":
        return pa.decimal128(38, col.type.scale or 0)
    return pa.float64()


def is_integer(col: Column) -> bool:
    return col.type.kind in INTEGER_RANGES


@dataclass(frozen=True)
class AggregateSpec:
    """One aggregate, checked against the table's columns; ``column`` None is count(*)."""

    func: str
    column: Column | None

    @property
    def header(self) -> str:
        """The result column's name, as StarRocks heads it: 'count(*)', 'sum(amount)'."""
        return f"{self.func}({self.column.name if self.column else '*'})"

    def parts(self, i: int) -> list[str]:
        """Names of this aggregate's partial columns, ``i`` being its place in the request."""
        return [f"a{i}_{part}" for part in _PARTS[self.func]]


@dataclass(frozen=True)
class AggregatePlan:
    """The aggregates and group_by of one read, checked; partial tables and their merge."""

    aggregates: tuple[AggregateSpec, ...]
    group_by: Column | None

    @property
    def headers(self) -> list[str]:
        return ([self.group_by.name] if self.group_by else []) + [a.header for a in self.aggregates]

    @property
    def partial_schema(self) -> pa.Schema:
        fields = [pa.field(GROUP, value_type(self.group_by))] if self.group_by else []
        fields.append(pa.field(ROWS, pa.int64()))
        for i, a in enumerate(self.aggregates):
            for name in a.parts(i):
                part = name.rsplit("_", 1)[1]
                if part == "count":
                    fields.append(pa.field(name, pa.int64()))
                elif part == "sum":
                    fields.append(pa.field(name, sum_type(a.column)))
                else:
                    fields.append(pa.field(name, value_type(a.column)))
        return pa.schema(fields)

    def merge(self, partials: Sequence[pa.Table]) -> pa.Table:
        """Partial tables (of any split of the rows) merged into one: one row per group. With no
        group_by, exactly one row, also when no row matched (rows 0, sums and min/max NULL)."""
        schema = self.partial_schema
        tables = [t if t.schema.equals(schema) else t.cast(schema) for t in partials]
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        how: list[tuple] = [(ROWS, "sum", _COUNT_SUM)]
        for i, a in enumerate(self.aggregates):
            for name in a.parts(i):
                part = name.rsplit("_", 1)[1]
                how.append((name, "sum", _COUNT_SUM) if part == "count" else (name, part))
        merged = table.group_by([GROUP] if self.group_by else [], use_threads=False).aggregate(how)
        arrays = [merged.column(GROUP)] if self.group_by else []
        arrays += [merged.column(f"{name}_{fn}") for name, fn, *_ in how]
        return pa.Table.from_arrays(arrays, names=schema.names).cast(schema)


def plan_aggregates(aggregates: Sequence[tuple[str, str]], group_by: str,
                    columns: Sequence[Column]) -> AggregatePlan | None:
    """Check (func, column) pairs and a group_by column name against the table's columns.

    None when the read aggregates nothing (no aggregates, no group_by). Raises InvalidArgument
    naming what was wrong and what is allowed."""
    if not aggregates and not group_by:
        return None
    by_name = {c.name.lower(): c for c in columns}
    names = ", ".join(c.name for c in columns)
    specs = []
    for func_text, column_text in aggregates:
        func = func_text.strip().lower()
        name = column_text.strip()
        shown = f"{func_text}({column_text or '*'})"
        if func not in FUNCS:
            raise InvalidArgument(f"unknown aggregate function '{func_text}' in {shown}; allowed: {ALLOWED_FUNCS}")
        if name in ("", "*"):
            if func != "count":
                raise InvalidArgument(f"{shown} is not allowed: only count takes '*' (count(*) counts rows); "
                                      f"give {func} a column")
            specs.append(AggregateSpec(func, None))
            continue
        col = by_name.get(name.lower())
        if col is None:
            raise InvalidArgument(f"unknown column '{name}' in {shown}; columns: {names}")
        kind = col.type.kind
        if func in ("sum", "avg") and kind not in NUMERIC_KINDS:
            raise InvalidArgument(f"{shown} needs a numeric column ({NUMERIC_TEXT}); '{col.name}' is {col.type}")
        if func in ("min", "max") and kind == "JSON":
            raise InvalidArgument(f"{shown} is not allowed: a JSON column has no order; min and max take numbers, "
                                  "strings, DATE, DATETIME and BOOLEAN")
        specs.append(AggregateSpec(func, col))
    group_col = None
    if group_by:
        group_col = by_name.get(group_by.strip().lower())
        if group_col is None:
            raise InvalidArgument(f"unknown group_by column '{group_by}'; columns: {names}")
        if group_col.type.kind == "JSON":
            raise InvalidArgument(f"group_by column '{group_col.name}' is JSON, which cannot be grouped; "
                                  "group by a number, string, DATE, DATETIME or BOOLEAN column")
    return AggregatePlan(tuple(specs), group_col)
