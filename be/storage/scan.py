"""Reads (Query, ScanTablets): column predicates, projection and partial aggregates over segments.

Predicates are ``column op value`` (=, !=, <>, <, <=, >, >=, IN, IS NULL, IS NOT NULL), ANDed.
The value is converted to the column's type strictly (common/coltypes.py), once per read; a value
that does not convert is InvalidArgument naming the predicate. A comparison with NULL is false,
so ``!=`` and ``IN`` never match a NULL.

:class:`VectorFilter` evaluates them with pyarrow.compute kernels on whole columns of a segment
table (common/columnar.py); :func:`compile_predicates` is the same test one row at a time, for
rows of plain values. Both order DECIMAL values as numbers and LARGEINT values as integers.

:class:`TabletScan` is one ScanTablets request: it takes the segments of the tablets read, in
batches of about :data:`BATCH_ROWS` rows, and gives the count of matching rows, at most ``limit``
of them (projected, as one columnar segment) or, for an aggregate read, one partial-aggregate
table (common/aggregates.py).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from be.storage.aggregate import partial_aggregate
from common.aggregates import AggregatePlan, plan_aggregates, value_column, value_type
from common.coltypes import Column, ConversionError, convert
from common.columnar import arrow_schema, encode_segment, read_table, rows_of, segment_rows
from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import types_pb2
from common.rowcodec import encode_rows

ALLOWED_OPS = "=, !=, <>, <, <=, >, >=, IN, IS NULL, IS NOT NULL"
BATCH_ROWS = 1 << 18
"""Segments are filtered and aggregated in batches of about this many rows: few kernel calls per
read, and memory bounded whatever the tablet's size."""

