"""SQL scalar functions for COLUMNS and WHERE expressions, and the value coercions they share.

Values inside an expression are None (SQL NULL), bool, int, float, Decimal or str; dates and
datetimes are canonical text. A function given a value it cannot use returns NULL, as a SQL cast
failure does. Each function is a ``FuncDef`` whose ``make(env, consts)`` returns the Python
callable once per plan, so a constant format string is compiled once, not per row.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import re
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from common.coltypes import parse_datetime
from common.loadformat.spec import LoadSpecError

MAX_UNIX_TS = 253402243199  # 9999-12-31 15:59:59 UTC, StarRocks' from_unixtime bound
DEFAULT_DATETIME_FORMAT = "%Y-%m-%d %H:%i:%s"
NOT_CONST = object()
_EPOCH = _dt.datetime(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()


# ---------------------------------------------------------------- coercions


def to_number(v: object) -> int | float | decimal.Decimal | None:
    t = type(v)
    if t is int or t is float or t is decimal.Decimal:
        return v
    if t is bool:
        return int(v)
    if t is str:
        s = v.strip()
        try:
            return int(s)
        except ValueError:
            pass
        try:
            f = float(s)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def to_int(v: object) -> int | None:
    n = to_number(v)
    if n is None:
        return None
    try:
        return int(n)
    except (ValueError, OverflowError):
        return None


def to_bool(v: object) -> bool | None:
    if v is None or type(v) is bool:
        return v
    if type(v) is str:
        s = v.strip().lower()
        if s in ("true", "false"):
            return s == "true"
    n = to_number(v)
    return None if n is None else n != 0


def to_str(v: object) -> str | None:
    t = type(v)
    if t is str or v is None:
        return v
    if t is bool:
        return "1" if v else "0"
    if t is float:
        return str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)
    if t is decimal.Decimal:
        return format(v, "f")
    return str(v)


def to_datetime(v: object) -> _dt.datetime | None:
    if type(v) is str:
        try:
            return parse_datetime(v)
        except ValueError:
            return None
    if type(v) is int:
        return to_datetime(str(v))
    return None


def fmt_datetime(d: _dt.datetime) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d} {d.hour:02d}:{d.minute:02d}:{d.second:02d}"


def fmt_date(d: _dt.date) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


# ---------------------------------------------------------------- time zones


class Zone:
    """A time zone with a cached epoch -> local text path for from_unixtime."""

    def __init__(self, name: str) -> None:
        m = re.fullmatch(r"([+-])(\d{1,2}):(\d{2})", name.strip())
        if m:
            minutes = int(m.group(2)) * 60 + int(m.group(3))
            if minutes > 14 * 60:
                raise LoadSpecError(f"invalid timezone {name!r}: offsets range from -12:00 to +14:00")
            sign = -1 if m.group(1) == "-" else 1
            self.tz: _dt.tzinfo = _dt.timezone(_dt.timedelta(minutes=sign * minutes))
        else:
            try:
                self.tz = zoneinfo.ZoneInfo(name.strip())
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise LoadSpecError(
                    f"invalid timezone {name!r}: use an IANA name such as 'Asia/Shanghai' or 'UTC', "
                    "or an offset such as '+08:00'"
                ) from None
        self.name = name
        self._offsets: dict[int, int] = {}
        self._days: dict[int, str] = {}
        self._times: dict[int, str] = {}

    def offset(self, ts: int) -> int:
        # UTC offsets change on quarter-hour boundaries (all zones since 1970), so cache per 15 min.
        bucket = ts // 900
        off = self._offsets.get(bucket)
        if off is None:
            d = _dt.datetime.fromtimestamp(bucket * 900, self.tz)
            off = int(d.utcoffset().total_seconds())
            if len(self._offsets) > 200_000:
                self._offsets.clear()
            self._offsets[bucket] = off
        return off

    def local(self, ts: int) -> _dt.datetime:
        return _EPOCH + _dt.timedelta(seconds=ts + self.offset(ts))

    def format_default(self, ts: int) -> str:
        """from_unixtime(ts) with the default format, without building a datetime per call."""
        days, secs = divmod(ts + self.offset(ts), 86400)
        day = self._days.get(days)
        if day is None:
            day = fmt_date(_dt.date.fromordinal(days + _EPOCH_ORDINAL))
            if len(self._days) > 100_000:
                self._days.clear()
            self._days[days] = day
        tod = self._times.get(secs)
        if tod is None:
            h, rem = divmod(secs, 3600)
            tod = self._times[secs] = f"{h:02d}:{rem // 60:02d}:{rem % 60:02d}"
        return f"{day} {tod}"

    def to_epoch(self, local: _dt.datetime) -> int:
        return int(local.replace(tzinfo=self.tz).timestamp())


@dataclass
class EvalEnv:
    """What functions may read besides their arguments: the zone and the batch's 'now'."""

    zone: Zone
    clock: Callable[[], float] = time.time
    now_ts: float = 0.0

    def refresh(self) -> None:
        """Called at the start of each batch: now() is constant within a batch, like a query."""
        self.now_ts = self.clock()


