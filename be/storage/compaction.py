"""Compaction of a BE's tablets: the driver of :mod:`be.storage.compaction_policy`.

Every ``cumulative_compaction_check_interval_seconds`` the scheduler (on the event loop, reading
only counts) picks the tablets with the most rowsets waiting and hands each to a bounded thread
pool: ``cumulative_compaction_num_threads_per_disk`` cumulative and
``base_compaction_num_threads_per_disk`` base compactions at once, one at a time per tablet.
Between those rounds it is event-driven, as StarRocks' event-based compaction framework: a publish
that leaves a tablet with enough rowsets to compact, or a compaction that ends, wakes it for that
tablet alone, so a tablet loaded many times a second never waits for the next round.

A compaction, in its thread:

1. copies the tablet's meta and takes a RocksDB snapshot (the rowset lock is held for the copy);
2. picks its inputs on the copy, writes an in-progress marker ``cmp/<tablet><rowset>`` with the
   first output chunks, merges the inputs' chunks (:func:`be.storage.merge.merge_chunks`) read
   through the snapshot into columnar segments of the tablet's schema (old marshal-row segments
   are converted: compaction brings an old replica to the new format), and writes the output
   chunks - no lock held;
3. swaps, in one RocksDB batch under the rowset lock: the output becomes live, the inputs stale,
   the marker goes (:meth:`RowsetStore.swap_compacted`). If the inputs changed meanwhile (a full
   clone, a drop), the output is deleted instead.

A SIGKILL before the swap leaves the old rowsets live and a marker: at start the output it names
is deleted. After the swap the new rowset is live and the inputs stale: never both live, never
neither. Stale rowsets serve reads and incremental clones at older versions until
``tablet_rowset_stale_sweep_time_sec``, then they are deleted (reads in flight hold a snapshot).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
from rocksdict import WriteBatch

from be.storage import versions as V
from be.storage.compaction_policy import (
    CompactionType,
    Pick,
    cumulative_score,
    pick_base,
    pick_cumulative,
    point_after,
)
from be.storage.merge import merge_chunks
from be.storage.rowsets import RowsetStore, chunk_key, delete_rowset_chunks, read_chunks
from be.storage.store import COMPACTION_MARKER_PREFIX, BeStore
from be.storage.tablets import CompactionStatus, TabletManager, TabletMeta
from common.columnar import is_columnar
from common.config import StorageConfig
from common.daemon import PeriodicDaemon

log = logging.getLogger(__name__)

WRITE_BATCH_BYTES = 4 * 1024 * 1024
SWEEP_INTERVAL_S = 5.0


def marker_key(tablet_id: int, rowset_id: int) -> bytes:
    return COMPACTION_MARKER_PREFIX + struct.pack(">QQ", tablet_id, rowset_id)


def new_rowset_id() -> int:
    """A compaction output's id: above every txn id (bit 62 set), random below, fits an int64."""
    return (1 << 62) | secrets.randbits(62)


@dataclass
class _TabletStatus:
    last_cumulative_ms: int = 0
    last_cumulative_result: str = ""
    last_base_ms: int = 0
    last_base_result: str = ""


@dataclass
class CompactionCounters:
    """Compactions run since this BE started; ``/metrics`` exports them under StarRocks' names
    (be/src/util/starrocks_metrics.cpp): engine_requests_total{type="cumulative_compaction" |
    "base_compaction", status="total" | "failed"} and compaction_deltas_total /
    compaction_bytes_total{type="cumulative" | "base"} (the rowsets and bytes merged by the
    compactions that succeeded)."""

    cumulative: int = 0
    """Cumulative compactions that succeeded (``base``: base ones; ``failures``: the failed ones
    of both kinds, which ``cumulative_failed`` and ``base_failed`` tell apart)."""
    base: int = 0
    failures: int = 0
    running: dict[int, CompactionType] = field(default_factory=dict)
    cumulative_failed: int = 0
    base_failed: int = 0
    cumulative_deltas: int = 0
    cumulative_bytes: int = 0
    base_deltas: int = 0
    base_bytes: int = 0


@dataclass(frozen=True)
class CompactionScores:
    """The largest compaction scores over a BE's tablets, as StarRocks' BE exports them: rowsets
    waiting above the cumulative point (tablet_cumulative_max_compaction_score), rowsets below it
    that a base compaction folds (tablet_base_max_compaction_score), and live rowsets of one
    tablet (max_tablet_rowset_num)."""

    cumulative: int = 0
    base: int = 0
    rowsets: int = 0


@dataclass(frozen=True)
class Outcome:
    tablet_id: int
    kind: CompactionType
    ok: bool
    message: str


