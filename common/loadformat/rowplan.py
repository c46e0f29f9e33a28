"""compile_row_load(): the row-at-a-time reference LoadPlan, one closure call per value.

common/loadformat/plan.py's vectorized plan decides what it can on whole columns and hands every
row it cannot decide exactly to this plan (``map_message``, ``map_csv_line``, ``map_json_line``),
which gives the reason texts. This plan fills ``BatchResult.rows`` directly; its ``table`` is None.

The plan is built once per load (Stream Load request, Routine Load task) and holds one closure
per target column. ``LoadPlan.parse`` reads a Stream Load body and ``LoadPlan.parse_messages``
a batch of Kafka messages; both go through the same per-row mapping:

1. the source row: the CSV fields of a line, or a JSON object (or any JSON node with jsonpaths);
2. each target column: its source value, its COLUMNS expression, its default, or NULL; then
   conversion into the column type with StarRocks' strict-mode rules;
3. WHERE over the target values: rows where it is not TRUE are *unselected*, not errors.

A row that cannot be loaded is *filtered*: counted, and sampled as a FilteredRow whose reason
names the row number in the batch, the column, the value and the type.
"""

from __future__ import annotations

import decimal
import operator
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson

from common.coltypes import CURRENT_TIMESTAMP, Column, ConversionError, convert_default, converter_for
from common.loadformat.expr import compile_expression, parse_expression
from common.loadformat.functions import EvalEnv, Zone, fmt_datetime, to_bool
from common.loadformat.jsonpath import MISSING, compile_path, parse_jsonpaths
from common.loadformat.spec import FORMATS, BatchResult, FilteredRow, LoadSpec, LoadSpecError

MAX_RAW_ROW_CHARS = 200
NULL_MARKER = "\\N"
# Evaluation errors of a COLUMNS expression give NULL, as SQL does for a failed cast or 1/0.
_EVAL_ERRORS = (ArithmeticError, ValueError, TypeError, OverflowError, IndexError)
_ITEM_RE = re.compile(r"\s*(`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)\s*(?:=(?!=)(.*))?", re.S)


class _RowError(Exception):
    """A row must be filtered; the message is the reason without the row number."""


@dataclass(frozen=True)
class _Bad:
    """Input that could not be decoded, kept in place so that row numbers stay in order."""

    raw: str
    reason: str


