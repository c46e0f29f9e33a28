"""Columnar rowset segments: an Arrow record batch in Arrow IPC stream form.

A segment is the payload of one rowset chunk (be/storage/rowsets.py), on the wire (WriteRows,
clone) and in RocksDB: the format byte ``b"\\x02"`` and an Arrow IPC stream whose schema is
:func:`arrow_schema` of the table's columns. Segments written before (``b"\\x01"``: marshal rows,
common/rowcodec.py) stay readable: :func:`read_table` converts them with the tablet's schema.

The Arrow type of each column kind, and the plain Python value the row API (Query rows, scans,
tests) gives for it, the one common/coltypes.py documents:

==================================  ==================  ===================================
kind                                Arrow type          row value
==================================  ==================  ===================================
TINYINT SMALLINT INT BIGINT         int8 .. int64       ``int``
LARGEINT                            string (decimal)    ``int`` (128 bits do not fit int64)
FLOAT DOUBLE                        float64             ``float``
BOOLEAN                             bool                ``bool``
DECIMAL(p,s)                        decimal128(p,s)     ``str`` with exactly ``s`` digits
CHAR VARCHAR STRING JSON            string              ``str``
DATE                                date32              ``str`` ``'YYYY-MM-DD'``
DATETIME                            timestamp[s]        ``str`` ``'YYYY-MM-DD HH:MM:SS'``
==================================  ==================  ===================================
"""

from __future__ import annotations

import datetime as _dt
import decimal
from collections.abc import Sequence

import pyarrow as pa

from common.coltypes import Column, ColumnType
from common.rowcodec import decode_rows

KIND_KEY = b"kind"
"""Field metadata naming the column type ('LARGEINT', 'VARCHAR(16)'), kept in every segment."""
SEGMENT_FORMAT = b"\x02"
"""First byte of a columnar segment; b"\\x01" is the older marshal row format."""

_FIXED: dict[str, pa.DataType] = {
    "TINYINT": pa.int8(),
    "SMALLINT": pa.int16(),
    "INT": pa.int32(),
    "BIGINT": pa.int64(),
    "LARGEINT": pa.string(),
    "FLOAT": pa.float64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "CHAR": pa.string(),
    "VARCHAR": pa.string(),
    "STRING": pa.string(),
    "JSON": pa.string(),
    "DATE": pa.date32(),
    "DATETIME": pa.timestamp("s"),
}


def arrow_type(ctype: ColumnType) -> pa.DataType:
    if ctype.kind == "DECIMAL":
        return pa.decimal128(ctype.precision or 10, ctype.scale or 0)
    return _FIXED[ctype.kind]


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    """The schema of a table's segments: one field per column, in table order."""
    return pa.schema([pa.field(c.name, arrow_type(c.type), nullable=c.nullable, metadata={KIND_KEY: str(c.type)})
                      for c in columns])


# ---------------------------------------------------------------- segments


def encode_segment(data: pa.Table | pa.RecordBatch) -> bytes:
    """A table (or batch) as one segment: one record batch in an IPC stream."""
    if isinstance(data, pa.Table):
        data = data.combine_chunks()
        batch = data.to_batches()[0] if data.num_rows else pa.RecordBatch.from_pylist([], schema=data.schema)
    else:
        batch = data
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return SEGMENT_FORMAT + sink.getvalue().to_pybytes()


def is_columnar(payload: bytes) -> bool:
    return payload[:1] == SEGMENT_FORMAT


_READ_OPTIONS = pa.ipc.IpcReadOptions(ensure_alignment=pa.ipc.Alignment.DataTypeSpecific)
"""The format byte shifts every buffer of the IPC stream by one: they are copied to aligned memory
(about 30 us per 1 MB segment), which Acero (group_by, joins) requires and warns about otherwise."""


def decode_segment(payload: bytes) -> pa.Table:
    """A columnar segment's table (its buffers copied to aligned memory, see _READ_OPTIONS)."""
    if not is_columnar(payload):
        raise ValueError(f"not a columnar segment (format byte {payload[:1]!r})")
    return pa.ipc.open_stream(pa.py_buffer(payload)[1:], options=_READ_OPTIONS).read_all()


def read_table(payload: bytes, schema: pa.Schema) -> pa.Table:
    """Any segment as a table of ``schema``: columnar ones as they are (cast if their types or field
    metadata differ), marshal-row ones converted."""
    if is_columnar(payload):
        table = decode_segment(payload)
        return table if table.schema.equals(schema, check_metadata=True) else table.cast(schema)
    return table_from_rows(decode_rows(payload), schema)


def segment_rows(payload: bytes) -> int:
    """Rows in a segment of either format."""
    if is_columnar(payload):
        return decode_segment(payload).num_rows
    return len(decode_rows(payload))


def segment_to_rows(payload: bytes) -> list[tuple]:
    """The row values of a segment of either format (see the module docstring)."""
    if is_columnar(payload):
        return rows_of(decode_segment(payload))
    return decode_rows(payload)


# ---------------------------------------------------------------- rows <-> columns


def _to_arrow_value(kind: str):
    if kind == "DECIMAL":
        return lambda v: None if v is None else decimal.Decimal(v)
    if kind == "DATE":
        return lambda v: None if v is None else _dt.date.fromisoformat(v)
    if kind == "DATETIME":
        return lambda v: None if v is None else _dt.datetime.fromisoformat(v)
    if kind == "LARGEINT":
        return lambda v: None if v is None else str(v)
    return None


def table_from_rows(rows: Sequence[tuple], schema: pa.Schema) -> pa.Table:
    """Rows of stored Python values (common/coltypes.py) as a table of ``schema``."""
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for values, f in zip(cols, schema, strict=True):
        conv = _to_arrow_value(_kind_of(f))
        arrays.append(pa.array([conv(v) for v in values] if conv else list(values), type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _kind_of(f: pa.Field) -> str:
    t = f.type
    if is_large_int(f):
        return "LARGEINT"
    if pa.types.is_decimal(t):
        return "DECIMAL"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "DATETIME"
    return ""


def column_values(array: pa.Array | pa.ChunkedArray, large_int: bool = False) -> list:
    """A column's row values: temporal and decimal columns as their text (vectorized cast)."""
    t = array.type
    if pa.types.is_decimal(t) or pa.types.is_date(t) or pa.types.is_timestamp(t):
        return array.cast(pa.string()).to_pylist()
    values = array.to_pylist()
    if large_int:
        return [None if v is None else int(v) for v in values]
    return values


def is_large_int(f: pa.Field) -> bool:
    return bool(f.metadata) and f.metadata.get(KIND_KEY) == b"LARGEINT"


def rows_of(table: pa.Table) -> list[tuple]:
    """The table's rows as tuples of the values the row API gives (see the module docstring).
    LARGEINT, stored as text, is told by its field's metadata and given back as ``int``."""
    if table.num_rows == 0:
        return []
    cols = [column_values(table.column(i), is_large_int(f)) for i, f in enumerate(table.schema)]
    return list(zip(*cols, strict=True))