# ---------------------------------------------------------------- MySQL formats

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_FORMATTERS: dict[str, Callable[[_dt.datetime], str]] = {
    "Y": lambda d: f"{d.year:04d}",
    "y": lambda d: f"{d.year % 100:02d}",
    "m": lambda d: f"{d.month:02d}",
    "c": lambda d: str(d.month),
    "d": lambda d: f"{d.day:02d}",
    "e": lambda d: str(d.day),
    "H": lambda d: f"{d.hour:02d}",
    "k": lambda d: str(d.hour),
    "h": lambda d: f"{(d.hour + 11) % 12 + 1:02d}",
    "I": lambda d: f"{(d.hour + 11) % 12 + 1:02d}",
    "l": lambda d: str((d.hour + 11) % 12 + 1),
    "i": lambda d: f"{d.minute:02d}",
    "s": lambda d: f"{d.second:02d}",
    "S": lambda d: f"{d.second:02d}",
    "f": lambda d: f"{d.microsecond:06d}",
    "p": lambda d: "AM" if d.hour < 12 else "PM",
    "T": lambda d: f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}",
    "r": lambda d: (
        f"{(d.hour + 11) % 12 + 1:02d}:{d.minute:02d}:{d.second:02d} {'AM' if d.hour < 12 else 'PM'}"
    ),
    "j": lambda d: f"{d.timetuple().tm_yday:03d}",
    "M": lambda d: _MONTHS[d.month - 1],
    "b": lambda d: _MONTHS[d.month - 1][:3],
    "W": lambda d: _DAYS[d.weekday()],
    "a": lambda d: _DAYS[d.weekday()][:3],
}


def compile_format(fmt: str) -> Callable[[_dt.datetime], str]:
    """MySQL DATE_FORMAT text ('%Y-%m-%d %H:%i:%s') -> a datetime formatter."""
    parts: list[str | Callable[[_dt.datetime], str]] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            spec = fmt[i + 1]
            parts.append(_FORMATTERS.get(spec, spec))
            i += 2
        else:
            parts.append(ch)
            i += 1
    return lambda d: "".join(p if type(p) is str else p(d) for p in parts)


_PARSERS = {
    "Y": r"(?P<Y>\d{4})",
    "y": r"(?P<y>\d{2})",
    "m": r"(?P<m>\d{1,2})",
    "c": r"(?P<m>\d{1,2})",
    "d": r"(?P<d>\d{1,2})",
    "e": r"(?P<d>\d{1,2})",
    "H": r"(?P<H>\d{1,2})",
    "k": r"(?P<H>\d{1,2})",
    "h": r"(?P<h>\d{1,2})",
    "I": r"(?P<h>\d{1,2})",
    "l": r"(?P<h>\d{1,2})",
    "i": r"(?P<i>\d{1,2})",
    "s": r"(?P<s>\d{1,2})",
    "S": r"(?P<s>\d{1,2})",
    "f": r"(?P<f>\d{1,6})",
    "p": r"(?P<p>[AaPp][Mm])",
    "T": r"(?P<H>\d{1,2}):(?P<i>\d{1,2}):(?P<s>\d{1,2})",
    "M": r"(?P<M>[A-Za-z]+)",
    "b": r"(?P<M>[A-Za-z]{3})",
}
_TIME_FIELDS = frozenset("HhisfpT")


def compile_parser(fmt: str) -> Callable[[str], str | None]:
    """str_to_date's format -> parser returning a date (no time fields) or datetime text."""
    pattern: list[str] = []
    has_time = False
    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            spec = fmt[i + 1]
            pattern.append(_PARSERS.get(spec, re.escape(spec)))
            has_time |= spec in _TIME_FIELDS or spec in "kIlS"
            i += 2
        else:
            pattern.append(r"\s+" if fmt[i].isspace() else re.escape(fmt[i]))
            i += 1
    try:
        rx = re.compile("".join(pattern), re.ASCII)
    except re.error:
        return lambda s: None

    def parse(s: str) -> str | None:
        m = rx.match(s.strip())
        if m is None:
            return None
        g = m.groupdict()
        try:
            year = int(g["Y"]) if g.get("Y") else (2000 + int(g["y"]) if g.get("y") else 1970)
            if g.get("M"):
                names = [n.lower() for n in _MONTHS]
                name = g["M"].lower()
                month = next(k + 1 for k, n in enumerate(names) if n == name or n[:3] == name)
            else:
                month = int(g.get("m") or 1)
            hour = int(g.get("H") or 0)
            if g.get("h"):
                hour = int(g["h"]) % 12 + (12 if (g.get("p") or "").upper() == "PM" else 0)
            d = _dt.datetime(
                year, month, int(g.get("d") or 1), hour, int(g.get("i") or 0), int(g.get("s") or 0)
            )
        except (ValueError, StopIteration):
            return None
        return fmt_datetime(d) if has_time else fmt_date(d)

    return parse