def _all_columnar(snap, tablet_id: int, rowset: list[int]) -> bool:
    """Whether ``rowset``'s chunks are columnar segments, told by its first and last chunk (a
    rowset is written in one format, and extended in place only once its chunks are columnar)."""
    for i in sorted({0, rowset[V.CHUNKS] - 1}) if rowset[V.CHUNKS] else []:
        try:
            payload = snap[chunk_key(tablet_id, rowset[V.RID], i)]
        except Exception:  # noqa: BLE001 - rocksdict's snapshot raises a bare Exception for a missing key
            return False  # rewritten then, and read_chunks says which chunk is missing
        if not is_columnar(payload):
            return False
    return True


class CompactionManager:
    def __init__(self, store: BeStore, tablets: TabletManager, rowsets: RowsetStore, cfg: StorageConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._tablets = tablets
        self._rowsets = rowsets
        self._cfg = cfg
        self._clock = clock
        self._started_s = clock()
        self._status: dict[int, _TabletStatus] = {}
        self.counters = CompactionCounters()
        self._record_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=cfg.cumulative_compaction_num_threads_per_disk + cfg.base_compaction_num_threads_per_disk,
            thread_name_prefix="compaction")
        self._futures: set[asyncio.Future] = set()
        self._last_sweep_s = 0.0
        self._last_full_s = 0.0
        self._hot: set[int] = set()
        limit = cfg.compaction_write_limit_mb_per_sec * 1024 * 1024
        self._batch_bytes = int(min(WRITE_BATCH_BYTES, max(limit / 4, 64 * 1024))) if limit else WRITE_BATCH_BYTES
        self._daemon = PeriodicDaemon("compaction", lambda: cfg.cumulative_compaction_check_interval_seconds,
                                      self._round)
        self.recover()

    # ------------------------------------------------------------------ life cycle
    def recover(self) -> int:
        """Delete the outputs of compactions a kill interrupted before their swap."""
        batch = WriteBatch(raw_mode=True)
        n = 0
        for key, value in self._store.db.items(from_key=COMPACTION_MARKER_PREFIX):
            if not key.startswith(COMPACTION_MARKER_PREFIX):
                break
            tablet_id, rowset_id = struct.unpack(">QQ", key[len(COMPACTION_MARKER_PREFIX):])
            # a marker outlives only a compaction that never swapped: its output chunks go (those
            # after the base's own when it extended a base rowset)
            delete_rowset_chunks(batch, tablet_id, rowset_id, int.from_bytes(value or b"\0", "big"))
            batch.delete(key)
            n += 1
        if n:
            self._store.db.write(batch, self._store.sync)
            log.info("deleted the outputs of %d compactions interrupted before their swap", n)
        return n

    def start(self) -> None:
        self._daemon.start()

    async def close(self) -> None:
        await self._daemon.close()
        if self._futures:
            await asyncio.gather(*self._futures, return_exceptions=True)
        self._pool.shutdown(wait=True)

    # ------------------------------------------------------------------ status
    def status(self, tablet_id: int) -> CompactionStatus:
        meta = self._tablets.get(tablet_id)
        st = self._status.get(tablet_id) or _TabletStatus()
        return CompactionStatus(
            cumulative_point=meta.cumulative_point if meta else 0,
            last_cumulative_ms=st.last_cumulative_ms, last_cumulative_result=st.last_cumulative_result,
            last_base_ms=st.last_base_ms, last_base_result=st.last_base_result,
            stale_rowset_num=len(meta.stale_rowsets) if meta else 0)

    def scores(self) -> CompactionScores:
        """:class:`CompactionScores` now (reads only counts of the live metas, like the scheduler)."""
        cumulative = base = rowsets = 0
        for meta in self._tablets.all():
            live, point = list(meta.rowsets), meta.cumulative_point
            cumulative = max(cumulative, cumulative_score(live, point))
            base = max(base, sum(1 for rs in live if rs[V.END] < point))
            rowsets = max(rowsets, len(live))
        return CompactionScores(cumulative, base, rowsets)

    # ------------------------------------------------------------------ scheduling
    def notify(self, tablet_ids: list[int]) -> None:
        """Tablets just published a version (on the event loop): wake the scheduler for those that
        now hold enough rowsets above their cumulative point."""
        need = self._cfg.min_cumulative_compaction_num_singleton_deltas
        for tablet_id in tablet_ids:
            meta = self._tablets.get(tablet_id)
            if meta is not None and tablet_id not in self.counters.running and \
                    cumulative_score(list(meta.rowsets), meta.cumulative_point) >= need:
                self._hot.add(tablet_id)
        if self._hot:
            self._daemon.wake()

    async def _round(self) -> None:
        loop = asyncio.get_running_loop()
        now = self._clock()
        full = now - self._last_full_s >= self._cfg.cumulative_compaction_check_interval_seconds
        if full:
            self._last_full_s = now
            metas = self._tablets.all()
        else:
            metas = [m for m in map(self._tablets.get, self._hot) if m is not None]
        self._hot.clear()
        for kind, slots in ((CompactionType.CUMULATIVE, self._cfg.cumulative_compaction_num_threads_per_disk),
                            (CompactionType.BASE, self._cfg.base_compaction_num_threads_per_disk)):
            free = slots - sum(1 for k in self.counters.running.values() if k is kind)
            for tablet_id in self._candidates(metas, kind, free):
                self.counters.running[tablet_id] = kind
                fut = loop.run_in_executor(self._pool, self.compact, tablet_id, kind)
                self._futures.add(fut)
                fut.add_done_callback(functools.partial(self._done, tablet_id))
        if now - self._last_sweep_s >= min(SWEEP_INTERVAL_S, self._cfg.tablet_rowset_stale_sweep_time_sec or 1):
            self._last_sweep_s = now
            older_than_ms = int((now - self._cfg.tablet_rowset_stale_sweep_time_sec) * 1000)
            swept = await asyncio.to_thread(self._rowsets.sweep_stale, older_than_ms)
            if swept:
                log.info("deleted %d stale rowsets replaced more than %g s ago", swept,
                         self._cfg.tablet_rowset_stale_sweep_time_sec)

    def _candidates(self, metas: list[TabletMeta], kind: CompactionType, free: int) -> list[int]:
        """Up to ``free`` of ``metas`` that need a compaction of ``kind``, neediest first. Reads only
        counts of the live meta: the worker picks again on a consistent copy."""
        if free <= 0:
            return []
        scored = []
        now = self._clock()
        for meta in metas:
            if meta.tablet_id in self.counters.running:
                continue
            live = list(meta.rowsets)
            if kind is CompactionType.CUMULATIVE:
                if pick_cumulative(live, meta.cumulative_point, self._cfg) is not None:
                    scored.append((cumulative_score(live, meta.cumulative_point), meta.tablet_id))
            elif pick_base(live, meta.cumulative_point, self._cfg, self._since_base(meta.tablet_id, now)):
                scored.append((len(live), meta.tablet_id))
        scored.sort(reverse=True)
        return [tablet_id for _, tablet_id in scored[:free]]

    def _since_base(self, tablet_id: int, now: float) -> float:
        st = self._status.get(tablet_id)
        last = st.last_base_ms / 1000 if st and st.last_base_ms else self._started_s
        return now - last

    def _done(self, tablet_id: int, fut: asyncio.Future) -> None:
        self._futures.discard(fut)
        self.counters.running.pop(tablet_id, None)
        self._hot.add(tablet_id)  # loads went on meanwhile; and a slot is free for the next tablet
        self._daemon.wake()
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:  # compact() reports its own failures; this is a bug
            log.error("compaction worker failed: %s: %s", type(exc).__name__, exc)

    # ------------------------------------------------------------------ one compaction (a worker thread)
    def compact(self, tablet_id: int, kind: CompactionType) -> Outcome | None:
        """Run one compaction of ``kind`` on the tablet now, if its rowsets call for one."""
        started = time.monotonic()
        view = self._rowsets.compaction_view(tablet_id)
        if view is None:
            return None
        meta, snap = view
        if kind is CompactionType.CUMULATIVE:
            pick = pick_cumulative(meta.rowsets, meta.cumulative_point, self._cfg)
        else:
            pick = pick_base(meta.rowsets, meta.cumulative_point, self._cfg,
                             self._since_base(tablet_id, self._clock()))
        if pick is None:
            return None
        try:
            ok, message = self._merge_and_swap(meta.tablet_id, meta.replica_id, meta.cumulative_point,
                                               pick, snap, started, meta.arrow_schema)
        except Exception as exc:  # noqa: BLE001 - a failed compaction is reported, the tablet keeps its rowsets
            ok, message = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            log.warning("compaction: tablet %d %s versions %d-%d failed: %s", tablet_id, kind.value,
                        pick.start_version, pick.end_version, message)
        self._record(tablet_id, kind, ok, message, pick)
        return Outcome(tablet_id, kind, ok, message)

    def _merge_and_swap(self, tablet_id: int, replica_id: int, cumulative_point: int, pick: Pick, snap,
                        started: float, schema: pa.Schema | None = None) -> tuple[bool, str]:
        # A base compaction extends the base rowset [0-M] in place: a DUPLICATE KEY merge is a
        # concatenation, so the base's chunks stay as they are and the merged cumulative rowsets
        # are appended under its id. Readers of the old base (now a stale [0-M] entry with M's
        # chunk count) read the same chunks as before; the work is the new data, not the base.
        # ``schema``: the tablet's Arrow schema, None when it declares no columns (rows stay rows).
        # A base still in marshal rows (written before columnar segments) is rewritten instead,
        # once, under a new id: after that its chunks are columnar and it is extended in place.
        base = pick.inputs[0] if pick.kind is CompactionType.BASE and pick.inputs[0][V.START] == 0 else None
        if base is not None and schema is not None and not _all_columnar(snap, tablet_id, base):
            base = None
        rowset_id = base[V.RID] if base else new_rowset_id()
        first = base[V.CHUNKS] if base else 0
        marker = marker_key(tablet_id, rowset_id)
        db, wal = self._store.db, self._store.wal
        batch = WriteBatch(raw_mode=True)
        batch.put(marker, first.to_bytes(8, "big"))
        batch_bytes = written = 0
        n_chunks, rows, nbytes = (first, base[V.ROWS], base[V.BYTES]) if base else (0, 0, 0)
        try:
            for payload, n in merge_chunks(read_chunks(snap, tablet_id, pick.inputs[1:] if base else pick.inputs),
                                           schema):
                batch.put(chunk_key(tablet_id, rowset_id, n_chunks), payload)
                n_chunks += 1
                rows += n
                nbytes += len(payload)
                written += len(payload)
                batch_bytes += len(payload)
                if batch_bytes >= self._batch_bytes:
                    db.write(batch, wal)
                    batch, batch_bytes = WriteBatch(raw_mode=True), 0
                    self._throttle(written, started)
            db.write(batch, wal)
            self._throttle(written, started)  # the last batch counts too: small outputs are limited as well
            in_rows = sum(rs[V.ROWS] for rs in pick.inputs)
            if rows != in_rows:
                raise RuntimeError(f"merged {rows} rows from inputs that hold {in_rows}")
            output = [pick.start_version, pick.end_version, rowset_id, rows, nbytes, n_chunks]
            swapped = self._rowsets.swap_compacted(tablet_id, replica_id, pick.inputs, output,
                                                   point_after(pick, cumulative_point), marker,
                                                   int(self._clock() * 1000))
        except BaseException:
            self._discard(tablet_id, rowset_id, first, marker)
            raise
        if not swapped:
            self._discard(tablet_id, rowset_id, first, marker)
            return False, "the replica's rowsets changed meanwhile (clone or drop); output discarded"
        elapsed = time.monotonic() - started
        in_bytes = sum(rs[V.BYTES] for rs in pick.inputs)
        log.info("compaction: tablet %d %s versions %d-%d (%d rowsets, %d bytes) -> rowset %d: %d rows, "
                 "%d bytes, %d chunks in %.3f s (%d bytes written)", tablet_id, pick.kind.value,
                 pick.start_version, pick.end_version, len(pick.inputs), in_bytes, rowset_id, rows, nbytes,
                 n_chunks, elapsed, written)
        return True, (f"OK: versions {pick.start_version}-{pick.end_version}, {len(pick.inputs)} rowsets, "
                      f"{rows} rows, {nbytes} bytes, {elapsed * 1000:.0f} ms")

    def _throttle(self, written: int, started: float) -> None:
        """Sleep (this worker thread, never the event loop) until ``written`` bytes are within the
        configured write rate."""
        limit = self._cfg.compaction_write_limit_mb_per_sec * 1024 * 1024
        if limit > 0:
            ahead = written / limit - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    def _discard(self, tablet_id: int, rowset_id: int, first_chunk: int, marker: bytes) -> None:
        batch = WriteBatch(raw_mode=True)
        delete_rowset_chunks(batch, tablet_id, rowset_id, first_chunk)
        batch.delete(marker)
        self._store.db.write(batch, self._store.wal)

    def _record(self, tablet_id: int, kind: CompactionType, ok: bool, message: str, pick: Pick) -> None:
        with self._record_lock:
            self._record_locked(tablet_id, kind, ok, message)
            c = self.counters
            deltas, nbytes = len(pick.inputs), sum(rs[V.BYTES] for rs in pick.inputs)
            if kind is CompactionType.CUMULATIVE:
                if ok:
                    c.cumulative_deltas, c.cumulative_bytes = c.cumulative_deltas + deltas, c.cumulative_bytes + nbytes
                else:
                    c.cumulative_failed += 1
            elif ok:
                c.base_deltas, c.base_bytes = c.base_deltas + deltas, c.base_bytes + nbytes
            else:
                c.base_failed += 1

    def _record_locked(self, tablet_id: int, kind: CompactionType, ok: bool, message: str) -> None:
        st = self._status.setdefault(tablet_id, _TabletStatus())
        now_ms = int(self._clock() * 1000)
        result = message if ok else f"FAILED: {message}"
        if kind is CompactionType.CUMULATIVE:
            st.last_cumulative_ms, st.last_cumulative_result = now_ms, result
        else:
            st.last_base_ms, st.last_base_result = now_ms, result
        if not ok:
            self.counters.failures += 1
        elif kind is CompactionType.CUMULATIVE:
            self.counters.cumulative += 1
        else:
            self.counters.base += 1

