"""The merge step of compaction, behind one function: input segments in version order in, output
segments out.

A DUPLICATE KEY table keeps every row, so merging rowsets is concatenating their rows in version
order. With the tablet's Arrow schema, the output is columnar (common/columnar.py): the input
segments are read as tables of that schema - old marshal-row segments converted, so a compaction
rewrites an old replica's segments in the new format - concatenated (``pa.concat_tables``, no
copy) and cut into segments of about ``TARGET_CHUNK_BYTES`` and at most ``MAX_CHUNK_ROWS`` rows. A
columnar segment that is already large (``PASS_THROUGH_BYTES``) and in the tablet's schema is
passed through as it is (a byte copy, no re-encoding), so folding a large base rowset again costs
little. Rows, their order and so the row checksum are unchanged whatever the cut.

Without a schema (a tablet that declares no columns: tools and unit tests) segments are rows
without types: small ones are decoded and re-encoded together as marshal rows, large ones of
either format pass through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

from common import columnar
from common.rowcodec import count_rows as count_marshal_rows
from common.rowcodec import encode_rows

TARGET_CHUNK_BYTES = 1024 * 1024
"""Small segments are merged until their rows reach about this size (Arrow bytes, or encoded
marshal rows for a tablet without a schema)."""
MAX_CHUNK_ROWS = 65_536
"""No output segment holds more rows than this, however narrow its rows."""
PASS_THROUGH_BYTES = 64 * 1024
"""A segment at least this large is copied as it is when it is in the output format already
(columnar in the tablet's schema; either format for a tablet without one)."""


def merge_chunks(chunks: Iterable[bytes], schema: pa.Schema | None = None) -> Iterator[tuple[bytes, int]]:
    """Segments of the input rowsets, in version order -> ``(segment, row count)``.

    ``schema``: the tablet's Arrow schema (:func:`be.storage.tablets.arrow_schema_of`); the output
    is then columnar in that schema. None: the tablet declares no columns and rows stay rows."""
    if schema is None:
        yield from _merge_rows(chunks)
    else:
        yield from _merge_tables(chunks, schema)


def count_rows(payload: bytes) -> int:
    """Rows in a segment of either format, without decoding its rows (a columnar segment's batch
    header; a marshal list's length)."""
    if columnar.is_columnar(payload):
        return columnar.segment_rows(payload)  # zero-copy over the payload: reads the header only
    return count_marshal_rows(payload)


def _merge_tables(chunks: Iterable[bytes], schema: pa.Schema) -> Iterator[tuple[bytes, int]]:
    pending: list[pa.Table] = []
    pending_bytes = pending_rows = 0
    for n, payload in enumerate(chunks):
        if len(payload) >= PASS_THROUGH_BYTES and columnar.is_columnar(payload):
            stored = columnar.decode_segment(payload)  # zero-copy over the payload
            if stored.num_rows <= MAX_CHUNK_ROWS and stored.schema.equals(schema, check_metadata=True):
                if pending:
                    yield from _cut(pending, final=True)
                    pending, pending_bytes, pending_rows = [], 0, 0
                yield payload, stored.num_rows
                continue
        try:
            table = columnar.read_table(payload, schema)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            kind = "columnar" if columnar.is_columnar(payload) else "marshal-row"
            raise ValueError(f"input segment {n} ({kind}, {len(payload)} bytes) does not fit the tablet's "
                             f"schema {schema.names}: {type(exc).__name__}: {exc}") from None
        if not table.num_rows:
            continue
        pending.append(table)
        pending_bytes += table.nbytes
        pending_rows += table.num_rows
        if pending_bytes >= TARGET_CHUNK_BYTES or pending_rows >= MAX_CHUNK_ROWS:
            leftover = yield from _cut(pending, final=False)
            pending = [leftover] if leftover.num_rows else []
            pending_bytes, pending_rows = leftover.nbytes, leftover.num_rows
    if pending:
        yield from _cut(pending, final=True)


def _cut(tables: list[pa.Table], final: bool) -> Iterator[tuple[bytes, int]]:
    """Encode ``tables`` (concatenated) as segments of about TARGET_CHUNK_BYTES; returns the rows
    short of a full segment (none when ``final``)."""
    table = pa.concat_tables(tables)
    rows = table.num_rows
    per_segment = max(1, min(MAX_CHUNK_ROWS, TARGET_CHUNK_BYTES * rows // max(table.nbytes, 1)))
    at = 0
    while rows - at >= per_segment or (final and at < rows):
        piece = table.slice(at, per_segment)
        yield columnar.encode_segment(piece), piece.num_rows
        at += piece.num_rows
    return table.slice(at)


def _merge_rows(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, int]]:
    pending: list[tuple] = []
    pending_bytes = 0
    for payload in chunks:
        if len(payload) >= PASS_THROUGH_BYTES:
            if pending:
                yield encode_rows(pending), len(pending)
                pending, pending_bytes = [], 0
            yield payload, count_rows(payload)
            continue
        rows = columnar.segment_to_rows(payload)
        if not rows:
            continue
        pending.extend(rows)
        pending_bytes += len(payload)
        if pending_bytes >= TARGET_CHUNK_BYTES:
            yield encode_rows(pending), len(pending)
            pending, pending_bytes = [], 0
    if pending:
        yield encode_rows(pending), len(pending)
