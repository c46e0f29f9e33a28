"""Conversion of whole columns into column types, deciding only what common.coltypes decides alike.

:func:`convert` turns a :class:`Col` (see vector_expr.py) into the Arrow array of a column type
(common.columnar.arrow_type) and a ``fail`` mask of the non-NULL values it did not convert: text
outside the plain forms below, values out of range, DECIMAL text with more fraction digits than
the scale (it needs rounding), a value of a kind the type does not take. Those rows go to the
row-at-a-time reference, which decides between NULL and a filtered row and gives the reason.

Plain forms: integers ``[+-]?\\d{1,18}``; floats ``[+-]?(\\d+.?\\d*|.\\d+)([eE][+-]?\\d+)?``;
DECIMAL ``[+-]?\\d*(.\\d*)?``; DATE ``YYYY-MM-DD`` (optionally followed by `` HH:MM:SS``);
DATETIME ``YYYY-MM-DD HH:MM:SS`` or ``YYYY-MM-DD``; BOOLEAN ``true``/``false``/``1``/``0`` in any case.
JSON columns, and values whose kind was decided per value ('py'), are converted per value with
the reference converter (:func:`convert_values`).
"""

from __future__ import annotations

import datetime as _dt
import decimal
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from common.coltypes import (
    FLOAT_MAX,
    INTEGER_RANGES,
    STRING_KINDS,
    STRING_MAX_BYTES,
    ColumnType,
    ConversionError,
    converter_for,
)
from common.columnar import arrow_type
from common.loadformat.vector_expr import INT_TEXT_RE, Col, Unsupported, any_unsure

_FLOAT_TEXT_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_DECIMAL_TEXT_RE = r"^([+-]?)(\d*)(?:\.(\d*))?$"
_DATE_TEXT_RE = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])( ([01]\d|2[0-3]):[0-5]\d:[0-5]\d)?$"
_LARGEINT_TEXT_RE = r"^-?(0|[1-9]\d{0,36})$"


@dataclass
class Converted:
    array: pa.Array
    """Arrow values of the column type; rows in ``fail`` or NULL input are NULL."""
    fail: pl.Series
    """Non-NULL input the conversion did not decide."""
    view: Col | None
    """The stored values as an expression sees them in WHERE (dates as text); None: per value."""


class _DateText(Col):
    """The text view of dates or datetimes, formatted when an expression first reads it: formatting
    takes as long as parsing, and most loads have no WHERE."""

    def __init__(self, values: pl.Series, fmt: str) -> None:
        self._values, self._fmt, self._text = values, fmt, None
        self.kind, self.unsure, self.dt, self.const, self.is_const = "str", None, None, None, False

    @property
    def s(self) -> pl.Series:
        if self._text is None:
            self._text = self._values.dt.strftime(self._fmt)
        return self._text

    @s.setter
    def s(self, value: pl.Series) -> None:
        self._text = value


def _when(mask: pl.Series, s: pl.Series) -> pl.Series:
    """``s`` where ``mask`` is true, NULL elsewhere."""
    return pl.select(pl.when(pl.lit(mask).fill_null(False)).then(pl.lit(s)).otherwise(None)).to_series()


def _to_arrow(s: pl.Series, typ: pa.DataType) -> pa.Array:
    arr = s.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type == typ:
        return arr
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), typ)
    return arr.cast(typ)


def _ints(col: Col, ctype: ColumnType, strict: bool) -> tuple[pl.Series, pl.Series]:
    s, kind = col.s, col.kind
    if kind == "int":
        v = s
    elif kind == "bool":
        v = s.cast(pl.Int64)
    elif kind == "float":
        ok = s.is_finite() & (s.abs() < 2.0**63)
        if strict:
            ok = ok & (s == s.floor())
        v = _when(ok, s).cast(pl.Int64, strict=False)
    elif kind == "str":
        v = _when(s.str.contains(INT_TEXT_RE), s).cast(pl.Int64)
    else:
        raise Unsupported
    lo, hi = INTEGER_RANGES[ctype.kind]
    if ctype.kind != "BIGINT":
        v = _when((v >= lo) & (v <= hi), v)
    return v, s.is_not_null() & v.is_null()


