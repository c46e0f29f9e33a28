"""Rowsets of tablet replicas: pending by txn, visible by version (MVCC).

    b"rs/"   + tablet(8) + txn(8) + chunk(4)  ->  encoded rows (common/rowcodec)
    b"pend/" + tablet(8) + txn(8)             ->  orjson {partition_id, rows, bytes, chunks}

A write appends chunks to the txn's pending rowset. Publishing version V moves nothing: the
tablet meta records [V, txn, rows, bytes, chunks] and the pending marker is deleted, in one
batch. Versions of a replica are contiguous: version V publishes only on a replica at V-1
(a replica that missed a version keeps its later pending rowsets and lags until a clone).
Reads at version V see every rowset up to V.
"""

from __future__ import annotations

import logging
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from rocksdict import WriteBatch

from be.storage.store import PENDING_PREFIX, ROWSET_PREFIX, BeStore
from be.storage.tablets import TabletManager, TabletMeta
from common.rowcodec import decode_rows

log = logging.getLogger(__name__)


def _tt(tablet_id: int, txn_id: int) -> bytes:
    return struct.pack(">QQ", tablet_id, txn_id)


def chunk_key(tablet_id: int, txn_id: int, chunk: int) -> bytes:
    return ROWSET_PREFIX + _tt(tablet_id, txn_id) + struct.pack(">I", chunk)


def pending_key(tablet_id: int, txn_id: int) -> bytes:
    return PENDING_PREFIX + _tt(tablet_id, txn_id)


@dataclass
class Pending:
    partition_id: int
    rows: int = 0
    bytes: int = 0
    chunks: int = 0


@dataclass(frozen=True)
class PublishOutcome:
    ok: bool
    version: int
    error: str = ""


class StorageError(Exception):
    """A request the replica cannot serve (unknown tablet, version not reached)."""


