"""Tablet replicas on a BE: their metadata in RocksDB, kept in memory for fast lookups.

    b"tablet/" + 8-byte tablet id  ->  orjson tablet meta (ids, schema, version)

Rowsets (visible by version, pending by txn) live under their own prefixes and are added by the
write path; dropping a tablet deletes them with it. A tablet's columns (``schema_json``, as the FE
sent them) give the Arrow schema of its columnar segments (:func:`arrow_schema_of`).

One lock, :attr:`TabletManager.lock`, guards every change of a tablet's meta: the RowsetStore
holds it while it reads a meta and writes it back (write, publish, clone install, compaction
swap), and create and drop take it too. A drop in the middle of a publish would otherwise be
undone by the publish writing the dropped tablet's meta back.
"""

from __future__ import annotations

import functools
import logging
import struct
import threading
from dataclasses import dataclass, field, fields
from typing import Any

import orjson
import pyarrow as pa
from rocksdict import WriteBatch

from be.storage.store import TABLET_PREFIX, BeStore, tablet_key
from be.storage.versions import version_count
from common.coltypes import Column
from common.columnar import arrow_schema
from common.compaction_status import CompactionStatus

__all__ = ["CompactionStatus", "TabletManager", "TabletMeta", "arrow_schema_of", "tablet_id_of"]

log = logging.getLogger(__name__)


@dataclass
class TabletMeta:
    tablet_id: int
    replica_id: int
    db_id: int
    table_id: int
    partition_id: int
    version: int
    schema_json: str
    row_count: int = 0
    data_size: int = 0
    # live rowsets in version order: [start, end, rowset_id, rows, bytes, chunks] (be/storage/versions)
    rowsets: list[list[int]] = field(default_factory=list)
    # rowsets starting at or above it wait for a cumulative compaction; below it, for a base one
    cumulative_point: int = 2
    # rowsets a compaction replaced, kept for reads and clones at older versions:
    # [start, end, rowset_id, rows, bytes, chunks, stale_since_ms]. Each is stored under its own key
    # (be/storage/rowsets.py), not in the meta: a publish rewrites the meta, which stays small.
    stale_rowsets: list[list[int]] = field(default_factory=list)

    def encode(self) -> bytes:
        return orjson.dumps({name: getattr(self, name) for name in _STORED})

    @classmethod
    def decode(cls, raw: bytes) -> TabletMeta:
        d: dict[str, Any] = orjson.loads(raw)
        d.pop("stale_rowsets", None)
        # rowsets written before compaction existed were [version, txn_id, rows, bytes, chunks]
        d["rowsets"] = [rs if len(rs) == 6 else [rs[0], *rs] for rs in d.get("rowsets", [])]
        return cls(**d)

    @property
    def version_count(self) -> int:
        return version_count(self.rowsets)

    @property
    def arrow_schema(self) -> pa.Schema | None:
        """The Arrow schema of the tablet's segments; None when it declares no columns."""
        return arrow_schema_of(self.schema_json)


@functools.lru_cache(maxsize=1024)
def arrow_schema_of(schema_json: str) -> pa.Schema | None:
    """The Arrow schema (common/columnar.py) of a tablet's ``schema_json``, parsed once per text.

    None for a tablet that declares no columns (``"[]"``: made without a table, by tools and unit
    tests): its segments are rows without types, read through the row API only."""
    try:
        columns = [Column.from_dict(c) for c in orjson.loads(schema_json or "[]")]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"tablet schema_json is not a list of columns ({exc}): {schema_json[:200]!r}") from None
    return arrow_schema(columns) if columns else None


_STORED = [f.name for f in fields(TabletMeta) if f.name != "stale_rowsets"]


class TabletManager:
    """All tablet replicas of this BE."""

    def __init__(self, store: BeStore) -> None:
        self._store = store
        self.lock = threading.RLock()
        """Held by every change of a tablet meta, here and in the RowsetStore (never across I/O
        other than the one RocksDB write of the change)."""
        self._tablets: dict[int, TabletMeta] = {}
        for key, raw in store.db.items(from_key=TABLET_PREFIX):
            if not key.startswith(TABLET_PREFIX):
                break
            meta = TabletMeta.decode(raw)
            self._tablets[meta.tablet_id] = meta
        log.info("loaded %d tablets", len(self._tablets))

    def __len__(self) -> int:
        return len(self._tablets)

    def get(self, tablet_id: int) -> TabletMeta | None:
        return self._tablets.get(tablet_id)

    def all(self) -> list[TabletMeta]:
        return list(self._tablets.values())

    def create(self, metas: list[TabletMeta]) -> int:
        """Create replicas (idempotent: an existing replica with the same id is kept)."""
        with self.lock:
            batch = WriteBatch(raw_mode=True)
            created = []
            for meta in metas:
                existing = self._tablets.get(meta.tablet_id)
                if existing is not None and existing.replica_id == meta.replica_id:
                    continue
                batch.put(tablet_key(meta.tablet_id), meta.encode())
                created.append(meta)
            if created:
                self._store.db.write(batch, self._store.sync)
                for meta in created:
                    self._tablets[meta.tablet_id] = meta
            return len(created)

    def save(self, meta: TabletMeta, batch: WriteBatch) -> None:
        batch.put(tablet_key(meta.tablet_id), meta.encode())

    def drop(self, tablet_ids: list[int], replica_ids: list[int] | None = None) -> list[int]:
        """Drop replicas and their data; returns the tablet ids dropped.

        With ``replica_ids`` (one per tablet), a tablet is dropped only if the replica this BE
        holds is that one: a late drop never deletes a newer replica cloned back here. Waits for
        a publish, clone install or compaction swap of the same BE in progress (:attr:`lock`).
        """
        if replica_ids is not None and len(replica_ids) != len(tablet_ids):
            raise ValueError(f"{len(replica_ids)} replica ids for {len(tablet_ids)} tablet ids: "
                             "give one per tablet or none")
        with self.lock:
            batch = WriteBatch(raw_mode=True)
            dropped = []
            for i, tablet_id in enumerate(tablet_ids):
                meta = self._tablets.get(tablet_id)
                if meta is None or (replica_ids and meta.replica_id != replica_ids[i]):
                    continue
                batch.delete(tablet_key(tablet_id))
                for prefix in self._store.tablet_data_prefixes(tablet_id):
                    batch.delete_range(prefix, prefix + b"\xff" * 9)
                dropped.append(tablet_id)
            if dropped:
                self._store.db.write(batch, self._store.sync)
                for tablet_id in dropped:
                    del self._tablets[tablet_id]
            return dropped


def tablet_id_of(key: bytes) -> int:
    return struct.unpack(">Q", key[len(TABLET_PREFIX):len(TABLET_PREFIX) + 8])[0]