def _floats(col: Col, ctype: ColumnType) -> tuple[pl.Series, pl.Series]:
    s, kind = col.s, col.kind
    if kind == "float":
        v = s
    elif kind == "int":
        v = _when(s.abs() <= 2**53, s).cast(pl.Float64)
    elif kind == "bool":
        v = s.cast(pl.Float64)
    elif kind == "str":
        v = _when(s.str.contains(_FLOAT_TEXT_RE), s).cast(pl.Float64, strict=False)
    else:
        raise Unsupported
    limit = FLOAT_MAX if ctype.kind == "FLOAT" else float("inf")
    v = _when(v.is_finite() & (v.abs() <= limit), v)
    return v, s.is_not_null() & v.is_null()


def _booleans(col: Col) -> tuple[pl.Series, pl.Series]:
    s, kind = col.s, col.kind
    if kind == "bool":
        return s, s.is_null() & s.is_not_null()
    if kind == "str":
        low = _when(s.str.contains(r"^(?i)(true|false|1|0)$"), s.str.to_lowercase())
        v = pl.select(pl.when(pl.lit(low).is_in(["true", "1"])).then(True)
                      .when(pl.lit(low).is_in(["false", "0"])).then(False).otherwise(None)).to_series()
    elif kind in ("int", "float"):
        v = pl.select(pl.when(pl.lit(s) == 1).then(True).when(pl.lit(s) == 0).then(False)
                      .otherwise(None)).to_series()
    else:
        raise Unsupported
    return v, s.is_not_null() & v.is_null()


def _decimals(col: Col, ctype: ColumnType) -> tuple[pa.Array, pl.Series]:
    p, sc = ctype.precision, ctype.scale
    s, kind = col.s, col.kind
    if kind == "int":
        text = _when(s.abs() < 10 ** min(p - sc, 18), s).cast(pl.String)
    elif kind in ("str", "float"):
        t = s.cast(pl.String) if kind == "float" else s
        parts = t.str.extract_groups(_DECIMAL_TEXT_RE)
        sign, ip, fp = (parts.struct.field(str(i)) for i in (1, 2, 3))
        fp = fp.fill_null("")
        ip = ip.str.strip_chars_start("0")
        ok = (
            t.str.contains(r"\d") & (ip.str.len_bytes() <= p - sc) & (fp.str.len_bytes() <= sc)
        ).fill_null(False)
        ip = pl.select(pl.when(pl.lit(ip) == "").then(pl.lit("0")).otherwise(pl.lit(ip))).to_series()
        body = pl.select(
            pl.concat_str([pl.lit(sign).str.replace("+", "", literal=True), pl.lit(ip),
                           pl.when(pl.lit(fp) == "").then(pl.lit("")).otherwise(pl.lit(".") + pl.lit(fp))])
        ).to_series()
        text = _when(ok, body)
    else:
        raise Unsupported
    fail = s.is_not_null() & text.is_null()
    return _to_arrow(text, pa.string()).cast(pa.decimal128(p, sc)), fail


def _strings(col: Col, ctype: ColumnType) -> tuple[pl.Series, pl.Series]:
    s, kind = col.s, col.kind
    if kind == "str":
        v = s
    elif kind == "int":
        v = s.cast(pl.String)
    elif kind == "bool":
        v = pl.select(pl.when(pl.lit(s)).then(pl.lit("true")).otherwise(pl.lit("false"))).to_series()
        v = _when(s.is_not_null(), v)
    else:
        raise Unsupported
    limit = STRING_MAX_BYTES if ctype.kind == "STRING" else ctype.length
    v = _when(v.str.len_bytes() <= limit, v)
    return v, s.is_not_null() & v.is_null()


