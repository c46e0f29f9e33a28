"""The BE's RocksDB: identity, tablet metadata, rowsets.

Key space (raw bytes, prefixes keep each kind in its own range):
    b"meta/backend_id"            -> decimal BackendId given by the FE
    b"tablet/" + 8-byte tablet id -> tablet meta (added with the catalog)
    b"rs/", b"pend/", b"cmp/", b"stale/"
                                  -> rowset chunks, pending rowsets, compaction markers, stale rowsets (rowsets.py)
"""

from __future__ import annotations

import os
import struct

from rocksdict import DBCompressionType, Options, Rdict, WriteOptions

BACKEND_ID_KEY = b"meta/backend_id"
TABLET_PREFIX = b"tablet/"


ROWSET_PREFIX = b"rs/"  # + tablet (8) + txn (8) + chunk (4): encoded rows
PENDING_PREFIX = b"pend/"  # + tablet (8) + txn (8): pending rowset meta
COMPACTION_MARKER_PREFIX = b"cmp/"  # + tablet (8) + rowset (8): a compaction output not swapped in yet
STALE_PREFIX = b"stale/"  # + tablet (8) + rowset (8): a rowset a compaction replaced, kept for a while


def tablet_key(tablet_id: int) -> bytes:
    return TABLET_PREFIX + struct.pack(">Q", tablet_id)


class BeStore:
    """Owns the RocksDB handle of one BE storage dir."""

    def __init__(self, storage_dir: str) -> None:
        self.storage_dir = storage_dir
        os.makedirs(storage_dir, exist_ok=True)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        # 32 MB memtables (RocksDB's default is 64 MB, two of them): a BE's memory stays bounded
        # on a laptop while loads and compactions write continuously
        opts.set_write_buffer_size(32 * 1024 * 1024)
        # No block compression: rowset segments are Arrow columns, which snappy shrank by ~12% while
        # decompressing them made a Query's scan 4-5x slower (bench/query.py: 0.29 s against 0.06 s
        # to read 450 MB of segments)
        opts.set_compression_type(DBCompressionType.none())
        self.db = Rdict(os.path.join(storage_dir, "rocksdb"), opts)
        self.sync = WriteOptions()
        self.sync.sync = True
        # Rowset data goes through RocksDB's WAL without an fsync per write: it survives the
        # BE process being killed (the OS has it), which is the failure tabletsim simulates.
        self.wal = WriteOptions()

    def backend_id(self) -> int:
        raw = self.db.get(BACKEND_ID_KEY)
        return int(raw) if raw is not None else 0

    def set_backend_id(self, backend_id: int) -> None:
        self.db.put(BACKEND_ID_KEY, str(backend_id).encode(), self.sync)

    def tablet_data_prefixes(self, tablet_id: int) -> list[bytes]:
        """Key prefixes holding a tablet's data (its rowsets, visible and pending)."""
        tid = struct.pack(">Q", tablet_id)
        return [ROWSET_PREFIX + tid, PENDING_PREFIX + tid, COMPACTION_MARKER_PREFIX + tid, STALE_PREFIX + tid]

    def disk_usage(self, capacity_override: int | None) -> tuple[int, int, int]:
        """(total, data used, available) bytes of the storage dir, as a BE reports them."""
        used = 0
        for root, _dirs, files in os.walk(self.storage_dir):
            for name in files:
                try:
                    used += os.path.getsize(os.path.join(root, name))
                except OSError:
                    continue  # a RocksDB file compacted away while we walk
        if capacity_override:
            return capacity_override, used, max(capacity_override - used, 0)
        st = os.statvfs(self.storage_dir)
        return st.f_blocks * st.f_frsize, used, st.f_bavail * st.f_frsize

    def close(self) -> None:
        self.db.close()
