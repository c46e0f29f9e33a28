"""The journal: the one way FE metadata changes.

A domain (backends, catalog, txns, jobs, config) never mutates its persistent state directly.
It calls ``journal.log(op, data)``: the record gets its seq and is applied to memory at once,
through the same ``apply`` that replay uses, so a domain may check and log with no ``await`` in
between. The live path and replay therefore run the same code and reach the same state; unit
tests check it anyway.

Durability is apart (fe/persist/groupcommit.py): on an event loop, the record is queued for the
writer thread, which writes queued records in groups, one sync each, off the loop. Nothing may
leave the FE before the records it may depend on are durable: ``await journal.durable()`` waits
for every record logged so far, and the interceptors of fe/persist/durability.py await it before
every answer the FE gives and every call it makes. Without a running loop (tools, synchronous
tests) ``log`` writes in place, synced, before it applies. A failed write is fatal
(``on_fatal``; the FE exits).

Two stores sit under one journal (:class:`LogStore`): the local RocksDB edit log
(fe/persist/editlog.py, the default: one FE) and the etcd journal (fe/persist/etcdlog.py, FE high
availability: ``make cluster FES=3``). With the etcd store only the leader logs: a follower's
journal is read-only (``log`` raises :class:`JournalReadOnly`) and takes the leader's records
through :meth:`Journal.apply_replicated`, the same ``_apply`` replay uses, so its memory equals
the leader's at its replayed seq.

Ops are named ``<domain>.<verb>``; each domain keeps its own small table of verbs, so there is
no central switch over op codes.

Every ``edit_log_roll_num`` records an image is written. On an event loop, only the snapshot
(every domain's ``dump()``, taken at one sequence number between two records) runs on the loop;
encoding and writing it run in a worker thread, one checkpoint at a time, while records go on
being appended. The image at seq N is written once records up to N are durable. Without a
running loop (tools, synchronous tests) the image is written in place.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from common.errors import Unavailable
from fe.persist.editlog import Loaded, Record, release
from fe.persist.groupcommit import MAX_GROUP_RECORDS, GroupCommitWriter, exit_process

log = logging.getLogger(__name__)


class Domain(Protocol):
    """What a journaled domain provides.

    ``dump()`` builds fresh containers: the image is encoded from it in another thread after
    the loop has moved on, so it must share no list or dict that a later ``apply`` changes in
    place (sharing one that applies only ever replace is fine).
    """

    def apply(self, verb: str, data: dict[str, Any]) -> Any: ...

    def dump(self) -> dict[str, Any]: ...

    def load(self, state: dict[str, Any]) -> None: ...


class LogStore(Protocol):
    """Where records and images go: :class:`fe.persist.editlog.EditLog` (RocksDB, local) or
    :class:`fe.persist.etcdlog.EtcdEditLog` (etcd, fenced on leadership)."""

    def load(self) -> Loaded: ...

    @property
    def last_seq(self) -> int: ...

    def prepare(self, op: str, data: dict[str, Any]) -> tuple[int, bytes]: ...

    def write(self, records: list[tuple[int, bytes]]) -> None: ...

    def checkpoint(self, state: dict[str, Any], seq: int) -> int: ...

    def close(self) -> None: ...


class JournalReadOnly(Unavailable):
    """A record was logged on an FE that is not the leader (a follower only replays)."""


@dataclass(frozen=True)
class CheckpointStats:
    """The last checkpoint: its seq, the time the loop spent on the snapshot, the time the
    worker spent encoding and writing, and the image size."""

    seq: int
    snapshot_ms: float
    write_ms: float
    image_bytes: int


@dataclass
class JournalCounters:
    """StarRocks' edit log counters (MetricRepo COUNTER_EDIT_LOG_WRITE, _READ, _SIZE_BYTES,
    COUNTER_IMAGE_WRITE) since this FE started: ``/metrics`` exports them as
    starrocks_fe_edit_log_write, starrocks_fe_edit_log_read, starrocks_fe_edit_log_size_bytes and
    starrocks_fe_image_write."""

    write: int = 0
    """Records this FE logged (the leader's writes)."""
    write_bytes: int = 0
    """Their encoded size."""
    read: int = 0
    """Records applied from the store: replayed at start, or a follower's tail of the leader's."""
    image_write: int = 0
    """Images (checkpoints) written."""


class Journal:
    def __init__(self, editlog: LogStore, checkpoint_every: Callable[[], int] = lambda: 1000,
                 on_fatal: Callable[[BaseException], None] = exit_process, *, writable: bool = True,
                 max_group_records: int = MAX_GROUP_RECORDS) -> None:
        self._editlog = editlog
        self._writer = GroupCommitWriter(editlog.write, on_fatal, max_group_records)
        self._writable = writable
        self._domains: dict[str, Domain] = {}
        self._since_checkpoint = 0
        self._checkpoint_every = checkpoint_every
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._inflight: concurrent.futures.Future | None = None
        self.last_checkpoint: CheckpointStats | None = None
        self.replayed = 0
        self.counters = JournalCounters()
        self.image_seq = 0
        """The seq of the newest image (loaded at start or written since): records after it are
        what a restart replays (starrocks_fe_meta_log_count)."""
        self.replaying = False  # domains skip live-only side effects (notifications) while True

    def register(self, name: str, domain: Domain) -> None:
        if name in self._domains:
            raise ValueError(f"domain {name!r} registered twice")
        self._domains[name] = domain

    def replay(self) -> None:
        """Load the image into every domain and apply the records after it."""
        loaded = self._editlog.load()
        self.replaying = True
        try:
            if loaded.image_state is not None:
                for name, domain in self._domains.items():
                    if name in loaded.image_state:
                        domain.load(loaded.image_state[name])
            for rec in loaded.tail:
                self._apply(rec.op, rec.data)
        finally:
            self.replaying = False
        self._writer.start_at(self._editlog.last_seq)
        self.replayed = len(loaded.tail)
        self.counters.read += len(loaded.tail)
        self.image_seq = loaded.image_seq
        self._since_checkpoint = len(loaded.tail)
        log.info("replayed image at seq %d and %d records", loaded.image_seq, len(loaded.tail))

    def log(self, op: str, data: dict[str, Any]) -> Any:
        """Journal one change and apply it; returns what the domain's apply returns. On an event
        loop the record is durable once :meth:`durable` returns; without one, already."""
        if not self._writable:
            raise JournalReadOnly(
                f"this FE is not the leader: only the leader writes the journal (op {op!r}); send "
                "writes to the leader FE (ShowFrontends shows it)")
        self._writer.check()
        seq, payload = self._editlog.prepare(op, data)
        self.counters.write += 1
        self.counters.write_bytes += len(payload)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._writer.write_through(seq, payload)
        else:
            self._writer.submit(seq, payload)
        result = self._apply(op, data)
        self._since_checkpoint += 1
        every = self._checkpoint_every()
        if every > 0 and self._since_checkpoint >= every and not self.checkpoint_running:
            self._start_checkpoint()
        return result

    @property
    def writable(self) -> bool:
        """False on a follower: it replays the leader's records and logs none of its own."""
        return self._writable

    def set_writable(self, writable: bool) -> None:
        """The FE became the leader (True; its journal continues after :attr:`last_seq`), or
        is a follower (False)."""
        self._writable = writable

    @property
    def last_seq(self) -> int:
        """The last seq applied to memory (logged here or replicated from the leader)."""
        return self._editlog.last_seq

    def apply_replicated(self, records: list[Record]) -> None:
        """A follower applies records the leader wrote, in seq order, through the same apply
        replay uses (no live-only side effects). They are durable already: they came from the
        store."""
        if self._writable:
            raise RuntimeError("apply_replicated on a writable journal: the leader writes its own records")
        advance = self._editlog.advance  # type: ignore[attr-defined]  # stores that replicate have it
        if not records:
            return
        self.replaying = True
        try:
            for rec in records:
                expected = self._editlog.last_seq + 1
                if rec.seq != expected:
                    raise ValueError(f"replicated journal record {rec.seq} out of order: expected {expected}")
                self._apply(rec.op, rec.data)
                advance(rec.seq)
                self.counters.read += 1
        finally:
            self.replaying = False
        self._writer.start_at(self._editlog.last_seq)
        self._since_checkpoint += len(records)
        every = self._checkpoint_every()
        if every > 0 and self._since_checkpoint >= every and not self.checkpoint_running:
            self._start_checkpoint()

    async def durable(self) -> None:
        """Wait, off the loop, until every record logged so far is synced."""
        await self._writer.wait(self._editlog.last_seq)

    @property
    def durable_seq(self) -> int:
        return self._writer.durable_seq

    @property
    def write_groups(self) -> int:
        """Batches written so far, one sync each (group commit: fewer than records)."""
        return self._writer.groups

    @property
    def checkpoint_running(self) -> bool:
        return self._inflight is not None and not self._inflight.done()

    def _start_checkpoint(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.checkpoint()  # no event loop to keep free
            return
        gc_was_on = gc.isenabled()
        gc.disable()  # until the snapshot is freed: see _write
        try:
            seq, state, snapshot_ms = self._snapshot()
            if self._worker is None:
                self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                                     thread_name_prefix="fe-checkpoint")
            self._inflight = self._worker.submit(self._write, [state], seq, snapshot_ms, gc_was_on, True)
        except BaseException:
            if gc_was_on:
                gc.enable()
            raise

    def _snapshot(self) -> tuple[int, dict[str, Any], float]:
        """Every domain's state at the last appended seq."""
        started = time.perf_counter()
        state = self.dump()
        self._since_checkpoint = 0
        return self._editlog.last_seq, state, (time.perf_counter() - started) * 1000

    def _write(self, holder: list[dict[str, Any]], seq: int, snapshot_ms: float, gc_was_on: bool,
               in_worker: bool) -> None:
        """Encode and write the image, then free the snapshot piece by piece (``holder`` is its
        only reference). The cyclic GC stays off from the snapshot to here: the snapshot's
        million acyclic containers would otherwise be traced, with the GIL held, by collections
        on the loop."""
        started = time.perf_counter()
        try:
            self._writer.wait_blocking(seq)  # the image never runs ahead of the log it replaces
            size = self._editlog.checkpoint(holder[0], seq)
        except Exception:
            log.exception("checkpoint at seq %d failed; the records stay in the log and the next "
                          "checkpoint tries again", seq)
            raise
        finally:
            release(holder.pop())
            if gc_was_on:
                gc.enable()
        write_ms = (time.perf_counter() - started) * 1000
        self.last_checkpoint = CheckpointStats(seq, snapshot_ms, write_ms, size)
        self.counters.image_write += 1
        self.image_seq = max(self.image_seq, seq)
        if in_worker:
            log.info("checkpoint at seq %d: snapshot %.0f ms on the event loop, encode+write %.0f ms in a "
                     "worker (%d bytes)", seq, snapshot_ms, write_ms, size)
        else:
            log.info("checkpoint at seq %d: snapshot %.0f ms, encode+write %.0f ms, in place (%d bytes)",
                     seq, snapshot_ms, write_ms, size)

    def checkpoint(self) -> None:
        """Write an image now, in this thread (after any checkpoint in flight)."""
        self._wait_inflight()
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            seq, state, snapshot_ms = self._snapshot()
        except BaseException:
            if gc_was_on:
                gc.enable()
            raise
        self._write([state], seq, snapshot_ms, gc_was_on, False)

    async def drain(self) -> None:
        """Wait, without blocking the loop, until every record is durable and the checkpoint in
        flight (if any) is done. A failed checkpoint was logged by the worker and changes
        nothing: the log still holds every record."""
        await self.durable()
        if self._inflight is not None:
            done = asyncio.wrap_future(self._inflight)
            await asyncio.wait([done])
            done.exception()  # retrieved: logged already

    def _wait_inflight(self) -> None:
        if self._inflight is not None:
            concurrent.futures.wait([self._inflight])
            self._inflight = None

    def dump(self) -> dict[str, Any]:
        return {name: domain.dump() for name, domain in self._domains.items()}

    def _apply(self, op: str, data: dict[str, Any]) -> Any:
        name, _, verb = op.partition(".")
        domain = self._domains.get(name)
        if domain is None:
            raise ValueError(f"edit log record for unknown domain {name!r} (op {op!r})")
        return domain.apply(verb, data)

    def close(self) -> None:
        """Write every queued record, finish the checkpoint in flight, close the edit log."""
        self._wait_inflight()
        self._writer.close()
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        self._editlog.close()