# ---------------------------------------------------------------- the functions


def _const_or(consts: tuple, i: int, default: object) -> object:
    return consts[i] if len(consts) > i else default


def _make_from_unixtime(env: EvalEnv, consts: tuple) -> Callable:
    zone = env.zone
    fmt = _const_or(consts, 1, DEFAULT_DATETIME_FORMAT)

    def fast(ts: object, fmt: object = None) -> str | None:
        n = ts if type(ts) is int else to_int(ts)
        if n is None or not 0 <= n <= MAX_UNIX_TS:
            return None
        return zone.format_default(n)

    if fmt == DEFAULT_DATETIME_FORMAT:
        return fast
    fixed = compile_format(fmt) if type(fmt) is str else None

    def general(ts: object, fmt: object) -> str | None:
        n = to_int(ts)
        if n is None or fmt is None or not 0 <= n <= MAX_UNIX_TS:
            return None
        f = fixed if fixed is not None else compile_format(to_str(fmt))
        return f(zone.local(n))

    return general


def _make_unix_timestamp(env: EvalEnv, consts: tuple) -> Callable:
    fixed = compile_parser(consts[1]) if len(consts) > 1 and type(consts[1]) is str else None

    def unix_timestamp(*args: object) -> int | None:
        if not args:
            return int(env.now_ts)
        v = args[0]
        if len(args) == 2:
            if v is None or args[1] is None:
                return None
            parser = fixed if fixed is not None else compile_parser(to_str(args[1]))
            v = parser(to_str(v))
        d = to_datetime(v)
        if d is None:
            return None
        ts = env.zone.to_epoch(d)
        return ts if 0 <= ts <= MAX_UNIX_TS else 0

    return unix_timestamp


def _make_now(env: EvalEnv, consts: tuple) -> Callable:
    return lambda: fmt_datetime(env.zone.local(int(env.now_ts)))


def _make_str_to_date(env: EvalEnv, consts: tuple) -> Callable:
    fixed = compile_parser(consts[1]) if type(consts[1]) is str else None

    def str_to_date(s: object, fmt: object) -> str | None:
        if s is None or fmt is None:
            return None
        return (fixed or compile_parser(to_str(fmt)))(to_str(s))

    return str_to_date


def _make_date_format(env: EvalEnv, consts: tuple) -> Callable:
    fixed = compile_format(consts[1]) if type(consts[1]) is str else None

    def date_format(v: object, fmt: object) -> str | None:
        d = to_datetime(v)
        if d is None or fmt is None:
            return None
        return (fixed or compile_format(to_str(fmt)))(d)

    return date_format


_TRUNC = {
    "year": lambda d: d.replace(month=1, day=1, hour=0, minute=0, second=0),
    "quarter": lambda d: d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1, hour=0, minute=0, second=0),
    "month": lambda d: d.replace(day=1, hour=0, minute=0, second=0),
    "week": lambda d: (d - _dt.timedelta(days=d.weekday())).replace(hour=0, minute=0, second=0),
    "day": lambda d: d.replace(hour=0, minute=0, second=0),
    "hour": lambda d: d.replace(minute=0, second=0),
    "minute": lambda d: d.replace(second=0),
    "second": lambda d: d,
}


def _date_trunc(unit: object, v: object) -> str | None:
    trunc = _TRUNC.get(to_str(unit).lower()) if unit is not None else None
    d = to_datetime(v)
    if trunc is None or d is None:
        return None
    return fmt_datetime(trunc(d))


def _field(name: str) -> Callable[[object], int | None]:
    def get(v: object) -> int | None:
        d = to_datetime(v)
        return None if d is None else getattr(d, name)

    return get


def _to_date(v: object) -> str | None:
    d = to_datetime(v)
    return None if d is None else fmt_date(d)


def _strict(fn: Callable) -> Callable:
    """NULL in -> NULL out, for functions where any NULL argument gives NULL."""

    def call(*args: object) -> object:
        for a in args:
            if a is None:
                return None
        return fn(*args)

    call.__name__ = fn.__name__
    return call


def _concat(*args: object) -> str | None:
    parts = []
    for a in args:
        if a is None:
            return None
        parts.append(to_str(a))
    return "".join(parts)