def _unescape(text: str) -> str:
    """Separators arrive as header text: '\\t', '\\n', '\\x01' mean the control characters."""
    return re.sub(
        r"\\(x[0-9a-fA-F]{2}|[tnr\\])",
        lambda m: (
            {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(m.group(1)) or chr(int(m.group(1)[1:], 16))
        ),
        text,
    )


def _split_top_level(text: str) -> list[str]:
    """Split COLUMNS text at commas outside parentheses and quotes."""
    items, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


@dataclass(frozen=True)
class ColumnsMapping:
    """The parsed COLUMNS text: source names in order, and derived target -> expression text."""

    sources: tuple[str, ...]
    derived: tuple[tuple[str, str], ...]


def parse_columns(text: str) -> ColumnsMapping:
    sources: list[str] = []
    derived: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in _split_top_level(text):
        m = _ITEM_RE.fullmatch(item)
        if m is None:
            raise LoadSpecError(
                f"invalid COLUMNS item {item.strip()!r} in {text!r}: expected a source column name or "
                "'column = expression', e.g. COLUMNS(k1, tmp_ts, v = from_unixtime(tmp_ts))"
            )
        name = m.group(1).strip("`")
        if name.lower() in seen:
            raise LoadSpecError(f"column '{name}' is listed twice in COLUMNS {text!r}")
        seen.add(name.lower())
        if m.group(2) is None:
            sources.append(name)
        elif not m.group(2).strip():
            raise LoadSpecError(f"COLUMNS item {item.strip()!r} has no expression after '='")
        else:
            derived.append((name, m.group(2).strip()))
    return ColumnsMapping(tuple(sources), tuple(derived))


class RowLoadPlan:
    """A compiled row-at-a-time load: call ``parse`` (Stream Load body) or ``parse_messages`` (Kafka batch)."""

    def __init__(
        self,
        spec: LoadSpec,
        columns: list[Column],
        fmt: str,
        env: EvalEnv,
        source_names: list[str],
        accessors: list[Callable],
        col_fns: list[Callable],
        where: Callable | None,
    ) -> None:
        self.spec = spec
        self.columns = list(columns)
        self.format = fmt
        self.source_names = source_names
        self._env = env
        self._accessors = accessors
        self._col_fns = col_fns
        self._where = where
        self._sep = _unescape(spec.column_separator)
        self._row_delimiter = _unescape(spec.row_delimiter)
        self._root = compile_path(spec.json_root) if spec.json_root else None
        self._by_key = fmt == "json" and not spec.jsonpaths
        self.derived: dict[str, str] = {}
        """Lower-case target name -> COLUMNS expression text."""
        self.paths: list[str] | None = None
        """The jsonpaths, one per source column, or None."""

    # ------------------------------------------------------------ entry points

    def parse(self, data: bytes, first_row: int = 0) -> BatchResult:
        """Map a Stream Load body: CSV lines, or one JSON document / newline-delimited JSON.

        ``first_row``: the body is a piece of a larger one cut at a row delimiter, after that many
        rows (as in ``parse_messages``)."""
        if first_row == 0:
            self._env.refresh()
        out = _Out(self.spec.max_error_samples, first_row)
        out.result.loaded_bytes = len(data)
        if self.format == "csv":
            self._csv_lines(self._body_lines(data, out), out)
        else:
            for doc, raw in self._json_documents(data):
                self._json_doc(doc, raw, out)
        return out.result

    def parse_messages(self, msgs: list[bytes], first_row: int = 0) -> BatchResult:
        """Map a Kafka batch, or a chunk of one: each message is one CSV line or one JSON document.

        ``first_row`` is how many rows earlier chunks of the batch had: error samples number the
        rows of the whole batch, and now() keeps the value it took at the batch's first row."""
        if first_row == 0:
            self._env.refresh()
        out = _Out(self.spec.max_error_samples, first_row)
        out.result.loaded_bytes = sum(len(m) for m in msgs)
        if self.format == "csv":
            self._csv_lines([self._message_line(m) for m in msgs], out)
        else:
            for m in msgs:
                self._json_doc(_message_doc(m), m, out)
        return out.result

    def _message_line(self, msg: bytes) -> str | _Bad:
        """A CSV message as its line: decoded, without a trailing row delimiter."""
        try:
            line = msg.decode("utf-8")
        except UnicodeDecodeError as e:
            return _bad_utf8(msg, e)
        delim = self._row_delimiter
        return line[: -len(delim)] if line.endswith(delim) else line

    # ------------------------------------------------------------ single rows (vectorized fallback)

    def map_message(self, msg: bytes, rows_before: int) -> BatchResult:
        """One Kafka message as parse_messages maps it; errors number rows after ``rows_before``."""
        out = _Out(self.spec.max_error_samples, rows_before)
        if self.format == "csv":
            self._csv_lines([self._message_line(msg)], out)
        else:
            self._json_doc(_message_doc(msg), msg, out)
        return out.result

    def map_csv_line(self, line: str, rows_before: int) -> BatchResult:
        """One decoded CSV line of a Stream Load body."""
        out = _Out(self.spec.max_error_samples, rows_before)
        self._csv_lines([line], out)
        return out.result

    def map_json_line(self, line: bytes, rows_before: int) -> BatchResult:
        """One valid NDJSON line of a Stream Load body whose lines are all valid (raw text not kept)."""
        out = _Out(self.spec.max_error_samples, rows_before)
        self._json_doc(orjson.loads(line), None, out)
        return out.result

    # ------------------------------------------------------------ CSV

    def _body_lines(self, data: bytes, out: _Out) -> list[str | _Bad]:
        delim = self._row_delimiter
        try:
            lines: list[str | _Bad] = data.decode("utf-8").split(delim)
        except UnicodeDecodeError:
            lines = []
            for chunk in data.split(delim.encode("utf-8")):
                try:
                    lines.append(chunk.decode("utf-8"))
                except UnicodeDecodeError as e:
                    lines.append(_bad_utf8(chunk, e))
        if lines and lines[-1] == "":
            lines.pop()
        return lines

    def _csv_lines(self, lines: Iterable[str | _Bad], out: _Out) -> None:
        sep, nsrc = self._sep, len(self.source_names)
        col_fns, where = self._col_fns, self._where
        res = out.result
        rows = res.rows
        for line in lines:
            res.total_rows += 1
            if type(line) is _Bad:
                out.error(line.raw, line.reason)
                continue
            fields = line.split(sep)
            if len(fields) != nsrc:
                out.error(line, f"expected {nsrc} fields separated by {sep!r} but got {len(fields)}")
                continue
            if NULL_MARKER in line:
                fields = [None if f == NULL_MARKER else f for f in fields]
            try:
                row = tuple([f(fields) for f in col_fns])
            except _RowError as e:
                out.error(line, str(e))
                continue
            if where is not None and not where(row, fields):
                res.unselected_rows += 1
                continue
            rows.append(row)

    # ------------------------------------------------------------ JSON

    def _json_documents(self, data: bytes) -> list[tuple[object, bytes | None]]:
        try:
            return [(orjson.loads(data), None)]
        except orjson.JSONDecodeError as whole_error:
            lines = [line for line in data.split(b"\n") if line.strip()]
            if len(lines) <= 1:
                return [(_Bad(data.decode("utf-8", "replace"), f"malformed JSON: {whole_error}"), None)]
        try:  # newline-delimited JSON: parse all lines in one call when they are all valid
            return [(doc, None) for doc in orjson.loads(b"[" + b",".join(lines) + b"]")]
        except orjson.JSONDecodeError:
            docs: list[tuple[object, bytes | None]] = []
            for line in lines:
                try:
                    docs.append((orjson.loads(line), line))
                except orjson.JSONDecodeError as e:
                    docs.append((_Bad(line.decode("utf-8", "replace"), f"malformed JSON: {e}"), line))
            return docs

    def _json_doc(self, doc: object, raw: bytes | None, out: _Out) -> None:
        res = out.result
        if type(doc) is _Bad:
            res.total_rows += 1
            out.error(doc.raw, doc.reason)
            return
        if self._root is not None:
            whole, doc = doc, self._root(doc)
            if doc is MISSING:
                res.total_rows += 1
                out.error(_raw_json(raw, whole), f"json_root {self.spec.json_root!r} is not in the document")
                return
        if self.spec.strip_outer_array:
            if type(doc) is not list:
                res.total_rows += 1
                out.error(_raw_json(raw, doc), "expected a JSON array because strip_outer_array is true")
                return
            objs = doc
        elif type(doc) is list:
            res.total_rows += 1
            out.error(
                _raw_json(raw, doc),
                "the JSON document is an array; set strip_outer_array=true to load its elements as rows",
            )
            return
        else:
            objs = (doc,)
        col_fns, where, rows, by_key = self._col_fns, self._where, res.rows, self._by_key
        for obj in objs:
            res.total_rows += 1
            if by_key and type(obj) is not dict:
                out.error(_raw_json(None, obj), f"expected a JSON object but got {_json_kind(obj)}")
                continue
            try:
                row = tuple([f(obj) for f in col_fns])
            except _RowError as e:
                out.error(_raw_json(None, obj), str(e))
                continue
            if where is not None and not where(row, obj):
                res.unselected_rows += 1
                continue
            rows.append(row)


class _Out:
    """The result being built, with sampling of filtered rows."""

    __slots__ = ("result", "_max_samples", "_first_row")

    def __init__(self, max_samples: int, first_row: int = 0) -> None:
        self.result = BatchResult()
        self._max_samples = max_samples
        self._first_row = first_row

    def error(self, raw: str, reason: str) -> None:
        """Record a filtered row; the row number is the batch's row count so far."""
        res = self.result
        res.filtered_rows += 1
        if len(res.errors) < self._max_samples:
            res.errors.append(FilteredRow(raw[:MAX_RAW_ROW_CHARS], f"row {self._first_row + res.total_rows}: {reason}"))


def _message_doc(msg: bytes) -> object:
    """A JSON message as its document, or a _Bad naming why it is not one."""
    try:
        return orjson.loads(msg)
    except orjson.JSONDecodeError as e:
        return _Bad(msg.decode("utf-8", "replace"), f"malformed JSON: {e}")


def _bad_utf8(raw: bytes, e: UnicodeDecodeError) -> _Bad:
    return _Bad(raw.decode("utf-8", "replace"), f"invalid UTF-8 ({e.reason} at byte {e.start})")


def _raw_json(raw: bytes | None, node: object) -> str:
    if raw is not None:
        return raw[: MAX_RAW_ROW_CHARS * 4].decode("utf-8", "replace")
    if node is MISSING:
        return ""
    try:
        return orjson.dumps(node).decode()
    except TypeError:
        return str(node)


def _json_kind(node: object) -> str:
    return {
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "null",
    }.get(type(node), type(node).__name__)


# ---------------------------------------------------------------- compilation


def compile_row_load(
    spec: LoadSpec, table_columns: list[Column], *, clock: Callable[[], float] = time.time
) -> RowLoadPlan:
    """Check ``spec`` against the table and build its row-at-a-time plan; raises LoadSpecError.

    ``clock`` (epoch seconds) feeds now() and DEFAULT CURRENT_TIMESTAMP, read once per batch.
    """
    fmt = (spec.format or "").strip().lower()
    if fmt not in FORMATS:
        raise LoadSpecError(f"unknown format {spec.format!r}; allowed formats: {', '.join(FORMATS)}")
    if not spec.column_separator:
        raise LoadSpecError("column_separator must not be empty; e.g. ',' or '\\t' or '\\x01'")
    if not spec.row_delimiter:
        raise LoadSpecError("row_delimiter must not be empty; e.g. '\\n'")
    if spec.max_error_samples < 0:
        raise LoadSpecError(f"max_error_samples must be >= 0, got {spec.max_error_samples}")
    if not table_columns:
        raise LoadSpecError("the table has no columns")
    env = EvalEnv(Zone(spec.timezone), clock)
    by_name = {c.name.lower(): i for i, c in enumerate(table_columns)}
    table_names = ", ".join(c.name for c in table_columns)

    if spec.columns is not None and spec.columns.strip():
        mapping = parse_columns(spec.columns)
    else:
        mapping = None
    paths = parse_jsonpaths(spec.jsonpaths) if fmt == "json" and spec.jsonpaths else None
    if spec.json_root:
        compile_path(spec.json_root)

    if mapping is not None:
        sources = list(mapping.sources)
        derived = list(mapping.derived)
        if paths is not None and len(paths) != len(sources):
            raise LoadSpecError(
                f"jsonpaths has {len(paths)} paths but COLUMNS names {len(sources)} source columns "
                f"({', '.join(sources) or 'none'}); they are matched by position and must be as many"
            )
    else:
        derived = []
        if paths is not None:
            if len(paths) > len(table_columns):
                raise LoadSpecError(
                    f"jsonpaths has {len(paths)} paths but the table has only {len(table_columns)} columns "
                    f"({table_names}); without COLUMNS they are matched to table columns in order"
                )
            sources = [c.name for c in table_columns[: len(paths)]]
        else:
            sources = [c.name for c in table_columns]
    for name, _ in derived:
        if name.lower() not in by_name:
            raise LoadSpecError(
                f"COLUMNS maps column '{name}' but the table has no such column; table columns: {table_names}"
            )
    if not sources and fmt == "csv":
        raise LoadSpecError(f"COLUMNS {spec.columns!r} names no source column for the CSV fields")

    # One accessor per source column: it reads the raw value from a CSV field list or a JSON row.
    if fmt == "csv":
        accessors = [operator.itemgetter(i) for i in range(len(sources))]
    elif paths is not None:
        accessors = [compile_path(p) for p in paths]
    else:
        accessors = [operator.methodcaller("get", name, MISSING) for name in sources]
    source_index = {name.lower(): i for i, name in enumerate(sources)}

    def source_ref(name: str, what: str) -> Callable:
        i = source_index.get(name.lower())
        if i is None:
            raise LoadSpecError(
                f"{what} refers to column '{name}' which is not a source column; "
                f"source columns: {', '.join(sources) or 'none'}"
            )
        get = accessors[i]
        if fmt == "csv":
            return get
        return lambda src: None if (v := get(src)) is MISSING else v

    derived_by_target = {name.lower(): text for name, text in derived}
    col_fns = []
    for col in table_columns:
        key = col.name.lower()
        if key in derived_by_target:
            what = f"the expression of column '{col.name}'"
            node = parse_expression(derived_by_target[key], what)
            compiled = compile_expression(node, lambda n, w=what: source_ref(n, w), env, what)
            col_fns.append(_derived_column(col, compiled.fn, compiled.rtype, derived_by_target[key]))
        elif key in source_index:
            col_fns.append(
                _direct_column(col, accessors[source_index[key]], spec.strict_mode, _default_fn(col, env))
            )
        else:
            if col.default is None and not col.nullable:
                raise LoadSpecError(
                    f"column '{col.name}' is NOT NULL and has no default, but the load gives it no value; "
                    f"name it in COLUMNS (source columns: {', '.join(sources) or 'none'}) or map it "
                    "with 'name = expression'"
                )
            default = _default_fn(col, env)
            col_fns.append(lambda src, d=default: d())

    where = None
    if spec.where is not None and spec.where.strip():
        where = _compile_where(spec.where, table_columns, by_name, source_index, source_ref, env)
    plan = RowLoadPlan(spec, table_columns, fmt, env, sources, accessors, col_fns, where)
    plan.derived = {name.lower(): text for name, text in derived}
    plan.paths = paths
    return plan


def _default_fn(col: Column, env: EvalEnv) -> Callable[[], object]:
    try:
        value = convert_default(col.default, col.type)
    except ValueError as e:
        raise LoadSpecError(f"column '{col.name}': {e}") from None
    if value == CURRENT_TIMESTAMP:
        return lambda: fmt_datetime(env.zone.local(int(env.now_ts)))
    return lambda: value


def _direct_column(col: Column, get: Callable, strict: bool, default: Callable[[], object]) -> Callable:
    conv = converter_for(col.type, strict)
    name, nullable, has_default = col.name, col.nullable, col.default is not None

    def direct(src: object) -> object:
        v = get(src)
        if v is None or v is MISSING:
            if v is MISSING and has_default:
                return default()
            if nullable:
                return None
            raise _RowError(f"column '{name}' is NULL but the column is NOT NULL")
        try:
            return conv(v)
        except ConversionError as e:
            if strict or not nullable:
                raise _RowError(f"column '{name}' {e}") from None
            return None

    return direct


def _derived_column(col: Column, fn: Callable, rtype: str | None, text: str) -> Callable:
    # StarRocks: strict mode does not apply to columns computed by expressions, so a value the
    # expression produced that does not fit the type is NULL unless the column is NOT NULL.
    conv = converter_for(col.type, False)
    skip_conversion = rtype is not None and rtype == col.type.kind.lower()
    name, nullable = col.name, col.nullable

    def derived(src: object) -> object:
        try:
            v = fn(src)
        except _EVAL_ERRORS:
            v = None
        if v is None:
            if nullable:
                return None
            raise _RowError(f"column '{name}' is NULL (from {text}) but the column is NOT NULL")
        if skip_conversion:
            return v
        try:
            return conv(v)
        except ConversionError as e:
            if nullable:
                return None
            raise _RowError(f"column '{name}' {e} (from {text})") from None

    return derived


def _compile_where(
    text: str,
    table_columns: list[Column],
    by_name: dict[str, int],
    source_index: dict[str, int],
    source_ref: Callable,
    env: EvalEnv,
) -> Callable:
    node = parse_expression(text, "WHERE")

    def resolve(name: str) -> Callable:
        j = by_name.get(name.lower())
        if j is None:
            if name.lower() in source_index:
                ref = source_ref(name, "WHERE")
                return lambda ctx: ref(ctx[1])
            raise LoadSpecError(
                f"WHERE {text!r} refers to unknown column '{name}'; table columns: "
                f"{', '.join(c.name for c in table_columns)}"
            )
        if table_columns[j].type.kind == "DECIMAL":
            return lambda ctx: None if (v := ctx[0][j]) is None else decimal.Decimal(v)
        return lambda ctx: ctx[0][j]

    fn = compile_expression(node, resolve, env, "WHERE").fn

    def selected(row: tuple, src: object) -> bool:
        try:
            return to_bool(fn((row, src))) is True
        except _EVAL_ERRORS:
            return False

    return selected
