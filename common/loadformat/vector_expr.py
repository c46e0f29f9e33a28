"""COLUMNS and WHERE expressions evaluated on whole columns (polars), with the reference's results.

An expression tree from ``expr.parse_expression`` is evaluated bottom-up into a :class:`Col`:
a polars Series, the Python type its non-NULL values have in the reference (``kind``), and an
``unsure`` mask of rows where the column result could differ from the reference (an integer that
might overflow 64 bits, a non-ASCII upper(), a string that needs the reference's text-to-number
rules ...). Unsure rows are mapped by the row-at-a-time plan.

Vectorized nodes: literals, column references, + - * / (numbers), comparisons, AND OR NOT,
IS [NOT] NULL, [NOT] IN (constants), [NOT] BETWEEN, CAST to integer/FLOAT/DOUBLE/string types,
from_unixtime(x) and from_unixtime(x, '%Y-%m-%d %H:%i:%s'), unix_timestamp(), now(),
current_timestamp(), upper, lower, concat, coalesce, ifnull, nvl, if, substr/substring with
constant positive bounds, length, char_length, abs.

Everything else (%, CAST to DECIMAL/DATE/DATETIME/BOOLEAN/JSON, operands of mixed kinds such as
text in arithmetic, from_unixtime with another format, unix_timestamp(x), str_to_date,
date_format, date_trunc, to_date, year .. second, trim, ltrim, rtrim, replace, nullif, round,
floor, ceil, ceiling) raises :class:`Unsupported`; the caller then evaluates the whole
expression per value over the columns with the reference's compiled closure (exact, slower).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from common.coltypes import INTEGER_RANGES
from common.loadformat.functions import DEFAULT_DATETIME_FORMAT, MAX_UNIX_TS, EvalEnv, Zone, fmt_datetime

_SAFE_INT = 2**53
INT_TEXT_RE = r"^[+-]?\d{1,18}$"
"""Text that int(), to_int() and the integer converters all read as the same int64."""


class Unsupported(Exception):
    """The node has no exact column form; evaluate the expression per value instead."""


@dataclass
class Col:
    s: pl.Series
    kind: str
    """'int', 'float', 'str', 'bool' or 'null': the Python type of non-NULL values in the reference."""
    unsure: pl.Series | None = None
    dt: pl.Series | None = None
    """Datetime('us') equal to the canonical text ``s``, when the node is a from_unixtime()."""
    const: object = None
    is_const: bool = False


def any_unsure(*cols: Col) -> pl.Series | None:
    masks = [c.unsure for c in cols if c is not None and c.unsure is not None]
    if not masks:
        return None
    out = masks[0]
    for m in masks[1:]:
        out = out | m
    return out


def _series(value: object, n: int) -> Col:
    if value is None:
        return Col(pl.Series([None] * n, dtype=pl.Null), "null", const=None, is_const=True)
    t = type(value)
    if t is bool:
        return Col(pl.Series([value] * n, dtype=pl.Boolean), "bool", const=value, is_const=True)
    if t is int:
        if not -(2**63) <= value < 2**63:
            raise Unsupported
        return Col(pl.Series([value] * n, dtype=pl.Int64), "int", const=value, is_const=True)
    if t is float:
        return Col(pl.Series([value] * n, dtype=pl.Float64), "float", const=value, is_const=True)
    if t is str:
        return Col(pl.Series([value] * n, dtype=pl.String), "str", const=value, is_const=True)
    raise Unsupported


def _abs_over(s: pl.Series, bound: float) -> pl.Series:
    return (s.abs() > bound).fill_null(False)


def _numeric(c: Col) -> Col:
    if c.kind == "bool":
        return Col(c.s.cast(pl.Int64), "int", c.unsure)
    if c.kind in ("int", "float", "null"):
        return c
    raise Unsupported


def _or(a: pl.Series | None, b: pl.Series | None) -> pl.Series | None:
    if a is None:
        return b
    return a if b is None else a | b


def local_datetime(epoch: pl.Series, zone: Zone) -> pl.Series:
    """Epoch seconds (Int64, all within 0..MAX_UNIX_TS or null) as zone-local Datetime('us'),
    with the offsets the reference's Zone gives (looked up once per distinct 15-minute bucket)."""
    buckets = (epoch // 900).unique().drop_nulls().to_list()
    offsets = {b: zone.offset(b * 900) for b in buckets}
    if len(set(offsets.values())) <= 1:
        off = next(iter(offsets.values()), 0)
        local = epoch + off
    else:
        local = epoch + (epoch // 900).replace_strict(offsets, return_dtype=pl.Int64, default=None)
    return pl.from_epoch(local, time_unit="s").cast(pl.Datetime("us"))


class Evaluator:
    """Evaluates one parsed expression over a batch; ``ref(name)`` gives a column as a Col."""

    def __init__(self, ref: Callable[[str], Col], env: EvalEnv, n: int) -> None:
        self.ref, self.env, self.n = ref, env, n

    def eval(self, node: tuple) -> Col:
        return getattr(self, "_e_" + node[0], self._unsupported)(node)

    def _unsupported(self, node: tuple) -> Col:
        raise Unsupported

    def _e_lit(self, node: tuple) -> Col:
        return _series(node[1], self.n)

    def _e_ref(self, node: tuple) -> Col:
        return self.ref(node[1])

    def _e_neg(self, node: tuple) -> Col:
        return self._arith("-", _series(0, self.n), self.eval(node[1]))

    def _e_arith(self, node: tuple) -> Col:
        return self._arith(node[1], self.eval(node[2]), self.eval(node[3]))

    def _arith(self, op: str, a: Col, b: Col) -> Col:
        if op == "%":
            raise Unsupported
        a, b = _numeric(a), _numeric(b)
        unsure = any_unsure(a, b)
        if a.kind == "null" or b.kind == "null":
            return Col(pl.Series([None] * self.n, dtype=pl.Null), "null", unsure)
        both_int = a.kind == "int" and b.kind == "int"
        if op == "/" or not both_int:
            if a.kind == "int":
                unsure = _or(unsure, _abs_over(a.s, _SAFE_INT))
            if b.kind == "int":
                unsure = _or(unsure, _abs_over(b.s, _SAFE_INT))
            x, y = a.s.cast(pl.Float64), b.s.cast(pl.Float64)
            if op == "/":
                r = pl.select(pl.when(y == 0).then(None).otherwise(x / y)).to_series()
            else:
                r = {"+": x + y, "-": x - y, "*": x * y}[op]
            return Col(r, "float", _or(unsure, ~r.is_finite().fill_null(True)))
        limit = 2**31 if op == "*" else 2**62
        unsure = _or(unsure, _abs_over(a.s, limit) | _abs_over(b.s, limit))
        return Col({"+": a.s + b.s, "-": a.s - b.s, "*": a.s * b.s}[op], "int", unsure)

    def _e_cmp(self, node: tuple) -> Col:
        return self._cmp(node[1], self.eval(node[2]), self.eval(node[3]))

    def _cmp(self, op: str, a: Col, b: Col) -> Col:
        unsure = any_unsure(a, b)
        if a.kind == "null" or b.kind == "null":
            return Col(pl.Series([None] * self.n, dtype=pl.Boolean), "bool", unsure)
        if a.kind != b.kind:
            if a.kind not in ("int", "float") or b.kind not in ("int", "float"):
                raise Unsupported
            for c in (a, b):
                if c.kind == "int":
                    unsure = _or(unsure, _abs_over(c.s, _SAFE_INT))
            x, y = a.s.cast(pl.Float64), b.s.cast(pl.Float64)
        else:
            x, y = a.s, b.s
        r = {"=": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
        return Col(r, "bool", unsure)

    def _bool(self, node: tuple) -> Col:
        c = self.eval(node)
        if c.kind == "null":
            return Col(pl.Series([None] * self.n, dtype=pl.Boolean), "bool", c.unsure)
        if c.kind != "bool":
            raise Unsupported
        return c

    def _e_and(self, node: tuple) -> Col:
        a, b = self._bool(node[1]), self._bool(node[2])
        return Col(pl.select(pl.lit(a.s) & pl.lit(b.s)).to_series(), "bool", any_unsure(a, b))

    def _e_or(self, node: tuple) -> Col:
        a, b = self._bool(node[1]), self._bool(node[2])
        return Col(pl.select(pl.lit(a.s) | pl.lit(b.s)).to_series(), "bool", any_unsure(a, b))

    def _e_not(self, node: tuple) -> Col:
        a = self._bool(node[1])
        return Col(~a.s, "bool", a.unsure)

    def _e_isnull(self, node: tuple) -> Col:
        c = self.eval(node[1])
        return Col(c.s.is_not_null() if node[2] else c.s.is_null(), "bool", c.unsure)

    def _e_in(self, node: tuple) -> Col:
        v = self.eval(node[1])
        items = [self.eval(i) for i in node[2]]
        if v.kind == "null":
            return Col(pl.Series([None] * self.n, dtype=pl.Boolean), "bool", v.unsure)
        consts = []
        for it in items:
            if not it.is_const or it.const is None:
                raise Unsupported
            ok = it.kind == v.kind or (v.kind == "float" and it.kind == "int" and abs(it.const) < _SAFE_INT)
            if not ok:
                raise Unsupported
            consts.append(float(it.const) if v.kind == "float" else it.const)
        hit = v.s.is_in(pl.Series(consts, dtype=v.s.dtype).implode())
        r = pl.select(pl.when(v.s.is_null()).then(None).otherwise(~hit if node[3] else hit)).to_series()
        return Col(r, "bool", v.unsure)

    def _e_between(self, node: tuple) -> Col:
        v, lo, hi = (self.eval(x) for x in node[1:4])
        ge, le = self._cmp(">=", v, lo), self._cmp("<=", v, hi)
        r = pl.select(pl.lit(ge.s) & pl.lit(le.s)).to_series()
        return Col(~r if node[4] else r, "bool", any_unsure(ge, le))

    def _e_cast(self, node: tuple) -> Col:
        from common.loadformat.vector_convert import cast_expression

        return cast_expression(self.eval(node[1]), node[2], self.n)

    # ------------------------------------------------------------ functions

    def _e_call(self, node: tuple) -> Col:
        name, args = node[1], node[2]
        fn = getattr(self, "_f_" + name, None)
        if fn is None:
            raise Unsupported
        return fn(args)

    def _f_from_unixtime(self, args: list) -> Col:
        if len(args) == 2:
            fmt = self.eval(args[1])
            if not fmt.is_const or fmt.const != DEFAULT_DATETIME_FORMAT:
                raise Unsupported
        x = self.eval(args[0])
        unsure = x.unsure
        if x.kind == "null":
            return Col(pl.Series([None] * self.n, dtype=pl.String), "str", unsure)
        if x.kind == "int":
            ts = x.s
        elif x.kind == "float":
            ts = x.s.cast(pl.Int64, strict=False)
        elif x.kind == "str":
            ok = x.s.str.contains(INT_TEXT_RE)
            unsure = _or(unsure, x.s.is_not_null() & ~ok.fill_null(True))
            ts = pl.select(pl.when(ok).then(x.s).otherwise(None)).to_series().cast(pl.Int64)
        elif x.kind == "bool":
            ts = x.s.cast(pl.Int64)
        else:
            raise Unsupported
        ts = pl.select(pl.when((ts >= 0) & (ts <= MAX_UNIX_TS)).then(ts).otherwise(None)).to_series()
        dt = local_datetime(ts, self.env.zone)
        return Col(dt.dt.strftime("%Y-%m-%d %H:%M:%S"), "str", unsure, dt=dt)

    def _f_unix_timestamp(self, args: list) -> Col:
        if args:
            raise Unsupported
        return _series(int(self.env.now_ts), self.n)

    def _f_now(self, args: list) -> Col:
        text = fmt_datetime(self.env.zone.local(int(self.env.now_ts)))
        c = _series(text, self.n)
        c.dt = pl.Series([text] * self.n).str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S")
        return c

    _f_current_timestamp = _f_now

    def _str_arg(self, node: tuple) -> Col:
        c = self.eval(node)
        if c.kind == "int":
            return Col(c.s.cast(pl.String), "str", c.unsure)
        if c.kind == "bool":
            text = pl.when(pl.lit(c.s).is_null()).then(None).when(pl.lit(c.s)).then(pl.lit("1")).otherwise(pl.lit("0"))
            return Col(pl.select(text).to_series(), "str", c.unsure)
        if c.kind == "null":
            return Col(pl.Series([None] * self.n, dtype=pl.String), "str", c.unsure)
        if c.kind != "str":
            raise Unsupported
        return c

    def _case(self, args: list, upper: bool) -> Col:
        c = self._str_arg(args[0])
        non_ascii = ~c.s.str.contains(r"^[\x00-\x7f]*$").fill_null(True)
        s = c.s.str.to_uppercase() if upper else c.s.str.to_lowercase()
        return Col(s, "str", _or(c.unsure, non_ascii))

    def _f_upper(self, args: list) -> Col:
        return self._case(args, True)

    def _f_lower(self, args: list) -> Col:
        return self._case(args, False)

    def _f_concat(self, args: list) -> Col:
        parts = [self._str_arg(a) for a in args]
        s = pl.select(pl.concat_str([pl.lit(p.s) for p in parts], ignore_nulls=False)).to_series()
        return Col(s, "str", any_unsure(*parts))

    def _f_coalesce(self, args: list) -> Col:
        cols = [self.eval(a) for a in args]
        kinds = {c.kind for c in cols} - {"null"}
        if len(kinds) > 1:
            raise Unsupported
        kind = kinds.pop() if kinds else "null"
        typed = [c.s for c in cols if c.kind != "null"]
        if not typed:
            return Col(cols[0].s, "null", any_unsure(*cols))
        s = pl.select(pl.coalesce([pl.lit(x) for x in typed])).to_series()
        return Col(s, kind, any_unsure(*cols))

    _f_ifnull = _f_coalesce
    _f_nvl = _f_coalesce

    def _f_if(self, args: list) -> Col:
        cond = self._bool(args[0])
        a, b = self.eval(args[1]), self.eval(args[2])
        if a.kind != b.kind and "null" not in (a.kind, b.kind):
            raise Unsupported
        kind = a.kind if a.kind != "null" else b.kind
        dtype = (a.s if a.kind != "null" else b.s).dtype
        s = pl.select(pl.when(pl.lit(cond.s).fill_null(False)).then(pl.lit(a.s).cast(dtype))
                      .otherwise(pl.lit(b.s).cast(dtype))).to_series()
        return Col(s, kind, any_unsure(cond, a, b))

    def _f_substr(self, args: list) -> Col:
        s = self._str_arg(args[0])
        bounds = [self.eval(a) for a in args[1:]]
        if not all(b.is_const and type(b.const) is int and b.const > 0 for b in bounds):
            raise Unsupported
        length = bounds[1].const if len(bounds) > 1 else None
        return Col(s.s.str.slice(bounds[0].const - 1, length), "str", s.unsure)

    _f_substring = _f_substr

    def _f_length(self, args: list) -> Col:
        s = self._str_arg(args[0])
        return Col(s.s.str.len_bytes().cast(pl.Int64), "int", s.unsure)

    def _f_char_length(self, args: list) -> Col:
        s = self._str_arg(args[0])
        return Col(s.s.str.len_chars().cast(pl.Int64), "int", s.unsure)

    def _f_abs(self, args: list) -> Col:
        c = _numeric(self.eval(args[0]))
        if c.kind == "int":
            return Col(c.s.abs(), "int", _or(c.unsure, (c.s == INTEGER_RANGES["BIGINT"][0]).fill_null(False)))
        return Col(c.s.abs() if c.kind == "float" else c.s, c.kind, c.unsure)
