"""Rowsets of tablet replicas: pending by txn, visible by version range (MVCC).

    b"rs/"   + tablet(8) + rowset(8) + chunk(4)  ->  a segment: columnar (common/columnar.py) or,
                                                    written before it, marshal rows (common/rowcodec.py)
    b"pend/" + tablet(8) + txn(8)                ->  orjson {partition_id, rows, bytes, chunks, segments}

A write appends chunks to the txn's pending rowset (its rowset id is the txn id); a txn may write
a tablet in many calls, each adding segments to the same pending rowset, as StarRocks' delta
writer flushes memtables into segments of one rowset. A chunk that names its position (``seq``)
is idempotent: sent again, it replaces the segment at that position. Publishing
version V moves nothing: the tablet meta records the rowset [V, V, txn, rows, bytes, chunks] and
the pending marker is deleted, in one batch. Versions of a replica are contiguous: version V
publishes only on a replica at V-1 (a replica that missed a version keeps its later pending
rowsets and lags until a clone). A read at version V follows a path of rowsets covering [0, V]
(be/storage/versions.py) through a RocksDB snapshot, so a compaction swapping rowsets or a sweep
deleting stale ones never pulls chunks from under it. Compaction (be/storage/compaction.py)
swaps rowsets through :meth:`RowsetStore.swap_compacted` and :meth:`RowsetStore.sweep_stale`.

Segments of both formats are read: as rows (:meth:`RowsetStore.scan`), as Arrow tables in the
tablet's schema (:meth:`RowsetStore.scan_tables`), and by the checksum, which depends on the rows
only - not on how they are cut into segments nor on the format - so replicas with different
compaction histories agree.
"""

from __future__ import annotations

import logging
import marshal
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import orjson
import polars as pl
import pyarrow as pa
from rocksdict import WriteBatch

from be.storage import versions as V
from be.storage.merge import count_rows
from be.storage.store import PENDING_PREFIX, ROWSET_PREFIX, STALE_PREFIX, BeStore
from be.storage.tablets import TabletManager, TabletMeta, arrow_schema_of
from common.columnar import read_table, segment_to_rows

log = logging.getLogger(__name__)


def _tt(tablet_id: int, txn_id: int) -> bytes:
    return struct.pack(">QQ", tablet_id, txn_id)


def chunk_key(tablet_id: int, txn_id: int, chunk: int) -> bytes:
    return ROWSET_PREFIX + _tt(tablet_id, txn_id) + struct.pack(">I", chunk)


def pending_key(tablet_id: int, txn_id: int) -> bytes:
    return PENDING_PREFIX + _tt(tablet_id, txn_id)


def stale_key(tablet_id: int, rowset: list[int]) -> bytes:
    """A stale rowset's key: by id and end version (a base rowset a base compaction extended keeps
    its id, so its shorter past versions are stale under the same id)."""
    return STALE_PREFIX + _tt(tablet_id, rowset[V.RID]) + struct.pack(">Q", rowset[V.END])


def delete_rowset_chunks(batch: WriteBatch, tablet_id: int, rowset_id: int, from_chunk: int = 0) -> None:
    """Delete a rowset's chunks (those from ``from_chunk`` on)."""
    prefix = ROWSET_PREFIX + _tt(tablet_id, rowset_id)
    batch.delete_range(prefix + struct.pack(">I", from_chunk), prefix + b"\xff" * 5)


CHECKSUM_BLOCK_ROWS = 1024
"""Rows per block of the row checksum of a tablet without a schema: fixed, so the sum does not
depend on how chunks are cut."""
CHECKSUM_SEED = 0x7AB1E751
"""Seed of the 64-bit row hashes of the columnar checksum (polars ``DataFrame.hash_rows``)."""
CHECKSUM_BATCH_ROWS = 65_536
"""Segments are hashed in groups of about this many rows (fewer calls for many small segments;
the grouping does not change the sum)."""


