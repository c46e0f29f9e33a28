"""The source side of a clone: a tablet's visible rowsets streamed in large chunks.

Rowsets are immutable once visible: the path of rowsets covering the versions asked for (live
ones, and stale ones a compaction replaced when the older versions need them) is taken under the
rowset lock with a RocksDB snapshot, and the chunks are then read through that snapshot off the
event loop, a group at a time - a compaction or a sweep meanwhile does not disturb it. One message carries one
stored chunk (a segment as the load or a compaction wrote it), never one row. Segments travel as
the bytes stored - columnar (common/columnar.py) or older marshal rows - and the destination
stores them unchanged (be/clone/task.py): a clone reads and checksums as its source does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from be.storage.rowsets import RowsetStore, StorageError, chunk_key
from be.storage.store import BeStore
from common.gen.tabletsim.v1 import backend_pb2

READ_GROUP_BYTES = 8 * 1024 * 1024
READ_GROUP_CHUNKS = 32


def _read(snap, tablet_id: int, keys: list[tuple[int, int]]) -> list[bytes]:
    out = []
    for rowset_id, i in keys:
        try:
            out.append(snap[chunk_key(tablet_id, rowset_id, i)])
        except Exception:  # noqa: BLE001 - rocksdict's snapshot raises a bare Exception for a missing key
            raise StorageError(f"tablet {tablet_id}: chunk {i} of rowset {rowset_id} is missing") from None
    return out


async def stream_rowsets(store: BeStore, rowsets: RowsetStore, tablet_id: int, version_from: int,
                         version_to: int) -> AsyncIterator[backend_pb2.RowsetChunk]:
    """Every chunk of the rowsets covering (version_from, version_to], in version then chunk order.
    A rowset without chunks is sent as one empty message with chunk_count 0."""
    listed, snap = await asyncio.to_thread(rowsets.clone_plan, tablet_id, version_from, version_to)
    for start_version, version, txn_id, rows, nbytes, n_chunks in listed:
        if n_chunks == 0:
            yield backend_pb2.RowsetChunk(version=version, txn_id=txn_id, chunk_index=0, chunk_count=0,
                                          row_count=rows, rowset_bytes=nbytes, start_version=start_version)
            continue
        step = max(1, min(READ_GROUP_CHUNKS, n_chunks * READ_GROUP_BYTES // max(nbytes, 1)))
        for start in range(0, n_chunks, step):
            idx = list(range(start, min(start + step, n_chunks)))
            payloads = await asyncio.to_thread(_read, snap, tablet_id, [(txn_id, i) for i in idx])
            for i, payload in zip(idx, payloads, strict=True):
                yield backend_pb2.RowsetChunk(version=version, txn_id=txn_id, chunk_index=i,
                                              chunk_count=n_chunks, rows=payload, row_count=rows,
                                              rowset_bytes=nbytes, start_version=start_version)
