"""Columnar readers of load batches: CSV lines and JSON objects into polars source columns.

Each reader returns a :class:`Sources`: one polars Series per source column (all rows, input
order) and a ``fallback`` mask of rows the vectorized path cannot decide exactly (bad UTF-8,
wrong field count, malformed JSON, a value of an unexpected JSON kind, ...). Those rows are
mapped by the row-at-a-time reference plan (common/loadformat/rowplan.py), which gives the
reason texts; the values read for them here are never used.

JSON is read with ``polars.read_ndjson`` and an explicit schema (measured 2.4M rows/s typed,
1.9M rows/s all-String on 100-byte objects; schema inference scanning every row: 0.55M rows/s).
polars is more lenient than orjson, the reference decoder, so cheap regex masks over the raw
lines find the rows where the two could disagree:

- each source key occurs at most once in the line, at any depth, and exactly when polars saw a
  non-NULL value for it (so duplicate keys, nested keys of the same name and explicit nulls go
  to the reference, and a NULL read here is a missing key);
- no key is written with an escape, no lone surrogate escape, the line starts with '{';
- a String column holds JSON strings only; a Float64 column whose int/float distinction
  matters holds no integer literal; no float is infinite.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

NULL_MARKER = "\\N"
_LEAF_ROWS = 32
"""A failing read is split in halves down to this many lines; smaller pieces go to the reference."""
_LINE = "__loadformat_raw_line__"
_BOM = b"\xef\xbb\xbf"
_EMPTY_LINE_RE = re.compile(b"^\n|\n\n")
"""An empty line (searched only when a row's first field is empty: ``in`` takes 3x as long)."""
_CSV_BLOCK_BYTES = 4 << 20
"""Arrow CSV block: a line longer than this makes the body go the polars way."""
_ESCAPED_KEY_RE = r'\\[^"]*"\s*:|\\u[dD][89a-fA-F]'


@dataclass
class Sources:
    """Source columns of a batch and the rows the reference plan must map."""

    columns: list[pl.Series]
    """One Series per source column; CSV: String, NULL marker -> null; JSON: per ``kinds``."""
    kinds: list[str]
    """'str', 'int' or 'float': the Python type every non-NULL value has in the reference."""
    fallback: pl.Series
    """Boolean per row: map this row with the reference plan."""
    missing_is_null: bool
    """JSON: a NULL here is a missing key (the reference's MISSING); CSV: NULL is the marker."""


def _falses(n: int) -> pl.Series:
    return pl.repeat(False, n, dtype=pl.Boolean, eager=True)


def decode_all(chunks: list[bytes]) -> tuple[list[str] | None, pl.Series]:
    """Validate UTF-8 of every chunk at C speed; the per-chunk loop runs only when one is bad."""
    try:
        b"\n".join(chunks).decode("utf-8")
        return None, _falses(len(chunks))
    except UnicodeDecodeError:
        pass
    texts, bad = [], []
    for c in chunks:
        try:
            texts.append(c.decode("utf-8"))
            bad.append(False)
        except UnicodeDecodeError:
            texts.append("")
            bad.append(True)
    return texts, pl.Series(bad, dtype=pl.Boolean)


# ---------------------------------------------------------------- CSV


def csv_sources(lines: pl.Series, bad: pl.Series, sep: str, nsrc: int) -> Sources:
    """Split decoded lines at ``sep`` (no quoting, as the reference ``str.split``)."""
    nfields = lines.str.count_matches(sep, literal=True) + 1
    fallback = bad | (nfields != nsrc).fill_null(True)
    if nsrc == 1:
        parts = [lines.rename("f0")]
    else:
        parts = lines.str.split_exact(sep, nsrc - 1).struct.unnest().get_columns()
    cols = [
        (pl.select(pl.when(p == NULL_MARKER).then(None).otherwise(p)).to_series() if p.str.contains(
            NULL_MARKER, literal=True).any() else p) for p in parts
    ]
    return Sources(cols, ["str"] * nsrc, fallback, missing_is_null=False)


def csv_body_sources(data: bytes, sep: str, delim: str, nsrc: int) -> tuple[Sources, Callable[[int], str]] | None:
    """A Stream Load CSV body read by Arrow's CSV reader (about 2.5x the polars line split), and
    the text of its i-th line for the reference; None when Arrow would read it otherwise than the
    reference and the caller must split it with :func:`body_lines` and :func:`csv_sources`.

    Arrow reads with quoting and escaping off, so a field is the text between separators as with
    ``str.split``, and every field is String with only the NULL marker NULL. Lines with another
    field count are skipped by the reader and marked for the reference by their line numbers (known
    only to a single-threaded read). The bodies Arrow treats otherwise: separators other than one
    byte or a row delimiter other than "\\n", a "\\r" (also a line end to Arrow), a leading BOM
    (dropped by Arrow), an empty line when a row has several fields (read as a row of empty fields),
    bad UTF-8 (checked here, as Python decodes), a line longer than a block.
    """
    if (
        delim != "\n" or len(sep.encode("utf-8")) != 1 or sep in "\r\n" or not data or b"\r" in data
        or data.startswith(_BOM)
    ):
        return None
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    names = [f"f{i}" for i in range(nsrc)]
    skipped: list[int] = []

    def skip(row: pacsv.InvalidRow) -> str:
        skipped.append(row.number - 1)
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=_CSV_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(
                delimiter=sep, quote_char=False, escape_char=False, double_quote=False, newlines_in_values=False,
                ignore_empty_lines=False, invalid_row_handler=skip),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), null_values=[NULL_MARKER], strings_can_be_null=True,
                check_utf8=False),
        )
    except pa.ArrowException:
        return None
    cols = [pl.Series(name, table.column(name)) for name in names]
    if nsrc > 1 and (cols[0].str.len_bytes() == 0).any() and _EMPTY_LINE_RE.search(data):
        return None
    n = table.num_rows + len(skipped)
    if skipped:
        fallback = _falses(n).scatter(skipped, True)
        at = pl.select(pl.when(pl.lit(fallback)).then(None).otherwise(pl.lit(~fallback).cum_sum() - 1)).to_series()
        cols = [c.gather(at) for c in cols]
    else:
        fallback = _falses(n)
    lines: list[str] = []

    def line_at(i: int) -> str:
        if not lines:
            lines.extend(data.decode("utf-8").split("\n"))
        return lines[i]

    return Sources(cols, ["str"] * nsrc, fallback, missing_is_null=False), line_at