_COMPARE = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ROW_OPS: dict[str, Callable[[object, object], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_KERNELS = {"=": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal, ">": pc.greater,
            ">=": pc.greater_equal}


@dataclass(frozen=True)
class Term:
    """One predicate, checked and typed: ``value`` is the stored value (common/coltypes.py) of a
    comparison, a tuple of them for IN, None for IS [NOT] NULL."""

    index: int
    column: Column
    op: str  # =, !=, <, <=, >, >=, IN, IS NULL, IS NOT NULL
    value: object


def _typed(value: str, col: Column) -> object:
    try:
        return convert(value, col.type, strict=True)
    except ConversionError as exc:
        raise InvalidArgument(f"predicate on '{col.name}': {exc}") from None


def parse_predicates(preds: Sequence[types_pb2.Predicate], columns: Sequence[Column]) -> list[Term]:
    """The predicates checked against the columns; InvalidArgument names what is wrong."""
    index = {c.name.lower(): (i, c) for i, c in enumerate(columns)}
    terms = []
    for p in preds:
        found = index.get(p.column.lower())
        if found is None:
            raise InvalidArgument(
                f"unknown column '{p.column}' in a predicate; columns: {', '.join(c.name for c in columns)}"
            )
        i, col = found
        op = " ".join(p.op.split()).upper()
        if op in ("IS NULL", "IS NOT NULL"):
            terms.append(Term(i, col, op, None))
        elif op == "IN":
            terms.append(Term(i, col, op, tuple(dict.fromkeys(_typed(v, col) for v in p.values))))
        elif op in _COMPARE:
            terms.append(Term(i, col, _COMPARE[op], _typed(p.value, col)))
        else:
            raise InvalidArgument(f"unknown predicate operator '{p.op}'; allowed: {ALLOWED_OPS}")
    return terms


# ---------------------------------------------------------------- one row at a time


def _row_key(col: Column) -> Callable[[object], object]:
    """How a stored value compares: DECIMAL text as a number, everything else as it is."""
    if col.type.kind == "DECIMAL":
        return decimal.Decimal
    return lambda v: v


def compile_predicates(preds: Sequence[types_pb2.Predicate], columns: Sequence[Column]) -> Callable[[tuple], bool]:
    """One function testing a row of stored values against every predicate (AND)."""
    tests: list[Callable[[tuple], bool]] = []
    for t in parse_predicates(preds, columns):
        i, key = t.index, _row_key(t.column)
        if t.op == "IS NULL":
            tests.append(lambda row, i=i: row[i] is None)
        elif t.op == "IS NOT NULL":
            tests.append(lambda row, i=i: row[i] is not None)
        elif t.op == "IN":
            values = frozenset(key(v) for v in t.value)
            tests.append(lambda row, i=i, key=key, values=values: row[i] is not None and key(row[i]) in values)
        else:
            fn, value = _ROW_OPS[t.op], key(t.value)
            tests.append(lambda row, i=i, fn=fn, key=key, value=value: row[i] is not None and fn(key(row[i]), value))
    if not tests:
        return lambda row: True
    if len(tests) == 1:
        return tests[0]
    return lambda row: all(t(row) for t in tests)


# ---------------------------------------------------------------- whole columns


def arrow_value(col: Column, value: object) -> object:
    """A stored value (common/coltypes.py) as the Python value of the column's Arrow value type."""
    if value is None:
        return None
    kind = col.type.kind
    if kind in ("DECIMAL", "LARGEINT"):
        return decimal.Decimal(value)
    if kind == "DATE":
        return _dt.date.fromisoformat(value)
    if kind == "DATETIME":
        return _dt.datetime.fromisoformat(value)
    return value


class VectorFilter:
    """The predicates as pyarrow.compute kernels over whole columns of a segment table."""

    def __init__(self, terms: Sequence[Term]) -> None:
        self._tests: list[Callable[[pa.Table], pa.ChunkedArray]] = []
        for t in terms:
            col, vtype = t.column, value_type(t.column)
            if t.op == "IS NULL":
                self._tests.append(lambda table, col=col: pc.is_null(table.column(col.name)))
            elif t.op == "IS NOT NULL":
                self._tests.append(lambda table, col=col: pc.is_valid(table.column(col.name)))
            elif t.op == "IN":
                value_set = pa.array([arrow_value(col, v) for v in t.value], type=vtype)
                self._tests.append(lambda table, col=col, vs=value_set: pc.is_in(value_column(table, col), value_set=vs))
            else:
                kernel, scalar = _KERNELS[t.op], pa.scalar(arrow_value(col, t.value), type=vtype)
                self._tests.append(lambda table, col=col, k=kernel, s=scalar: k(value_column(table, col), s))

    @property
    def selects_all(self) -> bool:
        return not self._tests

    def mask(self, table: pa.Table) -> pa.ChunkedArray | None:
        """True where a row matches; NULL (a comparison with NULL) and false where it does not.
        None when there is no predicate (every row matches)."""
        if not self._tests:
            return None
        out = self._tests[0](table)
        for test in self._tests[1:]:
            out = pc.and_kleene(out, test(table))
        return out


def compile_filter(preds: Sequence[types_pb2.Predicate], columns: Sequence[Column]) -> VectorFilter:
    return VectorFilter(parse_predicates(preds, columns))


def count_matches(mask: pa.ChunkedArray | None, table: pa.Table) -> int:
    if mask is None:
        return table.num_rows
    return pc.sum(mask).as_py() or 0  # trues only: NULLs are skipped


# ---------------------------------------------------------------- one ScanTablets request


@dataclass
class _Schema:
    """What a read needs of one tablet schema, compiled once."""

    arrow: pa.Schema
    filter: VectorFilter
    projection: list[str]
    plan: AggregatePlan | None
    needed: list[str]  # the columns a batch is cut down to before it is filtered
    pending: list[pa.Table] = field(default_factory=list)
    pending_rows: int = 0


@dataclass
class ScanResult:
    count: int
    rows: bytes  # a columnar segment of the projection, or marshal rows of every column; b"" if none
    partials: bytes = b""  # a partial-aggregate segment (aggregate reads)
    aggregated: bool = False


class TabletScan:
    """One read over the segments of some tablets (one ScanTablets request); see the module
    docstring. Pure: the caller reads the segments and feeds them with :meth:`add`."""

    def __init__(self, predicates: Sequence[types_pb2.Predicate], limit: int, *, columnar: bool = True,
                 columns: Sequence[str] = (), aggregates: Sequence[tuple[str, str]] = (), group_by: str = "",
                 batch_rows: int = BATCH_ROWS) -> None:
        if limit < 0:
            raise InvalidArgument(f"invalid limit {limit}: must be >= 0")
        self._predicates = list(predicates)
        self._limit = limit
        self._columnar = columnar
        self._columns = list(columns)
        self._aggregates = list(aggregates)
        self._group_by = group_by
        self._batch_rows = batch_rows
        self._schemas: dict[str, _Schema] = {}
        self.count = 0
        self._rows: list[pa.Table] = []
        self._row_count = 0
        self._partials: list[pa.Table] = []
        self._plan: AggregatePlan | None = None

    def _compile(self, schema_json: str) -> _Schema:
        """The read compiled for a tablet's ``schema_json`` (once per distinct text)."""
        compiled = self._schemas.get(schema_json)
        if compiled is None:
            columns = [Column.from_dict(c) for c in orjson.loads(schema_json or "[]")]
            if not columns:
                raise InvalidArgument("the tablet declares no columns (it was made without a table): "
                                      "it cannot be read")
            terms = parse_predicates(self._predicates, columns)
            plan = plan_aggregates(self._aggregates, self._group_by, columns)
            if plan is not None and self._columns:
                raise InvalidArgument("columns (a projection) cannot be combined with aggregates or group_by")
            by_name = {c.name.lower(): c.name for c in columns}
            projection = [c.name for c in columns]
            if self._columns:
                unknown = [n for n in self._columns if n.lower() not in by_name]
                if unknown:
                    raise InvalidArgument(f"unknown column '{unknown[0]}' in columns {self._columns}; "
                                          f"columns: {', '.join(projection)}")
                projection = [by_name[n.lower()] for n in self._columns]
            if plan is not None:
                used = {a.column.name for a in plan.aggregates if a.column is not None}
                if plan.group_by is not None:
                    used.add(plan.group_by.name)
            else:
                used = set(projection if self._columnar else [c.name for c in columns])
            used |= {t.column.name for t in terms}
            # count(*) alone reads no column, but a table of none has no rows: keep the first
            needed = [c.name for c in columns if c.name in used] or [columns[0].name]
            compiled = self._schemas[schema_json] = _Schema(arrow_schema(columns), VectorFilter(terms), projection,
                                                            plan, needed)
            self._plan = self._plan or plan
        return compiled

    def tablet(self, schema_json: str) -> None:
        """A tablet of ``schema_json`` is read, whether or not it has a segment: an aggregate read
        of tablets without rowsets (a table just created) still answers aggregates (count 0)."""
        self._compile(schema_json)

    @property
    def _rows_full(self) -> bool:
        return self._row_count >= self._limit

    def add(self, payload: bytes, schema_json: str) -> None:
        """One segment (either format) of a tablet of ``schema_json``."""
        s = self._compile(schema_json)
        if s.plan is None and s.filter.selects_all and self._rows_full:
            self.count += segment_rows(payload)  # nothing to test or keep: only its row count
            return
        table = read_table(payload, s.arrow)
        if table.num_rows == 0:
            return
        s.pending.append(table)
        s.pending_rows += table.num_rows
        if s.pending_rows >= self._batch_rows:
            self._flush(s)

    def _flush(self, s: _Schema) -> None:
        if not s.pending:
            return
        table = pa.concat_tables(s.pending) if len(s.pending) > 1 else s.pending[0]
        s.pending, s.pending_rows = [], 0
        table = table.select(s.needed)
        mask = s.filter.mask(table)
        matched = count_matches(mask, table)
        self.count += matched
        if matched == 0:
            return
        if s.plan is not None:
            rows = table if mask is None else table.filter(mask)
            self._partials.append(partial_aggregate(s.plan, rows))
        elif not self._rows_full:
            keep = s.projection if self._columnar else table.column_names
            rows = table.select(keep)
            if mask is not None:
                rows = rows.filter(mask)
            rows = rows.slice(0, self._limit - self._row_count)
            self._rows.append(rows)
            self._row_count += rows.num_rows

    def finish(self) -> ScanResult:
        for s in self._schemas.values():
            self._flush(s)
        if self._plan is not None:
            merged = self._plan.merge(self._partials)
            return ScanResult(self.count, b"", encode_segment(merged), aggregated=True)
        if not self._rows:
            return ScanResult(self.count, b"")
        rows = pa.concat_tables(self._rows, promote_options="permissive") if len(self._rows) > 1 else self._rows[0]
        if self._columnar:
            return ScanResult(self.count, encode_segment(rows))
        return ScanResult(self.count, encode_rows(rows_of(rows)))
