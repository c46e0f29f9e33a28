"""Partial aggregates on a BE: the matching rows of a read, aggregated per group.

:func:`partial_aggregate` turns a table of matching rows (a segment, or a few concatenated) into
a partial table of common/aggregates.py; the scan (be/storage/scan.py) merges the partials of its
batches with :meth:`AggregatePlan.merge` and sends the FE one partial table per request.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from common.aggregates import GROUP, ROWS, AggregatePlan, is_integer, value_column
from common.coltypes import Column

_INT64_LIMIT = 2**63


def _summable(values: pa.ChunkedArray, col: Column) -> pa.ChunkedArray:
    """Integer values summed in int64 when no sum of them can wrap (the common case, fast), else
    as 38-digit decimals."""
    if not is_integer(col) or col.type.kind == "LARGEINT" or len(values) == 0:
        return values
    bounds = pc.min_max(values)
    lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
    if lo is None or max(abs(lo), abs(hi)) * len(values) < _INT64_LIMIT:
        return values
    return values.cast(pa.decimal128(38, 0))


def partial_aggregate(plan: AggregatePlan, table: pa.Table) -> pa.Table:
    """The partial aggregates (``plan.partial_schema``) of the rows of ``table``, a segment table
    whose rows all match the read's predicates."""
    inputs: dict[str, pa.ChunkedArray] = {}
    how: list[tuple] = [([], "count_all")]
    out: list[str] = []  # the aggregate output column of each partial column, in schema order
    for i, a in enumerate(plan.aggregates):
        if a.column is None:  # count(*): the group's rows
            out.append("count_all")
            continue
        values = value_column(table, a.column)
        name = f"v{i}"
        if a.func in ("sum", "avg"):
            inputs[name] = _summable(values, a.column)
            how.append((name, "sum"))
            out.append(f"{name}_sum")
            if a.func == "avg":
                how.append((name, "count"))
                out.append(f"{name}_count")
        else:
            inputs[name] = values
            fn = "count" if a.func == "count" else a.func
            how.append((name, fn))
            out.append(f"{name}_{fn}")
    keys = []
    if plan.group_by is not None:
        inputs[GROUP] = value_column(table, plan.group_by)
        keys = [GROUP]
    source = pa.table(inputs) if inputs else pa.table({ROWS: pa.nulls(table.num_rows, pa.int64())})
    grouped = source.group_by(keys, use_threads=False).aggregate(how)
    schema = plan.partial_schema
    arrays = [grouped.column(GROUP)] if keys else []
    arrays += [grouped.column("count_all")] + [grouped.column(name) for name in out]
    return pa.Table.from_arrays(arrays, names=schema.names).cast(schema)
