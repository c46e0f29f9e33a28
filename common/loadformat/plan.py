"""compile_load(): a LoadSpec and a table's columns become a vectorized LoadPlan.

``LoadPlan.parse`` (Stream Load body) and ``LoadPlan.parse_messages`` (Kafka batch) read a whole
batch into polars columns (vector_read.py), evaluate COLUMNS expressions (vector_expr.py),
convert into the column types (vector_convert.py) and WHERE on whole columns, and return a
BatchResult whose ``table`` holds the loaded rows as Arrow.

Every row the columns cannot decide exactly (a fallback mask: bad UTF-8, wrong field count,
malformed JSON, a value the vectorized cast does not take, a NULL for a NOT NULL column, an
unsure expression result ...) is mapped by the row-at-a-time reference plan
(common/loadformat/rowplan.py, ``compile_row_load``), which gives the reason texts; its rows are
merged back in input order. These batches go to the reference whole: JSON with json_root,
strip_outer_array or jsonpaths other than '$.key', and Stream Load JSON bodies that are not
newline-delimited objects that polars reads.
"""

from __future__ import annotations

import decimal
import operator
import re
import time
from collections.abc import Callable

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from common.coltypes import CURRENT_TIMESTAMP, Column, ConversionError, convert_default, converter_for
from common.columnar import arrow_schema, column_values, is_large_int, table_from_rows
from common.loadformat.expr import compile_expression, parse_expression
from common.loadformat.functions import fmt_datetime, to_bool
from common.loadformat.jsonpath import parse_path
from common.loadformat.rowplan import (
    _EVAL_ERRORS,
    ColumnsMapping,
    RowLoadPlan,
    _unescape,
    compile_row_load,
    parse_columns,
)
from common.loadformat.spec import BatchResult, LoadSpec
from common.loadformat.vector_convert import _arrow_value, convert, convert_values
from common.loadformat.vector_expr import Col, Evaluator, Unsupported
from common.loadformat.vector_read import (
    Sources,
    body_lines,
    csv_body_sources,
    csv_sources,
    json_sources,
    message_lines,
)

__all__ = ["ColumnsMapping", "LoadPlan", "compile_load", "compile_row_load", "parse_columns"]
_KEY_RE = re.compile(r"[A-Za-z0-9_$@\-]+")
SMALL_INPUT_BYTES = 16 * 1024
"""A Stream Load body this small is mapped row at a time: the column path has a fixed cost of about
a millisecond (frames, expressions, casts), where a one-row body maps in microseconds."""
SMALL_INPUT_ROWS = 32
"""A Kafka batch (or chunk) of at most this many messages is mapped row at a time, for the same reason."""


