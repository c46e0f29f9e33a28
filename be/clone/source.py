"""The source side of a clone: a tablet's visible rowsets streamed in large chunks.

Rowsets are immutable once visible, so the list is snapshotted under the rowset lock and the
chunks are then read from RocksDB off the event loop, a group at a time. One message carries one
stored chunk (up to ``CHUNK_ROWS`` rows, as the load wrote it), never one row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from be.storage.rowsets import RowsetStore, StorageError, chunk_key
from be.storage.store import BeStore
from common.gen.tabletsim.v1 import backend_pb2

READ_GROUP_BYTES = 8 * 1024 * 1024
READ_GROUP_CHUNKS = 32


def _read(store: BeStore, tablet_id: int, keys: list[tuple[int, int]]) -> list[bytes]:
    out = []
    for txn_id, i in keys:
        payload = store.db.get(chunk_key(tablet_id, txn_id, i))
        if payload is None:
            raise StorageError(f"tablet {tablet_id}: chunk {i} of txn {txn_id} is missing")
        out.append(payload)
    return out


async def stream_rowsets(store: BeStore, rowsets: RowsetStore, tablet_id: int, version_from: int,
                         version_to: int) -> AsyncIterator[backend_pb2.RowsetChunk]:
    """Every chunk of the rowsets in (version_from, version_to], in version then chunk order.
    A rowset without chunks is sent as one empty message with chunk_count 0."""
    listed = await asyncio.to_thread(rowsets.clone_rowsets, tablet_id, version_from, version_to)
    for version, txn_id, rows, nbytes, n_chunks in listed:
        if n_chunks == 0:
            yield backend_pb2.RowsetChunk(version=version, txn_id=txn_id, chunk_index=0, chunk_count=0,
                                          row_count=rows, rowset_bytes=nbytes)
            continue
        step = max(1, min(READ_GROUP_CHUNKS, n_chunks * READ_GROUP_BYTES // max(nbytes, 1)))
        for start in range(0, n_chunks, step):
            idx = list(range(start, min(start + step, n_chunks)))
            payloads = await asyncio.to_thread(_read, store, tablet_id, [(txn_id, i) for i in idx])
            for i, payload in zip(idx, payloads, strict=True):
                yield backend_pb2.RowsetChunk(version=version, txn_id=txn_id, chunk_index=i,
                                              chunk_count=n_chunks, rows=payload, row_count=rows,
                                              rowset_bytes=nbytes)
