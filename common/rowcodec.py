"""Rows on the wire and on disk: a list of tuples of plain values, encoded with ``marshal``.

marshal is the fastest stdlib codec for exactly these types (int of any size, float, str,
bool, None, tuple) and every process of a cluster runs the same interpreter. The first byte is
a format version so that a future codec can live beside this one.
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