class RowsetStore:
    """Pending and visible rowsets of every tablet on this BE. Thread-safe (one lock)."""

    def __init__(self, store: BeStore, tablets: TabletManager) -> None:
        self._store = store
        self._tablets = tablets
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int], Pending] = {}
        for key, raw in store.db.items(from_key=PENDING_PREFIX):
            if not key.startswith(PENDING_PREFIX):
                break
            tablet_id, txn_id = struct.unpack(">QQ", key[len(PENDING_PREFIX):])
            self._pending[(tablet_id, txn_id)] = Pending(**orjson.loads(raw))
        if self._pending:
            log.info("kept %d pending rowsets across the restart", len(self._pending))

    # ------------------------------------------------------------------ writes
    def write(self, txn_id: int, chunks: list[tuple[int, int, bytes, int]]) -> int:
        """Append ``(tablet_id, partition_id, encoded rows, row count)`` chunks to pending rowsets.

        All chunks go in one RocksDB batch: the call succeeds or fails as a whole.
        """
        batch = WriteBatch(raw_mode=True)
        total = 0
        with self._lock:
            updated: dict[tuple[int, int], Pending] = {}
            for tablet_id, partition_id, payload, rows in chunks:
                meta = self._tablets.get(tablet_id)
                if meta is None:
                    raise StorageError(f"tablet {tablet_id} does not exist on this backend")
                if any(rs[1] == txn_id for rs in meta.rowsets):
                    raise StorageError(f"txn {txn_id} is already published on tablet {tablet_id}")
                key = (tablet_id, txn_id)
                pending = updated.get(key) or self._pending.get(key)
                pending = Pending(partition_id, pending.rows, pending.bytes, pending.chunks) if pending \
                    else Pending(partition_id)
                batch.put(chunk_key(tablet_id, txn_id, pending.chunks), payload)
                pending.chunks += 1
                pending.rows += rows
                pending.bytes += len(payload)
                updated[key] = pending
                total += rows
            for (tablet_id, tid), pending in updated.items():
                batch.put(pending_key(tablet_id, tid), orjson.dumps(pending.__dict__))
            self._store.db.write(batch, self._store.wal)
            self._pending.update(updated)
        return total

    def publish(self, txn_id: int, tablet_id: int, version: int) -> PublishOutcome:
        with self._lock:
            meta = self._tablets.get(tablet_id)
            if meta is None:
                return PublishOutcome(False, 0, f"tablet {tablet_id} does not exist on this backend")
            if any(rs[0] == version and rs[1] == txn_id for rs in meta.rowsets) or (
                meta.version >= version and (tablet_id, txn_id) not in self._pending
            ):
                return PublishOutcome(True, meta.version)  # already published, or cloned past it
            pending = self._pending.get((tablet_id, txn_id))
            if pending is None:
                return PublishOutcome(False, meta.version, f"no rowset of txn {txn_id}: this replica missed the write")
            if meta.version != version - 1:
                return PublishOutcome(
                    False, meta.version,
                    f"version gap: replica at version {meta.version} cannot publish version {version}",
                )
            meta.rowsets.append([version, txn_id, pending.rows, pending.bytes, pending.chunks])
            meta.version = version
            meta.row_count += pending.rows
            meta.data_size += pending.bytes
            batch = WriteBatch(raw_mode=True)
            self._tablets.save(meta, batch)
            batch.delete(pending_key(tablet_id, txn_id))
            self._store.db.write(batch, self._store.wal)
            del self._pending[(tablet_id, txn_id)]
            return PublishOutcome(True, version)

    def clear(self, txn_id: int, tablet_ids: list[int] | None = None) -> int:
        """Delete the pending rowsets of ``txn_id`` (all its tablets when none are named)."""
        with self._lock:
            keys = [k for k in self._pending if k[1] == txn_id and (not tablet_ids or k[0] in tablet_ids)]
            if not keys:
                return 0
            batch = WriteBatch(raw_mode=True)
            for tablet_id, tid in keys:
                start = ROWSET_PREFIX + _tt(tablet_id, tid)
                batch.delete_range(start, start + b"\xff" * 5)
                batch.delete(pending_key(tablet_id, tid))
            self._store.db.write(batch, self._store.wal)
            for key in keys:
                del self._pending[key]
            return len(keys)

    def pending_txns(self) -> set[int]:
        with self._lock:
            return {txn for _, txn in self._pending}

    def forget_tablet(self, tablet_id: int) -> None:
        """The tablet was dropped (its keys are gone): forget its pending markers."""
        with self._lock:
            for key in [k for k in self._pending if k[0] == tablet_id]:
                del self._pending[key]

    # ------------------------------------------------------------------ reads
    def _meta_at(self, tablet_id: int, version: int) -> TabletMeta:
        meta = self._tablets.get(tablet_id)
        if meta is None:
            raise StorageError(f"tablet {tablet_id} does not exist on this backend")
        if meta.version < version:
            raise StorageError(f"tablet {tablet_id} is at version {meta.version}, below the requested {version}")
        return meta

    def chunks(self, tablet_id: int, version: int) -> Iterator[bytes]:
        """Encoded row chunks of every rowset up to ``version``, in version order."""
        with self._lock:
            rowsets = [rs for rs in self._meta_at(tablet_id, version).rowsets if rs[0] <= version]
        for _version, txn_id, _rows, _bytes, n_chunks in sorted(rowsets):
            for i in range(n_chunks):
                payload = self._store.db.get(chunk_key(tablet_id, txn_id, i))
                if payload is None:
                    raise StorageError(f"tablet {tablet_id}: chunk {i} of txn {txn_id} is missing")
                yield payload

    def scan(self, tablet_id: int, version: int) -> Iterator[tuple]:
        for payload in self.chunks(tablet_id, version):
            yield from decode_rows(payload)

    def checksum(self, tablet_id: int, version: int) -> tuple[str, int]:
        """CRC32 over the rows' bytes in version order, and the row count: equal on equal replicas."""
        crc = 0
        rows = 0
        with self._lock:
            meta = self._meta_at(tablet_id, version)
            rows = sum(rs[2] for rs in meta.rowsets if rs[0] <= version)
        for payload in self.chunks(tablet_id, version):
            crc = zlib.crc32(payload, crc)
        return f"{crc:08x}", rows

    # ------------------------------------------------------------------ clone
    def pending_tablets(self) -> dict[int, set[int]]:
        """txn id -> the tablets holding a pending rowset of it."""
        with self._lock:
            out: dict[int, set[int]] = {}
            for tablet_id, txn_id in self._pending:
                out.setdefault(txn_id, set()).add(tablet_id)
            return out

    def clone_rowsets(self, tablet_id: int, version_from: int, version_to: int) -> list[list[int]]:
        """The visible rowsets in (version_from, version_to] that a clone copies from this replica.

        Versions start at 1 (empty) and are contiguous, so a replica at version_to has every one;
        a StorageError says which are missing otherwise (the destination then clones in full)."""
        with self._lock:
            meta = self._meta_at(tablet_id, version_to)
            out = [list(rs) for rs in meta.rowsets if version_from < rs[0] <= version_to]
        out.sort()
        want = list(range(max(version_from, 1) + 1, version_to + 1))
        if [rs[0] for rs in out] != want:
            raise StorageError(f"tablet {tablet_id} has no rowsets for every version in "
                               f"({version_from}, {version_to}]: it holds {[rs[0] for rs in out]}")
        return out

    def install_clone(self, template: TabletMeta, rowsets: list[list[int]], incremental: bool) -> TabletMeta:
        """Make the rowsets a clone copied visible; their chunks are already written.

        INCREMENTAL: the rowsets continue the replica's version (those it has are skipped).
        FULL: the replica becomes ``template`` with exactly these rowsets, and the chunks of its
        other rowsets are deleted - unless it already holds the cloned version (a stand-in replica
        that kept publishing meanwhile is complete). Pending markers of the installed txns go
        (their rows are visible now). One synced batch; returns a copy of the new meta."""
        tablet_id = template.tablet_id
        with self._lock:
            meta = self._tablets.get(tablet_id)
            if meta is None:
                raise StorageError(f"tablet {tablet_id} does not exist on this backend")
            batch = WriteBatch(raw_mode=True)
            if incremental:
                installed = [rs for rs in rowsets if rs[0] > meta.version]
                if installed and installed[0][0] != meta.version + 1:
                    raise StorageError(f"tablet {tablet_id}: cloned versions start at {installed[0][0]} "
                                       f"but the replica is at version {meta.version}")
                meta.rowsets = meta.rowsets + [list(rs) for rs in installed]
            elif meta.replica_id == template.replica_id and meta.version >= (rowsets[-1][0] if rowsets else 1):
                installed = []
            else:
                keep = {rs[1] for rs in rowsets}
                for rs in meta.rowsets:
                    if rs[1] not in keep and (tablet_id, rs[1]) not in self._pending:
                        start = ROWSET_PREFIX + _tt(tablet_id, rs[1])
                        batch.delete_range(start, start + b"\xff" * 5)
                installed = [list(rs) for rs in rowsets]
                meta.replica_id, meta.db_id, meta.table_id = template.replica_id, template.db_id, template.table_id
                meta.partition_id, meta.schema_json = template.partition_id, template.schema_json
                meta.rowsets = installed
                meta.version = 1
            if meta.rowsets:
                meta.version = max(meta.version, meta.rowsets[-1][0])
            meta.row_count = sum(rs[2] for rs in meta.rowsets)
            meta.data_size = sum(rs[3] for rs in meta.rowsets)
            for rs in installed:
                if self._pending.pop((tablet_id, rs[1]), None) is not None:
                    batch.delete(pending_key(tablet_id, rs[1]))
            self._tablets.save(meta, batch)
            self._store.db.write(batch, self._store.sync)
            return TabletMeta.decode(meta.encode())