@dataclass
class Pending:
    partition_id: int
    rows: int = 0
    bytes: int = 0
    chunks: int = 0
    segments: list[list[int]] = field(default_factory=list)
    """[rows, bytes] of each chunk, by position: what a resent chunk takes away before replacing it."""

    def put(self, seq: int | None, rows: int, size: int, where: str) -> int:
        """Account for the chunk at ``seq`` (None: the next position); returns the position.

        Below the next position it replaces that chunk; above it is refused (one is missing)."""
        if seq is None or seq == self.chunks:
            self.segments.append([rows, size])
            self.chunks += 1
            self.rows += rows
            self.bytes += size
            return self.chunks - 1
        if not 0 <= seq < self.chunks:
            missing = f"chunk {self.chunks} is" if seq == self.chunks + 1 else f"chunks {self.chunks}..{seq - 1} are"
            raise StorageError(f"{where}: chunk {seq} arrived after {self.chunks} chunks; {missing} missing "
                               "(an earlier write of this txn failed on this replica)")
        old_rows, old_size = self.segments[seq]
        self.segments[seq] = [rows, size]
        self.rows += rows - old_rows
        self.bytes += size - old_size
        return seq


@dataclass(frozen=True)
class PublishOutcome:
    ok: bool
    version: int
    error: str = ""


class StorageError(Exception):
    """A request the replica cannot serve (unknown tablet, version not reached)."""


def too_many_versions(tablet_id: int, count: int, limit: int) -> str:
    """StarRocks' refusal of a load into a tablet with too many versions."""
    return f"Too many versions. tablet_id: {tablet_id}, version_count: {count}, limit: {limit}"