def _temporal(col: Col, ctype: ColumnType) -> tuple[pl.Series, pl.Series]:
    s, kind = col.s, col.kind
    if col.dt is not None:
        dt = col.dt
    elif kind == "str":
        ok = s.str.contains(_DATE_TEXT_RE) & ~s.str.starts_with("0000")
        text = _when(ok, s)
        full = pl.select(pl.when(pl.lit(text).str.len_bytes() == 10).then(pl.lit(text) + " 00:00:00")
                         .otherwise(pl.lit(text))).to_series()
        dt = full.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
    else:
        raise Unsupported
    v = dt.dt.date() if ctype.kind == "DATE" else dt
    return v, s.is_not_null() & v.is_null()


def convert(col: Col, ctype: ColumnType, strict: bool) -> Converted:
    """``col`` in ``ctype``; raises Unsupported when the kind has no column form (see convert_values)."""
    k = ctype.kind
    typ = arrow_type(ctype)
    if col.kind == "null":
        return Converted(pa.nulls(len(col.s), typ), col.s.is_not_null(), None)
    if k in INTEGER_RANGES and k != "LARGEINT":
        v, fail = _ints(col, ctype, strict)
        return Converted(_to_arrow(v, typ), fail, Col(v, "int"))
    if k == "LARGEINT":
        if col.kind == "int":
            v = col.s.cast(pl.String)
        elif col.kind == "str":
            v = _when(col.s.str.contains(_LARGEINT_TEXT_RE), col.s)
        else:
            raise Unsupported
        return Converted(_to_arrow(v, typ), col.s.is_not_null() & v.is_null(), None)
    if k in ("FLOAT", "DOUBLE"):
        v, fail = _floats(col, ctype)
        return Converted(_to_arrow(v, typ), fail, Col(v, "float"))
    if k == "BOOLEAN":
        v, fail = _booleans(col)
        return Converted(_to_arrow(v, typ), fail, Col(v, "bool"))
    if k == "DECIMAL":
        arr, fail = _decimals(col, ctype)
        return Converted(arr, fail, None)
    if k in STRING_KINDS:
        v, fail = _strings(col, ctype)
        return Converted(_to_arrow(v, typ), fail, Col(v, "str"))
    if k in ("DATE", "DATETIME"):
        v, fail = _temporal(col, ctype)
        return Converted(_to_arrow(v, typ), fail, _DateText(v, "%Y-%m-%d" if k == "DATE" else "%Y-%m-%d %H:%M:%S"))
    raise Unsupported


def cast_expression(col: Col, ctype: ColumnType, n: int) -> Col:
    """CAST(x AS type) where the result has a column form; rows it cannot decide are unsure."""
    k = ctype.kind
    if k not in INTEGER_RANGES or k == "LARGEINT":
        if k not in ("FLOAT", "DOUBLE", "DATE", "DATETIME") and k not in STRING_KINDS:
            raise Unsupported
    if k in STRING_KINDS and col.kind not in ("str", "int", "null"):
        raise Unsupported
    if col.kind == "null":
        return col
    conv = convert(col, ctype, strict=False)
    if conv.view is None:
        raise Unsupported
    return Col(conv.view.s, conv.view.kind, any_unsure(col, Col(conv.fail, "bool", conv.fail)))


# ---------------------------------------------------------------- per value


def _arrow_value(kind: str):
    if kind == "DECIMAL":
        return decimal.Decimal
    if kind == "DATE":
        return _dt.date.fromisoformat
    if kind == "DATETIME":
        return _dt.datetime.fromisoformat
    if kind == "LARGEINT":
        return str
    return None


def convert_values(values: list, ctype: ColumnType, strict: bool) -> tuple[pa.Array, pl.Series]:
    """The reference converter over each value: Arrow values, and the values it rejected."""
    conv = converter_for(ctype, strict)
    to_arrow = _arrow_value(ctype.kind)
    out: list = []
    fail: list[bool] = []
    for v in values:
        try:
            x = conv(v)
        except ConversionError:
            out.append(None)
            fail.append(True)
            continue
        out.append(x if x is None or to_arrow is None else to_arrow(x))
        fail.append(False)
    return pa.array(out, type=arrow_type(ctype)), pl.Series(fail, dtype=pl.Boolean)
