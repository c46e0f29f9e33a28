"""Parsing and mapping of load batches, shared by Stream Load and Routine Load.

``compile_load(spec, table_columns)`` checks a LoadSpec against a table once and returns a
vectorized LoadPlan (``compile_row_load`` the row-at-a-time reference); ``plan.parse(body)`` maps a Stream Load body and ``plan.parse_messages(msgs)`` a Kafka
batch into a BatchResult of converted rows, counts and filtered-row samples.

The vectorized plan (and polars with it) is imported on first use: the FE validates load specs
with the row plan and never loads polars (about 45 MB of resident memory).
"""

from common.loadformat.expr import parse_expression
from common.loadformat.functions import FUNCTIONS
from common.loadformat.jsonpath import MISSING, parse_jsonpaths, parse_path
from common.loadformat.rowplan import ColumnsMapping, RowLoadPlan, compile_row_load, parse_columns
from common.loadformat.spec import BatchResult, FilteredRow, LoadSpec, LoadSpecError

__all__ = [
    "FUNCTIONS",
    "MISSING",
    "BatchResult",
    "ColumnsMapping",
    "FilteredRow",
    "LoadPlan",
    "LoadSpec",
    "LoadSpecError",
    "RowLoadPlan",
    "compile_load",
    "compile_row_load",
    "parse_columns",
    "parse_expression",
    "parse_jsonpaths",
    "parse_path",
]


def __getattr__(name: str) -> object:
    if name in ("LoadPlan", "compile_load"):
        from common.loadformat import plan

        return getattr(plan, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