class RowsetStore:
    """Pending and visible rowsets of every tablet on this BE. Thread-safe: one lock, held only
    for metadata (never while chunks are read or written)."""

    def __init__(self, store: BeStore, tablets: TabletManager,
                 max_versions: Callable[[], int] = lambda: 1000) -> None:
        self._store = store
        self._tablets = tablets
        self._max_versions = max_versions
        self._lock = tablets.lock  # one lock for every tablet meta change: drops and creates take it too
        self._pending: dict[tuple[int, int], Pending] = {}
        for key, raw in store.db.items(from_key=PENDING_PREFIX):
            if not key.startswith(PENDING_PREFIX):
                break
            tablet_id, txn_id = struct.unpack(">QQ", key[len(PENDING_PREFIX):])
            fields = orjson.loads(raw)
            pending = self._pending[(tablet_id, txn_id)] = Pending(**fields)
            if "segments" not in fields:  # written before chunks had positions: size them from the store
                pending.segments = [[count_rows(payload), len(payload)]
                                    for payload in (store.db[chunk_key(tablet_id, txn_id, i)]
                                                    for i in range(pending.chunks))]
        if self._pending:
            log.info("kept %d pending rowsets across the restart", len(self._pending))
        stale = 0
        for key, raw in store.db.items(from_key=STALE_PREFIX):
            if not key.startswith(STALE_PREFIX):
                break
            meta = tablets.get(struct.unpack(">Q", key[len(STALE_PREFIX):len(STALE_PREFIX) + 8])[0])
            if meta is not None:
                meta.stale_rowsets.append(orjson.loads(raw))
                stale += 1
        for meta in tablets.all():
            meta.stale_rowsets.sort()
        if stale:
            log.info("kept %d stale rowsets across the restart", stale)

    # ------------------------------------------------------------------ writes
    def write(self, txn_id: int, chunks: Sequence[tuple]) -> int:
        """Add ``(tablet_id, partition_id, segment, row count[, seq])`` chunks to pending rowsets.

        A chunk with ``seq`` goes to that position of the txn's pending rowset of the tablet: the
        next one appends, an earlier one replaces the chunk there (a resend), a later one is refused.
        Without ``seq`` it appends. The version limit is checked when a txn's first chunk reaches a
        tablet (StarRocks checks it when the delta writer opens), not for the segments that follow.
        All chunks go in one RocksDB batch: the call succeeds or fails as a whole.
        """
        batch = WriteBatch(raw_mode=True)
        total = 0
        with self._lock:
            updated: dict[tuple[int, int], Pending] = {}
            for chunk in chunks:
                tablet_id, partition_id, payload, rows = chunk[:4]
                seq = chunk[4] if len(chunk) > 4 else None
                meta = self._tablets.get(tablet_id)
                if meta is None:
                    raise StorageError(f"tablet {tablet_id} does not exist on this backend")
                if any(rs[V.RID] == txn_id for rs in meta.rowsets):
                    raise StorageError(f"txn {txn_id} is already published on tablet {tablet_id}")
                key = (tablet_id, txn_id)
                pending = updated.get(key) or self._pending.get(key)
                if pending is None:
                    count, limit = meta.version_count, self._max_versions()
                    if count >= limit:
                        raise StorageError(too_many_versions(tablet_id, count, limit))
                    pending = Pending(partition_id)
                elif key not in updated:  # a copy: the map changes only once the batch is written
                    pending = Pending(partition_id, pending.rows, pending.bytes, pending.chunks,
                                      [list(s) for s in pending.segments])
                at = pending.put(seq, rows, len(payload), f"txn {txn_id} on tablet {tablet_id}")
                batch.put(chunk_key(tablet_id, txn_id, at), payload)
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
            if any(rs[V.END] == version and rs[V.RID] == txn_id for rs in meta.rowsets) or (
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
            meta.rowsets.append(V.single(version, txn_id, pending.rows, pending.bytes, pending.chunks))
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
                delete_rowset_chunks(batch, tablet_id, tid)
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

    def _path(self, meta: TabletMeta, version_from: int, version_to: int) -> list[list[int]] | None:
        return V.find_path(meta.rowsets + meta.stale_rowsets, version_from, version_to)

    def read_plan(self, tablet_id: int, version: int) -> tuple[list[list[int]], object]:
        """The rowsets a read at ``version`` follows, and a RocksDB snapshot to read them through."""
        with self._lock:
            meta = self._meta_at(tablet_id, version)
            path = self._path(meta, 0, version)
            if path is None:
                raise StorageError(f"tablet {tablet_id}: version {version} was compacted away on this replica "
                                   f"(live rowsets {[rs[:2] for rs in meta.rowsets]})")
            return [list(rs[:6]) for rs in path], self._store.db.snapshot()

    def chunks(self, tablet_id: int, version: int) -> Iterator[bytes]:
        """Segments (either format) of the rowsets covering ``[0, version]``, in version order."""
        path, snap = self.read_plan(tablet_id, version)
        yield from read_chunks(snap, tablet_id, path)

    def scan(self, tablet_id: int, version: int) -> Iterator[tuple]:
        """The rows at ``version``, in version order, as the row API gives them (common/columnar.py)."""
        for payload in self.chunks(tablet_id, version):
            yield from segment_to_rows(payload)

    def scan_tables(self, tablet_id: int, version: int) -> Iterator[pa.Table]:
        """Each segment of the rowsets covering ``[0, version]``, in version order, as an Arrow table
        in the tablet's schema (:func:`be.storage.tablets.arrow_schema_of`); old marshal-row
        segments are converted. A tablet that declares no columns has no such schema: StorageError."""
        path, snap, schema = self._read_view(tablet_id, version)
        if schema is None:
            raise StorageError(f"tablet {tablet_id} declares no columns (schema_json '[]'): its segments "
                               "have no Arrow schema; read its rows with scan()")
        for rs, i, payload in read_segments(snap, tablet_id, path):
            yield segment_table(tablet_id, rs, i, payload, schema)

    def checksum(self, tablet_id: int, version: int) -> tuple[str, int]:
        """A checksum of the rows at ``version`` in version order, and the row count: equal on
        replicas with the same rows, however their compactions cut them into segments and whichever
        format (columnar or marshal rows) each segment has.

        Each segment is read as a table in the tablet's schema, each row hashed to 64 bits (polars
        ``DataFrame.hash_rows`` with the fixed :data:`CHECKSUM_SEED`), and the hashes, in row
        order, fed to a streaming CRC32 (``crc32(b, crc32(a)) == crc32(a + b)``: the cut between
        segments does not show). polars promises the same hashes only within one polars version:
        every process of a cluster runs the same virtualenv, so replicas compare like with like; a
        cluster upgraded one BE at a time would see checksum mismatches until all run the same one.

        A tablet that declares no columns (schema_json ``"[]"``, tools and unit tests) has no
        types to hash by: its checksum is a CRC32 over its row values (marshal, in fixed blocks of
        :data:`CHECKSUM_BLOCK_ROWS` rows), the same for both formats since they give the same rows.
        """
        path, snap, schema = self._read_view(tablet_id, version)
        if schema is None:
            return _row_checksum(segment_to_rows(p) for p in read_chunks(snap, tablet_id, path))
        crc = rows = 0
        batch: list[pa.Table] = []  # small segments (one-row loads) are hashed together
        batch_rows = 0
        for rs, i, payload in read_segments(snap, tablet_id, path):
            table = segment_table(tablet_id, rs, i, payload, schema)
            batch.append(table)
            batch_rows += table.num_rows
            if batch_rows >= CHECKSUM_BATCH_ROWS:
                crc = _crc_of_row_hashes(pa.concat_tables(batch), crc)
                rows += batch_rows
                batch, batch_rows = [], 0
        if batch_rows:
            crc = _crc_of_row_hashes(pa.concat_tables(batch), crc)
            rows += batch_rows
        return f"{crc:08x}", rows

    def _read_view(self, tablet_id: int, version: int) -> tuple[list[list[int]], object, pa.Schema | None]:
        """:meth:`read_plan` and the tablet's Arrow schema, taken together under the lock."""
        with self._lock:
            path, snap = self.read_plan(tablet_id, version)
            return path, snap, arrow_schema_of(self._tablets.get(tablet_id).schema_json)

    # ------------------------------------------------------------------ clone
    def pending_tablets(self) -> dict[int, set[int]]:
        """txn id -> the tablets holding a pending rowset of it."""
        with self._lock:
            out: dict[int, set[int]] = {}
            for tablet_id, txn_id in self._pending:
                out.setdefault(txn_id, set()).add(tablet_id)
            return out

    def clone_rowsets(self, tablet_id: int, version_from: int, version_to: int) -> list[list[int]]:
        """The rowsets :meth:`clone_plan` would copy."""
        return self.clone_plan(tablet_id, version_from, version_to)[0]

    def clone_plan(self, tablet_id: int, version_from: int, version_to: int) -> tuple[list[list[int]], object]:
        """The rowsets that cover (version_from, version_to] on this replica, for a clone to copy,
        and a snapshot to read their chunks through.

        Live rowsets are preferred; stale ones (replaced by a compaction, not swept yet) fill in
        older versions. When no path exists - the versions were compacted into a rowset that also
        covers versions the destination has - a StorageError says so (the destination then tries
        another source, then clones in full)."""
        with self._lock:
            meta = self._meta_at(tablet_id, version_to)
            path = self._path(meta, version_from, version_to)
            if path is None:
                raise StorageError(
                    f"tablet {tablet_id} cannot serve versions ({version_from}, {version_to}]: they were "
                    f"compacted into {[rs[:2] for rs in meta.rowsets if rs[V.END] > version_from][:3]}")
            return [list(rs[:6]) for rs in path], self._store.db.snapshot()

    def install_clone(self, template: TabletMeta, rowsets: list[list[int]], incremental: bool) -> TabletMeta:
        """Make the rowsets a clone copied visible; their chunks are already written.

        INCREMENTAL: the rowsets continue the replica's version (those it has are skipped).
        FULL: the replica becomes ``template`` with exactly these rowsets, and the chunks of its
        other rowsets (live and stale) are deleted - unless it already holds the cloned version (a
        stand-in replica that kept publishing meanwhile is complete). Pending markers of the
        installed txns go (their rows are visible now). One synced batch; returns a copy of the
        new meta."""
        tablet_id = template.tablet_id
        with self._lock:
            meta = self._tablets.get(tablet_id)
            if meta is None:
                raise StorageError(f"tablet {tablet_id} does not exist on this backend")
            batch = WriteBatch(raw_mode=True)
            if incremental:
                installed = [rs for rs in rowsets if rs[V.END] > meta.version]
                if installed and installed[0][V.START] not in V.first_starts(meta.version):
                    raise StorageError(f"tablet {tablet_id}: cloned versions start at {installed[0][V.START]} "
                                       f"but the replica is at version {meta.version}")
                meta.rowsets = meta.rowsets + [list(rs) for rs in installed]
            elif meta.replica_id == template.replica_id and meta.version >= (rowsets[-1][V.END] if rowsets else 1):
                installed = []
            else:
                keep = {rs[V.RID] for rs in rowsets}
                for rs in meta.rowsets + meta.stale_rowsets:
                    if rs[V.RID] not in keep and (tablet_id, rs[V.RID]) not in self._pending:
                        delete_rowset_chunks(batch, tablet_id, rs[V.RID])
                for rs in meta.stale_rowsets:
                    batch.delete(stale_key(tablet_id, rs))
                installed = [list(rs) for rs in rowsets]
                meta.replica_id, meta.db_id, meta.table_id = template.replica_id, template.db_id, template.table_id
                meta.partition_id, meta.schema_json = template.partition_id, template.schema_json
                meta.rowsets = installed
                meta.stale_rowsets = []
                meta.cumulative_point = installed[0][V.END] + 1 if installed and installed[0][V.START] == 0 else 2
                meta.version = 1
            if meta.rowsets:
                meta.version = max(meta.version, meta.rowsets[-1][V.END])
            meta.row_count = sum(rs[V.ROWS] for rs in meta.rowsets)
            meta.data_size = sum(rs[V.BYTES] for rs in meta.rowsets)
            for rs in installed:
                if self._pending.pop((tablet_id, rs[V.RID]), None) is not None:
                    batch.delete(pending_key(tablet_id, rs[V.RID]))
            self._tablets.save(meta, batch)
            self._store.db.write(batch, self._store.sync)
            return TabletMeta.decode(meta.encode())

    # ------------------------------------------------------------------ compaction
    def compaction_view(self, tablet_id: int) -> tuple[TabletMeta, object] | None:
        """A copy of the tablet's meta and a snapshot to read its rowsets through (None: gone)."""
        with self._lock:
            meta = self._tablets.get(tablet_id)
            if meta is None:
                return None
            return TabletMeta.decode(meta.encode()), self._store.db.snapshot()

    def swap_compacted(self, tablet_id: int, replica_id: int, inputs: list[list[int]], output: list[int],
                       cumulative_point: int, marker: bytes, now_ms: int) -> bool:
        """Replace ``inputs`` (consecutive live rowsets) by ``output``, whose chunks are written. The
        output may keep the id of a base rowset it extends (its new chunks follow the base's own).

        One batch through the WAL, like a publish (durable against a killed process): the meta with
        the output live and the inputs stale, and the in-progress marker deleted. Returns False - and the caller deletes the output - when the inputs are no
        longer live as they were (a clone replaced the replica, the tablet was dropped)."""
        with self._lock:
            meta = self._tablets.get(tablet_id)
            if meta is None or meta.replica_id != replica_id:
                return False
            ids = [rs[V.RID] for rs in meta.rowsets]
            want = [rs[V.RID] for rs in inputs]
            try:
                at = ids.index(want[0])
            except ValueError:
                return False
            if ids[at:at + len(want)] != want:
                return False
            meta.rowsets[at:at + len(want)] = [list(output)]
            replaced = [[*rs[:6], now_ms] for rs in inputs]
            meta.stale_rowsets.extend(replaced)
            meta.cumulative_point = cumulative_point
            meta.row_count = sum(rs[V.ROWS] for rs in meta.rowsets)
            meta.data_size = sum(rs[V.BYTES] for rs in meta.rowsets)
            batch = WriteBatch(raw_mode=True)
            for rs in replaced:
                batch.put(stale_key(tablet_id, rs), orjson.dumps(rs))
            self._tablets.save(meta, batch)
            batch.delete(marker)
            self._store.db.write(batch, self._store.wal)
            return True

    def sweep_stale(self, older_than_ms: int) -> int:
        """Delete stale rowsets replaced before ``older_than_ms``; returns how many went.

        Reads in flight hold a RocksDB snapshot, so deleting their chunks does not disturb them."""
        swept = 0
        with self._lock:
            batch = WriteBatch(raw_mode=True)
            for meta in self._tablets.all():
                if not any(rs[6] < older_than_ms for rs in meta.stale_rowsets):
                    continue
                live = {rs[V.RID] for rs in meta.rowsets}
                keep = []
                for rs in meta.stale_rowsets:
                    if rs[6] >= older_than_ms:
                        keep.append(rs)
                        continue
                    if rs[V.RID] not in live and (meta.tablet_id, rs[V.RID]) not in self._pending:
                        delete_rowset_chunks(batch, meta.tablet_id, rs[V.RID])
                    batch.delete(stale_key(meta.tablet_id, rs))
                    swept += 1
                meta.stale_rowsets = keep
            if swept:
                self._store.db.write(batch, self._store.wal)
        return swept


def read_chunks(snap, tablet_id: int, rowsets: list[list[int]]) -> Iterator[bytes]:
    """Every chunk (segment) of ``rowsets`` in order, read through the snapshot ``snap``."""
    for _rs, _i, payload in read_segments(snap, tablet_id, rowsets):
        yield payload


def read_segments(snap, tablet_id: int, rowsets: list[list[int]]) -> Iterator[tuple[list[int], int, bytes]]:
    """``(rowset, chunk index, segment)`` of every chunk of ``rowsets`` in order, through ``snap``."""
    for rs in rowsets:
        for i in range(rs[V.CHUNKS]):
            try:
                payload = snap[chunk_key(tablet_id, rs[V.RID], i)]
            except Exception:  # noqa: BLE001 - rocksdict's snapshot raises a bare Exception for a missing key
                raise StorageError(f"tablet {tablet_id}: chunk {i} of rowset {rs[V.RID]} "
                                   f"(versions {rs[V.START]}-{rs[V.END]}) is missing") from None
            yield rs, i, payload


def segment_table(tablet_id: int, rs: list[int], i: int, payload: bytes, schema: pa.Schema) -> pa.Table:
    """A segment as a table of the tablet's ``schema`` (common/columnar.read_table); a segment
    that does not fit the schema raises a StorageError naming it."""
    try:
        return read_table(payload, schema)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise StorageError(f"tablet {tablet_id}: chunk {i} of rowset {rs[V.RID]} (versions "
                           f"{rs[V.START]}-{rs[V.END]}) does not fit the tablet's schema "
                           f"{schema.names}: {type(exc).__name__}: {exc}") from None


def _crc_of_row_hashes(table: pa.Table, crc: int) -> int:
    """``crc`` continued over the 64-bit hashes of ``table``'s rows (little-endian, in row order)."""
    hashes = pl.from_arrow(table, rechunk=False).hash_rows(seed=CHECKSUM_SEED).to_arrow()
    for chunk in hashes.chunks if isinstance(hashes, pa.ChunkedArray) else [hashes]:
        data = memoryview(chunk.buffers()[1])[chunk.offset * 8:(chunk.offset + len(chunk)) * 8]
        crc = zlib.crc32(data, crc)
    return crc


def _row_checksum(segments: Iterator[list[tuple]]) -> tuple[str, int]:
    """CRC32 over rows in fixed blocks of :data:`CHECKSUM_BLOCK_ROWS` (marshal), and the count."""
    crc, rows, block = 0, 0, []
    for segment in segments:
        for row in segment:
            block.append(row)
            rows += 1
            if len(block) == CHECKSUM_BLOCK_ROWS:
                crc = zlib.crc32(marshal.dumps(block, 2), crc)
                block = []
    if block:
        crc = zlib.crc32(marshal.dumps(block, 2), crc)
    return f"{crc:08x}", rows