class LoadPlan:
    """A compiled vectorized load: call ``parse`` (Stream Load body) or ``parse_messages`` (Kafka)."""

    small_input_bytes = SMALL_INPUT_BYTES
    small_input_rows = SMALL_INPUT_ROWS

    def __init__(self, row: RowLoadPlan) -> None:
        self.reference = row
        self.spec = row.spec
        self.columns = row.columns
        self.format = row.format
        self.source_names = row.source_names
        self.schema = arrow_schema(row.columns)
        self._env = row._env
        self._sep = _unescape(row.spec.column_separator)
        self._delim = _unescape(row.spec.row_delimiter)
        src = {name.lower(): i for i, name in enumerate(row.source_names)}
        self._source_index = src
        self._by_name = {c.name.lower(): j for j, c in enumerate(row.columns)}
        self._targets: list[tuple] = []
        for col in row.columns:
            key = col.name.lower()
            if key in row.derived:
                text = row.derived[key]
                node = parse_expression(text, f"the expression of column '{col.name}'")
                self._targets.append(("derived", node, text))
            elif key in src:
                self._targets.append(("direct", src[key]))
            else:
                self._targets.append(("default",))
        self._where = parse_expression(row.spec.where, "WHERE") if row.spec.where and row.spec.where.strip() else None
        self._json_keys = self._simple_keys(row)
        sensitive: set[str] = set()
        for i, name in enumerate(row.source_names):
            key = self._json_keys[i] if self._json_keys else name
            target = self._by_name.get(name.lower())
            direct_numeric = target is not None and row.columns[target].type.kind in (
                "TINYINT", "SMALLINT", "INT", "BIGINT", "FLOAT", "DOUBLE", "DECIMAL", "BOOLEAN")
            if not direct_numeric or name.lower() in row.derived:
                sensitive.add(key)
        self._sensitive = sensitive
        self._per_value: dict[int, Callable] = {}

    @staticmethod
    def _simple_keys(row: RowLoadPlan) -> list[str] | None:
        """The JSON key of each source column, or None when the batch goes to the reference."""
        spec = row.spec
        if row.format != "json" or spec.json_root or spec.strip_outer_array:
            return None
        if row.paths is None:
            return list(row.source_names)
        keys = []
        for p in row.paths:
            steps = parse_path(p)
            if len(steps) != 1 or type(steps[0]) is not str or not _KEY_RE.fullmatch(steps[0]):
                return None
            keys.append(steps[0])
        return keys

    # ------------------------------------------------------------ entry points

    def parse(self, data: bytes, first_row: int = 0) -> BatchResult:
        """Map a Stream Load body: CSV lines, or newline-delimited JSON objects.

        ``first_row``: the body is a piece of a larger one cut at a row delimiter, after that many
        rows: error samples number the rows of the whole body, and now() keeps its first value."""
        if 0 < len(data) <= self.small_input_bytes:
            return self.reference.parse(data, first_row)
        if first_row == 0:
            self._env.refresh()
        if self.format == "csv":
            read = csv_body_sources(data, self._sep, self._delim, len(self.source_names))
            if read is not None:
                src, line_at = read
                res = self._map(src, len(src.fallback),
                                lambda i, before: self.reference.map_csv_line(line_at(i), before), first_row)
                res.loaded_bytes = len(data)
                return res
            lines, bad = body_lines(data, self._delim)
            if bad.any():
                return self.reference.parse(data, first_row)
            src = csv_sources(lines, bad, self._sep, len(self.source_names))
            res = self._map(src, len(lines), lambda i, before: self.reference.map_csv_line(lines[i], before),
                            first_row)
        else:
            if self._json_keys is None:
                return self.reference.parse(data, first_row)
            docs = [line for line in data.split(b"\n") if line.strip()]
            src = json_sources(docs, self._json_keys, self._sensitive, whole_or_nothing=True) if docs else None
            if src is None:
                return self.reference.parse(data, first_row)
            res = self._map(src, len(docs), lambda i, before: self.reference.map_json_line(docs[i], before),
                            first_row)
        res.loaded_bytes = len(data)
        return res

    def parse_messages(self, msgs: list[bytes], first_row: int = 0) -> BatchResult:
        """Map a Kafka batch, or a chunk of one: each message is one CSV line or one JSON document.

        ``first_row`` is how many rows earlier chunks of the batch had: error samples number the
        rows of the whole batch, and now() keeps the value it took at the batch's first row."""
        if (self.format == "json" and self._json_keys is None) or 0 < len(msgs) <= self.small_input_rows:
            return self.reference.parse_messages(msgs, first_row)
        if first_row == 0:
            self._env.refresh()
        if self.format == "csv":
            lines, bad = message_lines(msgs, self._delim)
            src = csv_sources(lines, bad, self._sep, len(self.source_names))
        else:
            src = json_sources(msgs, self._json_keys, self._sensitive, whole_or_nothing=False)
        res = self._map(src, len(msgs), lambda i, before: self.reference.map_message(msgs[i], before), first_row)
        res.loaded_bytes = sum(map(len, msgs))
        return res

    # ------------------------------------------------------------ mapping

    def _map(self, src: Sources, n: int, by_reference: Callable[[int, int], BatchResult], first_row: int) -> BatchResult:
        fallback = src.fallback
        source_cols = [Col(s, k) for s, k in zip(src.columns, src.kinds, strict=True)]
        py_sources: list[list] | None = None

        def sources_py() -> list[list]:
            nonlocal py_sources
            if py_sources is None:
                py_sources = [s.to_list() for s in src.columns]
            return py_sources

        def ref(name: str) -> Col:
            return source_cols[self._source_index[name.lower()]]

        ev = Evaluator(ref, self._env, n)
        arrays: list[pa.Array] = []
        views: list[Col | None] = []
        for col, target in zip(self.columns, self._targets, strict=True):
            if target[0] == "default":
                arrays.append(self._default_array(col, n))
                views.append(None)
                continue
            if target[0] == "derived":
                try:
                    value = ev.eval(target[1])
                except Unsupported:
                    arr, fail = self._derived_per_value(col, target, sources_py(), n)
                    arrays.append(arr)
                    views.append(None)
                    fallback = fallback | fail
                    continue
                strict, missing_default = False, False
            else:
                value = source_cols[target[1]]
                strict, missing_default = self.spec.strict_mode, src.missing_is_null and col.default is not None
            if value.unsure is not None:
                fallback = fallback | value.unsure.fill_null(True)
            try:
                conv = convert(value, col.type, strict)
                arr, fail, view = conv.array, conv.fail, conv.view
            except Unsupported:
                arr, fail = convert_values(value.s.to_list(), col.type, strict)
                view = None
            fallback = fallback | fail.fill_null(True)
            is_null = value.s.is_null()
            if is_null.any():
                if missing_default:
                    arr = _fill(arr, is_null, self._default_array(col, 1))
                    view = None
                elif not col.nullable:
                    fallback = fallback | is_null
            arrays.append(arr)
            views.append(view)

        if self._where is not None:
            selected, unsure = self._eval_where(arrays, views, source_cols, sources_py, n)
            fallback = fallback | unsure
            loaded = ~fallback & selected
            unselected = int((~fallback & ~selected).sum())
        else:
            loaded, unselected = ~fallback, 0
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        if not loaded.all():
            table = table.filter(loaded.to_arrow())
        res = BatchResult(total_rows=n, unselected_rows=unselected, table=table)
        fb = fallback.arg_true().to_list()
        if fb:
            self._merge_reference(res, fb, loaded, by_reference, first_row)
        return res

    def _merge_reference(self, res: BatchResult, fb: list[int], loaded: pl.Series,
                         by_reference: Callable[[int, int], BatchResult], first_row: int) -> None:
        limit = self.spec.max_error_samples
        rows: list[tuple] = []
        at: list[int] = []
        for i in fb:
            r = by_reference(i, first_row + i)
            res.filtered_rows += r.filtered_rows
            res.unselected_rows += r.unselected_rows
            room = limit - len(res.errors)
            if room > 0:
                res.errors.extend(r.errors[:room])
            if r.rows:
                rows.extend(r.rows)
                at.extend([i] * len(r.rows))
        if rows:
            extra = table_from_rows(rows, self.schema)
            index = loaded.arg_true().to_list() + at
            order = sorted(range(len(index)), key=index.__getitem__)
            res.table = pa.concat_tables([res.table, extra]).take(pa.array(order, type=pa.int64()))
            res._rows = None

    def _default_array(self, col: Column, n: int) -> pa.Array:
        value = convert_default(col.default, col.type)
        if value == CURRENT_TIMESTAMP:
            value = fmt_datetime(self._env.zone.local(int(self._env.now_ts)))
        to_arrow = _arrow_value(col.type.kind)
        if value is not None and to_arrow is not None:
            value = to_arrow(value)
        return pa.array([value] * n, type=self.schema.field(col.name).type)

    def _derived_per_value(self, col: Column, target: tuple, values: list[list], n: int) -> tuple[pa.Array, pl.Series]:
        """A COLUMNS expression with no column form, run per row with the reference's closure."""
        key = id(target)
        fn = self._per_value.get(key)
        if fn is None:
            compiled = compile_expression(target[1], lambda name: operator.itemgetter(self._source_index[name.lower()]),
                                          self._env, f"the expression of column '{col.name}'")
            fn = compiled.fn
            skip = compiled.rtype is not None and compiled.rtype == col.type.kind.lower()
            self._per_value[key] = fn = (fn, skip)
        fn, skip = fn
        conv = converter_for(col.type, False)
        to_arrow = _arrow_value(col.type.kind)
        out: list = []
        fail = [False] * n
        rows = zip(*values, strict=True) if values else [()] * n
        for i, row in enumerate(rows):
            try:
                v = fn(row)
            except _EVAL_ERRORS:
                v = None
            if v is not None and not skip:
                try:
                    v = conv(v)
                except ConversionError:
                    v = None
                    fail[i] = not col.nullable
            if v is None and not col.nullable:
                fail[i] = True
            out.append(v if v is None or to_arrow is None else to_arrow(v))
        return pa.array(out, type=self.schema.field(col.name).type), pl.Series(fail, dtype=pl.Boolean)

    def _eval_where(self, arrays: list[pa.Array], views: list[Col | None], source_cols: list[Col],
                    sources_py: Callable[[], list[list]], n: int) -> tuple[pl.Series, pl.Series]:
        def ref(name: str) -> Col:
            j = self._by_name.get(name.lower())
            if j is None:
                return source_cols[self._source_index[name.lower()]]
            if views[j] is None:
                raise Unsupported
            return views[j]

        try:
            c = Evaluator(ref, self._env, n).eval(self._where)
            if c.kind not in ("bool", "null"):
                raise Unsupported
            no = pl.repeat(False, n, dtype=pl.Boolean, eager=True)
            selected = c.s.cast(pl.Boolean).fill_null(False) if c.kind == "bool" else no
            return selected, (c.unsure.fill_null(True) if c.unsure is not None else no)
        except Unsupported:
            pass
        targets: dict[int, list] = {}

        def resolve(name: str) -> Callable:
            j = self._by_name.get(name.lower())
            if j is None:
                i = self._source_index[name.lower()]
                return lambda ctx: ctx[1][i]
            if j not in targets:
                field = self.schema.field(j)
                vals = column_values(arrays[j], is_large_int(field))
                if self.columns[j].type.kind == "DECIMAL":
                    vals = [None if v is None else decimal.Decimal(v) for v in vals]
                targets[j] = vals
            vals = targets[j]
            return lambda ctx: vals[ctx[0]]

        fn = compile_expression(self._where, resolve, self._env, "WHERE").fn
        py = sources_py()
        selected = [False] * n
        rows = zip(*py, strict=True) if py else [()] * n
        for i, srow in enumerate(rows):
            try:
                selected[i] = to_bool(fn((i, srow))) is True
            except _EVAL_ERRORS:
                selected[i] = False
        return pl.Series(selected, dtype=pl.Boolean), pl.repeat(False, n, dtype=pl.Boolean, eager=True)


def _fill(arr: pa.Array, mask: pl.Series, default: pa.Array) -> pa.Array:
    """``arr`` with the rows in ``mask`` replaced by the one value of ``default``."""
    return pc.if_else(mask.to_arrow(), default[0], arr)


def compile_load(spec: LoadSpec, table_columns: list[Column], *, clock: Callable[[], float] = time.time,
                 small_input_bytes: int = SMALL_INPUT_BYTES, small_input_rows: int = SMALL_INPUT_ROWS) -> LoadPlan:
    """Check ``spec`` against the table and build its vectorized LoadPlan; raises LoadSpecError.

    ``clock`` (epoch seconds) feeds now() and DEFAULT CURRENT_TIMESTAMP, read once per batch.
    Inputs up to ``small_input_bytes`` (a body) or ``small_input_rows`` (messages) are mapped row at
    a time; tests set them to 0 to put every input through the column path.
    """
    plan = LoadPlan(compile_row_load(spec, table_columns, clock=clock))
    plan.small_input_bytes, plan.small_input_rows = small_input_bytes, small_input_rows
    return plan

