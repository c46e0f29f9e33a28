"""Rows on the wire and on disk: a list of tuples of plain values, encoded with ``marshal``.

marshal is the fastest stdlib codec for exactly these types (int of any size, float, str,
bool, None, tuple) and every process of a cluster runs the same interpreter. The first byte is
a format version so that a future codec can live beside this one: ``b"\\x02"`` is the columnar
segment of common/columnar.py, which storage reads beside this one.
"""

from __future__ import annotations

import marshal

_VERSION = b"\x01"


def encode_rows(rows: list[tuple]) -> bytes:
    return _VERSION + marshal.dumps(rows)


def decode_rows(data: bytes) -> list[tuple]:
    if not data:
        return []
    if data[:1] != _VERSION:
        raise ValueError(f"unknown row format version {data[:1]!r}")
    return marshal.loads(data[1:])


def count_rows(data: bytes) -> int:
    """Rows in encoded rows, read from marshal's list header without decoding the rows."""
    # 1 version byte, then marshal of a list: a type byte ('[' possibly with the ref flag 0x80)
    # and a little-endian int32 length.
    if len(data) >= 6 and data[:1] == _VERSION and data[1] & 0x7F == ord("["):
        return int.from_bytes(data[2:6], "little")
    return len(decode_rows(data))
