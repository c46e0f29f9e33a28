"""Column types of a DUPLICATE KEY table and the conversion of loaded values into them.

A stored value is a plain Python object so that rows encode with orjson as they are:

==================================  ==========================================
kind                                stored value
==================================  ==========================================
TINYINT SMALLINT INT BIGINT         ``int`` (range-checked per kind)
LARGEINT                            ``int`` (128-bit)
FLOAT DOUBLE                        ``float``
BOOLEAN                             ``bool``
DECIMAL(p,s)                        ``str`` with exactly ``s`` fraction digits
CHAR(n) VARCHAR(n) STRING           ``str`` (length checked in UTF-8 bytes)
DATE                                ``str`` ``'YYYY-MM-DD'``
DATETIME                            ``str`` ``'YYYY-MM-DD HH:MM:SS'``
JSON                                ``str``, compact JSON text
==================================  ==========================================

:func:`converter_for` builds one specialised closure per (type, strictness); the load path
calls it once per column and then once per value, never dispatching on the type name per row.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import orjson

INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "TINYINT": (-(2**7), 2**7 - 1),
    "SMALLINT": (-(2**15), 2**15 - 1),
    "INT": (-(2**31), 2**31 - 1),
    "BIGINT": (-(2**63), 2**63 - 1),
    "LARGEINT": (-(2**127), 2**127 - 1),
}
_SIMPLE_KINDS = (
    "BOOLEAN",
    "TINYINT",
    "SMALLINT",
    "INT",
    "BIGINT",
    "LARGEINT",
    "FLOAT",
    "DOUBLE",
    "STRING",
    "DATE",
    "DATETIME",
    "JSON",
)
STRING_KINDS = frozenset({"CHAR", "VARCHAR", "STRING"})
NUMERIC_KINDS = frozenset({*INTEGER_RANGES, "FLOAT", "DOUBLE", "DECIMAL"})
MAX_DECIMAL_PRECISION = 38
MAX_CHAR_LENGTH = 255
MAX_VARCHAR_LENGTH = 1048576
DEFAULT_VARCHAR_LENGTH = 65533
# StarRocks' STRING is VARCHAR(65533): longer values are rejected like any too-long VARCHAR.
STRING_MAX_BYTES = 65533
FLOAT_MAX = 3.4028234663852886e38
CURRENT_TIMESTAMP = "CURRENT_TIMESTAMP"
_INF = float("inf")

ALLOWED_TYPES = (
    "BOOLEAN, TINYINT, SMALLINT, INT (INTEGER), BIGINT, LARGEINT, FLOAT, DOUBLE, "
    f"DECIMAL(p,s) with 1<=p<={MAX_DECIMAL_PRECISION} and 0<=s<=p, CHAR(n) with 1<=n<={MAX_CHAR_LENGTH}, "
    f"VARCHAR(n) with 1<=n<={MAX_VARCHAR_LENGTH}, STRING, DATE, DATETIME, JSON"
)


@dataclass(frozen=True)
class ColumnType:
    kind: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    def __str__(self) -> str:
        if self.kind == "DECIMAL":
            return f"DECIMAL({self.precision},{self.scale})"
        if self.kind in ("CHAR", "VARCHAR"):
            return f"{self.kind}({self.length})"
        return self.kind


_TYPE_RE = re.compile(r"\s*([A-Za-z]+)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*", re.ASCII)


def parse_type(text: str) -> ColumnType:
    """Parse SQL type text such as ``decimal(10, 2)`` or ``VARCHAR(64)`` (case-insensitive)."""
    m = _TYPE_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"invalid column type {text!r}; allowed types: {ALLOWED_TYPES}")
    kind = m.group(1).upper()
    a = int(m.group(2)) if m.group(2) is not None else None
    b = int(m.group(3)) if m.group(3) is not None else None
    if kind == "INTEGER":
        kind = "INT"
    if kind == "DECIMAL":
        p = 10 if a is None else a
        s = 0 if b is None else b
        if not 1 <= p <= MAX_DECIMAL_PRECISION or not 0 <= s <= p:
            raise ValueError(
                f"invalid column type {text!r}: DECIMAL(p,s) needs 1<=p<={MAX_DECIMAL_PRECISION} and 0<=s<=p"
            )
        return ColumnType("DECIMAL", precision=p, scale=s)
    if kind in ("CHAR", "VARCHAR"):
        limit = MAX_CHAR_LENGTH if kind == "CHAR" else MAX_VARCHAR_LENGTH
        if b is not None:
            raise ValueError(f"invalid column type {text!r}: {kind}(n) takes one length, 1<=n<={limit}")
        n = (1 if kind == "CHAR" else DEFAULT_VARCHAR_LENGTH) if a is None else a
        if not 1 <= n <= limit:
            raise ValueError(f"invalid column type {text!r}: {kind}(n) needs 1<=n<={limit}")
        return ColumnType(kind, length=n)
    if kind in INTEGER_RANGES and b is None:
        # MySQL-style display width, INT(11): accepted and ignored as StarRocks does.
        return ColumnType(kind)
    if kind in _SIMPLE_KINDS and a is None:
        return ColumnType(kind)
    raise ValueError(f"invalid column type {text!r}; allowed types: {ALLOWED_TYPES}")


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True
    default: str | None = None
    is_key: bool = False

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": str(self.type),
            "nullable": self.nullable,
            "default": self.default,
            "is_key": self.is_key,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Column:
        return cls(
            name=d["name"],
            type=parse_type(d["type"]),
            nullable=bool(d.get("nullable", True)),
            default=d.get("default"),
            is_key=bool(d.get("is_key", False)),
        )


class ConversionError(ValueError):
    """A value does not fit a column type; the message names the value and the type."""


def _show(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = value if isinstance(value, str) else _json_text(value)
    if len(text) > 100:
        text = text[:100] + "..."
    return repr(text)


def _json_text(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def _invalid(value: object, ctype: ColumnType, detail: str = "") -> ConversionError:
    return ConversionError(f"value {_show(value)} is not a valid {ctype}{detail}")


# ---------------------------------------------------------------- integers and floats


def _integer_converter(ctype: ColumnType, strict: bool) -> Callable[[object], object]:
    lo, hi = INTEGER_RANGES[ctype.kind]

    def slow(v: object) -> int:
        # Text that is not a plain integer: non-strict truncates a finite decimal number
        # toward zero, as StarRocks' CAST('12.5' AS INT) does; strict mode rejects it.
        if type(v) is bool:
            return int(v)
        if isinstance(v, float):
            if v != v or v == _INF or v == -_INF:
                raise _invalid(v, ctype)
            if v.is_integer() or not strict:
                return int(v)
            raise _invalid(v, ctype, " (it has a fractional part)")
        if isinstance(v, decimal.Decimal):
            if not v.is_finite() or (strict and v != v.to_integral_value()):
                raise _invalid(v, ctype)
            return int(v)
        if isinstance(v, str):
            s = v.strip()
            if s.isascii() and "_" not in s and s:
                try:
                    return int(s)
                except ValueError:
                    pass
                try:
                    d = decimal.Decimal(s)
                except decimal.InvalidOperation:
                    d = None
                if d is not None and d.is_finite() and (not strict or d == d.to_integral_value()):
                    return int(d)
        raise _invalid(v, ctype)

    def conv(v: object) -> object:
        if v is None:
            return None
        n = v if type(v) is int else slow(v)
        if lo <= n <= hi:
            return n
        raise ConversionError(f"value {_show(v)} is out of range for {ctype} [{lo}, {hi}]")

    return conv


def _float_converter(ctype: ColumnType) -> Callable[[object], object]:
    limit = FLOAT_MAX if ctype.kind == "FLOAT" else _INF

    def conv(v: object) -> object:
        if v is None:
            return None
        t = type(v)
        if t is float:
            f = v
        elif t is int or t is bool:
            try:
                f = float(v)
            except OverflowError:
                raise ConversionError(f"value {_show(v)} is out of range for {ctype}") from None
        elif t is str or t is decimal.Decimal:
            s = v.strip() if t is str else v
            # Python's float() also takes 'inf', 'nan' and '1_0'; SQL text does not.
            if t is str and (not s.isascii() or "_" in s or "n" in s.lower()):
                raise _invalid(v, ctype)
            if t is decimal.Decimal and not v.is_finite():
                raise _invalid(v, ctype)
            try:
                f = float(s)
            except ValueError:
                raise _invalid(v, ctype) from None
        else:
            raise _invalid(v, ctype)
        if -limit <= f <= limit and f != _INF and f != -_INF:
            return f
        raise ConversionError(f"value {_show(v)} is out of range for {ctype}")

    return conv


def _boolean_converter(ctype: ColumnType) -> Callable[[object], object]:
    words = {"true": True, "false": False, "1": True, "0": False}

    def conv(v: object) -> object:
        if v is None or type(v) is bool:
            return v
        if type(v) is str:
            b = words.get(v.strip().lower())
            if b is not None:
                return b
        elif type(v) in (int, float) and v in (0, 1):
            return bool(v)
        raise _invalid(v, ctype, " (allowed: true, false, 1, 0)")

    return conv


# ---------------------------------------------------------------- decimals

_DEC_CONTEXT = decimal.Context(prec=100, rounding=decimal.ROUND_HALF_UP, Emax=999999, Emin=-999999)


def _decimal_converter(ctype: ColumnType) -> Callable[[object], object]:
    p, s = ctype.precision, ctype.scale
    quantum = decimal.Decimal(1).scaleb(-s)
    bound = decimal.Decimal(10) ** (p - s)

    def conv(v: object) -> object:
        if v is None:
            return None
        t = type(v)
        try:
            if t is str:
                text = v.strip()
                if not text.isascii() or "_" in text:
                    raise _invalid(v, ctype)
                d = decimal.Decimal(text)
            elif t is int or t is bool:
                d = decimal.Decimal(int(v))
            elif t is float:
                d = decimal.Decimal(repr(v))
            elif t is decimal.Decimal:
                d = v
            else:
                raise _invalid(v, ctype)
            if not d.is_finite():
                raise _invalid(v, ctype)
            q = d.quantize(quantum, context=_DEC_CONTEXT)
        except decimal.DecimalException:
            raise _invalid(v, ctype) from None
        if not -bound < q < bound:
            raise ConversionError(
                f"value {_show(v)} is out of range for {ctype}: at most {p - s} integer digits"
            )
        if not q:
            q = abs(q)
        return format(q, "f")

    return conv


# ---------------------------------------------------------------- strings and JSON


def _string_converter(ctype: ColumnType) -> Callable[[object], object]:
    limit = STRING_MAX_BYTES if ctype.kind == "STRING" else ctype.length

    def conv(v: object) -> object:
        if v is None:
            return None
        if type(v) is not str:
            if isinstance(v, decimal.Decimal):
                v = format(v, "f")
            else:
                try:
                    v = orjson.dumps(v).decode()
                except TypeError:
                    raise _invalid(v, ctype) from None
        if len(v) <= limit // 4 or (v.isascii() and len(v) <= limit):
            return v
        n = len(v.encode("utf-8"))
        if n <= limit:
            return v
        raise ConversionError(f"value {_show(v)} is too long for {ctype}: {n} bytes > {limit}")

    return conv


def _json_converter(ctype: ColumnType) -> Callable[[object], object]:
    def conv(v: object) -> object:
        if v is None:
            return None
        try:
            if type(v) is str:
                return orjson.dumps(orjson.loads(v)).decode()
            if isinstance(v, decimal.Decimal):
                return format(v, "f")
            return orjson.dumps(v).decode()
        except (orjson.JSONDecodeError, TypeError):
            raise _invalid(v, ctype) from None

    return conv


# ---------------------------------------------------------------- dates and datetimes

_DATE_PART_RE = re.compile(r"(\d{4})([-/])(\d{1,2})\2(\d{1,2})|(\d{4})(\d{2})(\d{2})", re.ASCII)
_TIME_PART_RE = re.compile(r"(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,9}))?)?", re.ASCII)


def parse_datetime(text: str) -> _dt.datetime:
    """Parse date/datetime text as StarRocks loads it; fractional seconds are dropped.

    Accepts 'YYYY-MM-DD', 'YYYY/MM/DD', 'YYYYMMDD', 'YYYYMMDDHHMMSS', each optionally followed by
    ' HH:MM[:SS[.fff]]' or 'THH:MM[:SS[.fff]]'. Raises ValueError.
    """
    s = text.strip()
    if len(s) == 14 and s.isdigit() and s.isascii():
        s = f"{s[:8]} {s[8:10]}:{s[10:12]}:{s[12:]}"
    date_text, sep, time_text = s.partition(" ")
    if not sep and "T" in s:
        date_text, sep, time_text = s.partition("T")
    m = _DATE_PART_RE.fullmatch(date_text)
    if m is None:
        raise ValueError(text)
    if m.group(1):
        y, mo, d = int(m.group(1)), int(m.group(3)), int(m.group(4))
    else:
        y, mo, d = int(m.group(5)), int(m.group(6)), int(m.group(7))
    hh = mi = ss = 0
    if sep:
        t = _TIME_PART_RE.fullmatch(time_text.strip())
        if t is None:
            raise ValueError(text)
        hh, mi = int(t.group(1)), int(t.group(2))
        ss = int(t.group(3) or 0)
    return _dt.datetime(y, mo, d, hh, mi, ss)


def _date_converter(ctype: ColumnType) -> Callable[[object], object]:
    fromiso = _dt.date.fromisoformat

    def conv(v: object) -> object:
        if v is None:
            return None
        if type(v) is str:
            if len(v) == 10 and v[4] == "-" and v[7] == "-":
                try:
                    fromiso(v)
                    return v
                except ValueError:
                    pass
            try:
                return parse_datetime(v).strftime("%Y-%m-%d")
            except ValueError:
                raise _invalid(v, ctype) from None
        if type(v) is int and 10000101 <= v <= 99991231:
            return conv(str(v))
        raise _invalid(v, ctype)

    return conv


def _datetime_converter(ctype: ColumnType) -> Callable[[object], object]:
    fromiso = _dt.datetime.fromisoformat

    def conv(v: object) -> object:
        if v is None:
            return None
        if type(v) is str:
            if len(v) == 19 and v[10] == " " and v[13] == ":" and v[16] == ":" and v[4] == v[7] == "-":
                try:
                    fromiso(v)
                    return v
                except ValueError:
                    pass
            try:
                return parse_datetime(v).strftime("%Y-%m-%d %H:%M:%S")
            except ValueError:
                raise _invalid(v, ctype) from None
        if type(v) is int and 10000101 <= v <= 99991231:
            return conv(str(v))
        raise _invalid(v, ctype)

    return conv


# ---------------------------------------------------------------- public conversion API


@functools.lru_cache(maxsize=512)
def converter_for(ctype: ColumnType, strict: bool = False) -> Callable[[object], object]:
    """One closure converting a source value into ``ctype``; raises ConversionError.

    ``strict`` only matters for integer kinds: non-strict truncates a number with a fractional
    part ('12.7' -> 12, like StarRocks' CAST), strict rejects it.
    """
    kind = ctype.kind
    if kind in INTEGER_RANGES:
        return _integer_converter(ctype, strict)
    if kind in ("FLOAT", "DOUBLE"):
        return _float_converter(ctype)
    if kind == "BOOLEAN":
        return _boolean_converter(ctype)
    if kind == "DECIMAL":
        return _decimal_converter(ctype)
    if kind in STRING_KINDS:
        return _string_converter(ctype)
    if kind == "DATE":
        return _date_converter(ctype)
    if kind == "DATETIME":
        return _datetime_converter(ctype)
    if kind == "JSON":
        return _json_converter(ctype)
    raise ValueError(f"unknown column type kind {kind!r}; allowed types: {ALLOWED_TYPES}")


def convert(value: object, ctype: ColumnType, *, strict: bool) -> object:
    """Convert one source value (CSV text or a JSON value) into the stored value of ``ctype``."""
    return converter_for(ctype, strict)(value)


def convert_default(text: str | None, ctype: ColumnType) -> object:
    """Validate and convert a column DEFAULT; ``CURRENT_TIMESTAMP`` is kept for DATETIME."""
    if text is None:
        return None
    if ctype.kind == "DATETIME" and text.strip().upper() == CURRENT_TIMESTAMP:
        return CURRENT_TIMESTAMP
    if ctype.kind == "JSON":
        raise ValueError(f"default value {text!r} is not allowed: a JSON column can only default to NULL")
    try:
        return convert(text, ctype, strict=True)
    except ConversionError as e:
        raise ValueError(f"invalid default value: {e}") from None


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$@-]{0,1023}", re.ASCII)


def validate_column(col: Column) -> None:
    """Raise ValueError naming the column when its definition is not allowed."""
    if not isinstance(col.name, str) or _NAME_RE.fullmatch(col.name) is None:
        raise ValueError(
            f"invalid column name {col.name!r}: it must start with a letter or '_' and contain only "
            "letters, digits, '_', '$', '@' or '-' (at most 1024 characters)"
        )
    if col.is_key and col.type.kind in ("FLOAT", "DOUBLE", "JSON"):
        raise ValueError(
            f"column '{col.name}' of type {col.type} cannot be a key column: FLOAT, DOUBLE and JSON "
            "are not allowed as keys"
        )
    try:
        convert_default(col.default, col.type)
    except ValueError as e:
        raise ValueError(f"column '{col.name}': {e}") from None