def _substr(s: object, pos: object, length: object = NOT_CONST) -> str | None:
    text, p = to_str(s), to_int(pos)
    n = len(text) + 1 if length is NOT_CONST else to_int(length)
    if p is None or n is None:
        return None
    if p == 0 or n <= 0 or abs(p) > len(text):
        return ""
    start = p - 1 if p > 0 else len(text) + p
    return text[start : start + n]


def _round(x: object, digits: object = 0) -> object:
    n, d = to_number(x), to_int(digits)
    if n is None or d is None:
        return None
    q = decimal.Decimal(repr(n) if type(n) is float else n).quantize(
        decimal.Decimal(1).scaleb(-d), rounding=decimal.ROUND_HALF_UP
    )
    if type(n) is int:
        return int(q)
    return float(q) if type(n) is float else q


def _num_fn(fn: Callable) -> Callable:
    def call(x: object) -> object:
        n = to_number(x)
        return None if n is None else fn(n)

    return call


def _if(cond: object, a: object, b: object) -> object:
    return a if to_bool(cond) else b


def _coalesce(*args: object) -> object:
    for a in args:
        if a is not None:
            return a
    return None


def _plain(fn: Callable) -> Callable[[EvalEnv, tuple], Callable]:
    return lambda env, consts: fn


@dataclass(frozen=True)
class FuncDef:
    min_args: int
    max_args: int | None
    make: Callable[[EvalEnv, tuple], Callable]
    rtype: str | None = None
    """'datetime' or 'date' when the result is always canonical text of that type."""
    deterministic: bool = True


FUNCTIONS: dict[str, FuncDef] = {
    "from_unixtime": FuncDef(1, 2, _make_from_unixtime),
    "unix_timestamp": FuncDef(0, 2, _make_unix_timestamp, deterministic=False),
    "now": FuncDef(0, 0, _make_now, "datetime", deterministic=False),
    "current_timestamp": FuncDef(0, 0, _make_now, "datetime", deterministic=False),
    "date_trunc": FuncDef(2, 2, _plain(_date_trunc), "datetime"),
    "str_to_date": FuncDef(2, 2, _make_str_to_date),
    "date_format": FuncDef(2, 2, _make_date_format),
    "to_date": FuncDef(1, 1, _plain(_to_date), "date"),
    "year": FuncDef(1, 1, _plain(_field("year"))),
    "month": FuncDef(1, 1, _plain(_field("month"))),
    "day": FuncDef(1, 1, _plain(_field("day"))),
    "hour": FuncDef(1, 1, _plain(_field("hour"))),
    "minute": FuncDef(1, 1, _plain(_field("minute"))),
    "second": FuncDef(1, 1, _plain(_field("second"))),
    "concat": FuncDef(1, None, _plain(_concat)),
    "upper": FuncDef(1, 1, _plain(_strict(lambda s: to_str(s).upper()))),
    "lower": FuncDef(1, 1, _plain(_strict(lambda s: to_str(s).lower()))),
    "trim": FuncDef(1, 1, _plain(_strict(lambda s: to_str(s).strip(" ")))),
    "ltrim": FuncDef(1, 1, _plain(_strict(lambda s: to_str(s).lstrip(" ")))),
    "rtrim": FuncDef(1, 1, _plain(_strict(lambda s: to_str(s).rstrip(" ")))),
    "replace": FuncDef(3, 3, _plain(_strict(lambda s, a, b: to_str(s).replace(to_str(a), to_str(b))))),
    "substr": FuncDef(2, 3, _plain(_strict(_substr))),
    "substring": FuncDef(2, 3, _plain(_strict(_substr))),
    "length": FuncDef(1, 1, _plain(_strict(lambda s: len(to_str(s).encode("utf-8"))))),
    "char_length": FuncDef(1, 1, _plain(_strict(lambda s: len(to_str(s))))),
    "ifnull": FuncDef(2, 2, _plain(lambda a, b: b if a is None else a)),
    "nvl": FuncDef(2, 2, _plain(lambda a, b: b if a is None else a)),
    "coalesce": FuncDef(1, None, _plain(_coalesce)),
    "nullif": FuncDef(2, 2, _plain(lambda a, b: None if a is not None and a == b else a)),
    "if": FuncDef(3, 3, _plain(_if)),
    "abs": FuncDef(1, 1, _plain(_num_fn(abs))),
    "round": FuncDef(1, 2, _plain(_strict(_round))),
    "floor": FuncDef(1, 1, _plain(_num_fn(math.floor))),
    "ceil": FuncDef(1, 1, _plain(_num_fn(math.ceil))),
    "ceiling": FuncDef(1, 1, _plain(_num_fn(math.ceil))),
}
