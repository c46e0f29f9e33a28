"""The merge step of compaction, behind one function: input chunks in version order in, output
chunks out.

A DUPLICATE KEY table keeps every row, so merging rowsets is concatenating their rows in version
order. Small chunks (one-row loads, short batches) are decoded and re-encoded together into chunks
of about ``TARGET_CHUNK_BYTES``; a chunk that is already that large is passed through as it is
(a byte copy, no decode), so folding a large base rowset again costs little. Rows, their order and
so the row checksum are unchanged whatever the chunking.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from common.rowcodec import decode_rows, encode_rows

TARGET_CHUNK_BYTES = 256 * 1024
"""Small chunks are merged until their encoded rows reach about this size."""
PASS_THROUGH_BYTES = 64 * 1024
"""A chunk at least this large is copied as it is."""


def merge_chunks(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, int]]:
    """Encoded chunks of the input rowsets, in version order -> ``(encoded chunk, row count)``."""
    pending: list[tuple] = []
    pending_bytes = 0
    for payload in chunks:
        if len(payload) >= PASS_THROUGH_BYTES:
            if pending:
                yield encode_rows(pending), len(pending)
                pending, pending_bytes = [], 0
            yield payload, _count(payload)
            continue
        rows = decode_rows(payload)
        if not rows:
            continue
        pending.extend(rows)
        pending_bytes += len(payload)
        if pending_bytes >= TARGET_CHUNK_BYTES:
            yield encode_rows(pending), len(pending)
            pending, pending_bytes = [], 0
    if pending:
        yield encode_rows(pending), len(pending)


def _count(payload: bytes) -> int:
    """Rows in an encoded chunk, read from marshal's list header without decoding the rows."""
    # rowcodec: 1 version byte, then marshal of a list: a type byte ('[' possibly with the ref
    # flag 0x80) and a little-endian int32 length.
    if len(payload) >= 6 and payload[1] & 0x7F == ord("["):
        return int.from_bytes(payload[2:6], "little")
    return len(decode_rows(payload))
