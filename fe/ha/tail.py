"""A follower's tail of the journal in etcd: range reads to catch up, then a watch.

The follower applies each record through ``apply`` (``Journal.apply_replicated``: the same apply
functions replay uses) strictly in seq order. A watch that breaks, lags behind etcd's history
compaction or shows a gap falls back to range reads from the follower's own position, so the
watch is only ever a shortcut.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from aetcd import rpc

from fe.persist.editlog import Record
from fe.persist.etcdclient import EtcdSession, is_transient, prefix_end
from fe.persist.etcdlog import EtcdEditLog, decode

log = logging.getLogger(__name__)

_PUT = 0  # mvccpb.Event.EventType.PUT


class JournalBehindCompaction(RuntimeError):
    """This FE's image is older than the oldest record left in etcd: it cannot catch up alone."""


class JournalTail:
    def __init__(self, store: EtcdEditLog, session: EtcdSession, apply: Callable[[list[Record]], None],
                 position: Callable[[], int]) -> None:
        self._store = store
        self._session = session
        self._apply = apply
        self._position = position
        self.watch_records = 0  # records that came through the watch (not range reads)

    async def catch_up(self) -> int:
        """Read and apply every record after this FE's position; the etcd revision read at.

        The compaction mark is read with every page: an FE whose position is below it misses
        records, even when none is left after it (every image covered the last record, and the
        journal in etcd is empty); "nothing after my position" is not "caught up" then."""
        while True:
            position = self._position()
            page = await self._store.read_after(position)
            if page.compacted > position:
                raise JournalBehindCompaction(
                    f"this FE replayed up to journal seq {position} (its image and records), but etcd's "
                    f"journal was compacted through seq {page.compacted}: copy the newest image file "
                    f"(image/image.<seq>) from another FE's meta dir into this FE's meta dir and restart it")
            records = page.records
            if records and records[0].seq != position + 1:
                raise RuntimeError(f"journal in etcd has a hole: seq {position + 1} is missing before "
                                   f"{records[0].seq}")
            self._apply(records)
            if not page.more:
                return page.revision

    async def run(self) -> None:
        """Catch up, then follow the watch; until cancelled, or :class:`JournalBehindCompaction`
        (the FE cannot follow any more)."""
        backoff = 0.1
        while True:
            try:
                revision = await self.catch_up()
                await self._follow(revision + 1)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except JournalBehindCompaction:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; the tail goes on from its position
                if is_transient(exc):
                    log.info("journal tail: etcd unavailable (%s); retrying from seq %d", exc, self._position())
                else:
                    log.exception("journal tail failed at seq %d; retrying with range reads", self._position())
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def _follow(self, start_revision: int) -> None:
        """Apply the records the watch brings; returns when it must fall back to a range read."""
        prefix = self._store.layout.journal_prefix
        stop = asyncio.Event()

        async def requests() -> AsyncIterator[rpc.WatchRequest]:
            yield rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                key=prefix, range_end=prefix_end(prefix), start_revision=start_revision))
            await stop.wait()

        responses = self._session.watch(requests())
        try:
            async for resp in responses:
                if resp.compact_revision or resp.canceled:
                    log.info("journal watch ended (compacted below revision %d%s); range reads take over",
                             resp.compact_revision, f": {resp.cancel_reason}" if resp.cancel_reason else "")
                    return
                records = sorted((decode(self._store.layout, ev.kv.key, ev.kv.value)
                                  for ev in resp.events if ev.type == _PUT), key=lambda r: r.seq)
                position = self._position()
                records = [r for r in records if r.seq > position]
                if not records:
                    continue
                if any(r.seq != position + 1 + i for i, r in enumerate(records)):
                    log.info("journal watch skipped past seq %d (got %d); range reads take over",
                             position + 1, records[0].seq)
                    return
                self._apply(records)
                self.watch_records += len(records)
        finally:
            stop.set()
            await responses.aclose()  # cancels the stream