def body_lines(data: bytes, delim: str) -> tuple[pl.Series, pl.Series]:
    """A Stream Load body's lines (the last empty one dropped) and their bad-UTF-8 mask."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        chunks = data.split(delim.encode("utf-8"))
        texts, bad = decode_all(chunks)
        if texts and texts[-1] == "" and not bad[-1]:
            texts, bad = texts[:-1], bad.head(len(bad) - 1)
        return pl.Series("line", texts, dtype=pl.String), bad
    lines = pl.Series("line", [text], dtype=pl.String).str.split(delim, literal=True).explode()
    if len(lines) and lines[-1] == "":
        lines = lines.head(len(lines) - 1)
    return lines, _falses(len(lines))


def message_lines(msgs: list[bytes], delim: str) -> tuple[pl.Series, pl.Series]:
    """Kafka messages as CSV lines (one trailing row delimiter stripped) and their bad-UTF-8 mask."""
    texts, bad = decode_all(msgs)
    if texts is None:
        lines = pl.Series("line", msgs, dtype=pl.Binary).cast(pl.String)
    else:
        lines = pl.Series("line", texts, dtype=pl.String)
    return lines.str.strip_suffix(delim), bad


# ---------------------------------------------------------------- JSON


def _hint(value: object) -> pl.DataType:
    t = type(value)
    if t is int and -(2**63) <= value < 2**63:
        return pl.Int64
    if t is float:
        return pl.Float64
    return pl.String


def _read(lines: list[bytes], schema: dict[str, pl.DataType]) -> pl.DataFrame | None:
    try:
        df = pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=schema)
    except (pl.exceptions.PolarsError, OSError, ValueError):
        return None
    return df if df.height == len(lines) else None


def _read_bisect(lines: list[bytes], schema: dict, offset: int, bad: list[bool], parts: list) -> None:
    """Read what polars can, halving failing pieces; rows of failing leaves are marked bad."""
    df = _read(lines, schema)
    if df is not None:
        parts.append(df)
        return
    if len(lines) <= _LEAF_ROWS:
        bad[offset : offset + len(lines)] = [True] * len(lines)
        parts.append(pl.DataFrame({k: pl.Series(k, [None] * len(lines), dtype=t) for k, t in schema.items()}))
        return
    mid = len(lines) // 2
    _read_bisect(lines[:mid], schema, offset, bad, parts)
    _read_bisect(lines[mid:], schema, offset + mid, bad, parts)


def _checks(lines: pl.Series, df: pl.DataFrame, unique: list[str], schema: dict, sensitive: set[str]) -> pl.Series:
    """Rows where polars' reading could differ from orjson's (see the module docstring), in one
    parallel pass over the raw lines and the columns read."""
    keyalt = "|".join(re.escape(k) for k in unique)
    line = pl.col(_LINE)
    exprs = [~line.str.starts_with("{"), line.str.contains(_ESCAPED_KEY_RE)]
    if unique:
        present = pl.sum_horizontal([pl.col(k).is_not_null().cast(pl.UInt32) for k in unique])
        exprs.append(line.str.count_matches(rf'[{{,]\s*"(?:{keyalt})"\s*:') != present)
    str_keys = [k for k in unique if schema[k] == pl.String]
    if str_keys:
        alt = "|".join(re.escape(k) for k in str_keys)
        exprs.append(line.str.contains(rf'[{{,]\s*"(?:{alt})"\s*:\s*[^"\s]'))
    float_keys = [k for k in unique if schema[k] == pl.Float64]
    exprs.extend(pl.col(k).is_infinite() for k in float_keys)
    sens = [k for k in float_keys if k in sensitive]
    if sens:
        alt = "|".join(re.escape(k) for k in sens)
        exprs.append(line.str.contains(rf'[{{,]\s*"(?:{alt})"\s*:\s*-?\d+\s*[,}}]'))
    frame = df.with_columns(lines.alias(_LINE))
    return frame.select(pl.any_horizontal([e.fill_null(True) for e in exprs])).to_series()


def json_sources(
    msgs: list[bytes], keys: list[str], kind_sensitive: set[str], whole_or_nothing: bool
) -> Sources | None:
    """JSON objects, one per message or line, read into one column per key.

    ``kind_sensitive``: keys whose Float64 values must all be JSON floats (their int/float
    distinction changes the result). ``whole_or_nothing`` (Stream Load bodies): return None when
    any line is not a well-formed object, the reference then maps the whole body.

    The usual batch is read in one polars call with a schema hinted by the first object; when
    that fails (a malformed line, a message with a newline, a value of another kind) the batch is
    read again with String columns, and failing pieces are halved until the bad lines are found.
    """
    n = len(msgs)
    unique = list(dict.fromkeys(keys))
    texts, bad = decode_all(msgs)
    if whole_or_nothing and bad.any():
        return None
    if texts is None:
        lines = pl.Series("l", msgs, dtype=pl.Binary).cast(pl.String)
    else:
        lines = pl.Series("l", texts, dtype=pl.String)
    try:
        first = orjson.loads(msgs[0]) if n else {}
    except orjson.JSONDecodeError:
        first = {}
    first = first if type(first) is dict else {}
    schema = {k: _hint(first.get(k)) for k in unique}
    df = _read(msgs, schema) if n and texts is None else None
    if df is not None:
        suspect = _checks(lines, df, unique, schema, kind_sensitive)
        if whole_or_nothing and suspect.any():
            return None
    else:
        suspect = (~lines.str.starts_with("{") | lines.str.contains("\n", literal=True)) | bad
        if whole_or_nothing and suspect.any():
            return None
        good_idx = (~suspect).arg_true()
        good = msgs if len(good_idx) == n else [msgs[i] for i in good_idx.to_list()]
        df = _read(good, schema) if good else None
        if df is None and good:
            schema = dict.fromkeys(unique, pl.String)
            df = _read(good, schema)
        if df is None and good:
            if whole_or_nothing:
                return None
            leaf_bad = [False] * len(good)
            parts: list[pl.DataFrame] = []
            _read_bisect(good, schema, 0, leaf_bad, parts)
            df = pl.concat(parts, how="vertical")
            suspect = suspect.scatter(good_idx.filter(pl.Series(leaf_bad, dtype=pl.Boolean)), True)
        if df is None:
            df = pl.DataFrame({k: pl.Series(k, [], dtype=t) for k, t in schema.items()})
        good_lines = lines.gather(good_idx) if len(good_idx) != n else lines
        local_bad = _checks(good_lines, df, unique, schema, kind_sensitive)
        if whole_or_nothing and local_bad.any():
            return None
        if local_bad.any():
            suspect = suspect.scatter(good_idx.filter(local_bad), True)
        if len(good_idx) != n:
            full = pl.DataFrame({k: pl.Series(k, [None] * n, dtype=t) for k, t in schema.items()})
            df = full.with_columns([full[k].scatter(good_idx, df[k]) for k in unique]) if len(good_idx) else full
    kinds_of = {pl.Int64: "int", pl.Float64: "float", pl.String: "str"}
    return Sources([df[k] for k in keys], [kinds_of[schema[k]] for k in keys], suspect, missing_is_null=True)
