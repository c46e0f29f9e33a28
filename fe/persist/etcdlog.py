"""The journal in etcd (``--journal etcd``): records in etcd, fenced on leadership; images local.

The same store surface as the RocksDB edit log (:class:`fe.persist.journal.LogStore`), so the
journal, its group commit and its checkpoints do not change:

- :meth:`EtcdEditLog.write` runs in the group-commit writer thread (fe/persist/groupcommit.py).
  A group goes to etcd as one transaction (or a few, when it exceeds :data:`MAX_TXN_OPS` puts or
  :data:`MAX_TXN_BYTES`), run on the FE's event loop; the writer thread waits for it. Each
  transaction compares the leader key's create revision with the one this FE got when it won the
  election (its fencing token) and checks that the first record's key is still free. A leader
  whose lease expired - the key was deleted, or another FE created it again - fails the compare
  and writes nothing: :class:`LeadershipLost`, fatal for the journal (the FE steps down, see
  fe/ha/etcd.py). The same error comes without asking etcd once the lease has run out on this
  FE's own clock (a leader SIGSTOPped past its lease never sends one more record).
- Transient etcd errors (a member down, a leader election inside etcd) are retried until the
  lease runs out; a transaction whose answer was lost and that went through is recognised on the
  retry (the first key holds our bytes) and not written twice.
- Images stay local, in the meta dir (:class:`fe.persist.editlog.ImageDir`): the newest whole
  ``image.<seq>`` file is the image; records after it come from etcd.
- Followers read records with :meth:`read_after`, which also reads ``journal_compacted`` at the
  same revision (fe/ha/tail.py watches them, and tells an FE whose position is below the mark that
  it is behind the compaction, even when no record is left at all); the leader deletes records
  every FE has folded into an image with :meth:`compact_through` (the mark only grows).

Keys: see fe/persist/etcdclient.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aetcd import rpc

from fe.persist.editlog import ImageDir, Loaded, Record
from fe.persist.etcdclient import (
    EtcdLayout,
    EtcdSession,
    compare_create,
    compare_mod,
    is_transient,
    op_delete,
    op_get,
    op_put,
    prefix_end,
)

log = logging.getLogger(__name__)

MAX_TXN_OPS = 120  # etcd's --max-txn-ops defaults to 128
MAX_TXN_BYTES = 1 << 20  # etcd's --max-request-bytes defaults to 1.5 MiB
MAX_GROUP_RECORDS = 1000  # a group-commit group: at most a few transactions
READ_BATCH = 1000  # records per range read


class LeadershipLost(RuntimeError):
    """This FE wrote (or tried to write) the journal without holding the leadership."""


class JournalConflict(RuntimeError):
    """A journal key this leader was about to write holds other bytes: two writers (a bug)."""


@dataclass(frozen=True)
class Fence:
    """The leadership a write must still hold: the leader key's create revision, and until when
    (``time.monotonic``) this FE's lease surely holds."""

    revision: int
    deadline: Callable[[], float]


@dataclass(frozen=True)
class JournalPage:
    """One range read of the journal: the records, the etcd revision read at, whether more
    follow, and ``journal_compacted`` at that revision (records up to it are gone)."""

    records: list[Record]
    revision: int
    more: bool
    compacted: int


def decode(layout: EtcdLayout, key: bytes, value: bytes) -> Record:
    rec = orjson.loads(value)
    return Record(layout.journal_seq(key), rec["op"], rec["data"])


class EtcdEditLog:
    """Journal records in etcd, images in ``meta_dir``."""

    def __init__(self, meta_dir: str, session: EtcdSession, layout: EtcdLayout,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self._images = ImageDir(meta_dir)
        self._session = session
        self.layout = layout
        self._mono = mono
        self._next_seq = 1
        self._fence: Fence | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.image_seq = 0
        self.txns = 0  # etcd transactions written

    # ------------------------------------------------------------------ set-up
    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Writes run on ``loop`` (the FE's loop, where the etcd channel lives)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def fence(self, fence: Fence | None) -> None:
        """Writes compare this leadership from now on (None: no write is allowed)."""
        self._fence = fence

    def load(self) -> Loaded:
        """The newest local image; the records after it are read from etcd by the FE."""
        newest = self._images.newest()
        if newest is None:
            self._next_seq = 1
            return Loaded(None, 0, [])
        name, seq = newest
        state = self._images.read(name, seq)
        self.image_seq = seq
        self._next_seq = seq + 1
        return Loaded(state, seq, [])

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def advance(self, seq: int) -> None:
        """A follower applied the leader's record ``seq``."""
        if seq != self._next_seq:
            raise ValueError(f"journal record {seq} applied after record {self._next_seq - 1}")
        self._next_seq = seq + 1

    def prepare(self, op: str, data: dict[str, Any]) -> tuple[int, bytes]:
        payload = orjson.dumps({"op": op, "data": data})
        seq = self._next_seq
        self._next_seq = seq + 1
        return seq, payload

    # ------------------------------------------------------------------ writing
    def write(self, records: list[tuple[int, bytes]]) -> None:
        """Write a group (writer thread): runs :meth:`write_async` on the FE's loop and waits."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise RuntimeError("the etcd journal is not bound to a running event loop (bind() it in the FE)")
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("the etcd journal cannot write from its own event loop thread "
                               "(journal.log needs a running loop: records go through the writer thread)")
        future = asyncio.run_coroutine_threadsafe(self.write_async(records), loop)
        try:
            future.result()
        except concurrent.futures.CancelledError:
            raise LeadershipLost("the FE's event loop stopped while journal records were being written") from None

    async def write_async(self, records: list[tuple[int, bytes]]) -> None:
        chunk: list[tuple[int, bytes]] = []
        size = 0
        for seq, payload in records:
            if chunk and (len(chunk) >= MAX_TXN_OPS or size + len(payload) > MAX_TXN_BYTES):
                await self._write_chunk(chunk)
                chunk, size = [], 0
            chunk.append((seq, payload))
            size += len(payload)
        if chunk:
            await self._write_chunk(chunk)

    async def _write_chunk(self, chunk: list[tuple[int, bytes]]) -> None:
        fence = self._fence
        first, last = chunk[0][0], chunk[-1][0]
        if fence is None:
            raise LeadershipLost(f"journal records {first}..{last}: this FE is not the leader, it writes no record")
        lay = self.layout
        request = rpc.TxnRequest(
            compare=[compare_create(lay.leader_key, fence.revision), compare_create(lay.journal_key(first), 0)],
            success=[op_put(lay.journal_key(seq), payload) for seq, payload in chunk],
            failure=[op_get(lay.leader_key), op_get(lay.journal_key(first))],
        )
        resp = await self._fenced_call(fence, request, f"journal records {first}..{last}")
        if resp.succeeded:
            self.txns += 1
            return
        leader = resp.responses[0].response_range.kvs
        if not leader or leader[0].create_revision != fence.revision:
            raise LeadershipLost(
                f"journal records {first}..{last} refused by fencing: the leader key "
                f"{'is gone' if not leader else 'belongs to another leader now'} (this FE led at revision "
                f"{fence.revision}); not one record was written")
        existing = resp.responses[1].response_range.kvs
        if existing and existing[0].value == chunk[0][1]:
            log.info("journal records %d..%d were written by an earlier try whose answer was lost", first, last)
            return
        raise JournalConflict(f"journal record {first} exists in etcd with other bytes: another writer "
                              "wrote this seq while this FE led")

    async def _fenced_call(self, fence: Fence, request: rpc.TxnRequest, what: str) -> rpc.TxnResponse:
        delay = 0.05
        while True:
            remaining = fence.deadline() - self._mono()
            if remaining <= 0:
                raise LeadershipLost(f"{what}: the leader lease ran out on this FE's clock; not one more "
                                     "record is written (fencing)")
            try:
                return await self._session.txn(request, timeout_s=min(remaining, self._session.timeout_s))
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("%s: etcd unavailable (%s); retrying while the lease holds (%.1f s)",
                            what, exc, remaining)
                await asyncio.sleep(min(delay, max(remaining, 0.01)))
                delay = min(delay * 2, 0.5)

    async def compact_through(self, seq: int) -> int:
        """Delete the records up to ``seq`` (fenced, leader only); returns how many went.

        ``journal_compacted`` only grows: a ``seq`` at or below it deletes nothing (a new leader
        whose floor is lower, because an FE came back with an older image, must not lower the mark
        an FE compares its position with). The transaction compares the mark as read, so a try
        etcd applies late (its answer was lost) never lowers it either."""
        fence = self._fence
        if fence is None:
            raise LeadershipLost(f"compacting the journal through {seq}: this FE is not the leader")
        lay = self.layout
        mark = (await self._session.range(lay.compacted_key)).kvs
        if mark and seq <= int(mark[0].value):
            return 0
        request = rpc.TxnRequest(
            # the mark as read: a try whose answer was lost and that etcd applies later, after a
            # newer compaction, changes nothing
            compare=[compare_create(lay.leader_key, fence.revision),
                     compare_mod(lay.compacted_key, mark[0].mod_revision if mark else 0)],
            success=[op_delete(lay.journal_key(0), lay.journal_key(seq + 1)),
                     op_put(lay.compacted_key, str(seq).encode())],
            failure=[op_get(lay.leader_key)],
        )
        resp = await self._fenced_call(fence, request, f"compacting the journal through {seq}")
        if not resp.succeeded:
            leader = resp.responses[0].response_range.kvs
            if not leader or leader[0].create_revision != fence.revision:
                raise LeadershipLost(f"compacting the journal through {seq} refused by fencing")
            log.info("journal compaction through %d: the mark moved meanwhile (an earlier try went through)", seq)
            return 0
        deleted = resp.responses[0].response_delete_range.deleted
        log.info("journal compacted through seq %d (%d records deleted from etcd)", seq, deleted)
        return deleted

    # ------------------------------------------------------------------ reading
    async def read_after(self, seq: int, limit: int = READ_BATCH) -> JournalPage:
        """Records after ``seq`` (at most ``limit``) and, at the same revision, the compaction mark."""
        lay = self.layout
        resp = await self._session.txn(rpc.TxnRequest(success=[
            rpc.RequestOp(request_range=rpc.RangeRequest(
                key=lay.journal_key(seq + 1), range_end=prefix_end(lay.journal_prefix), limit=limit,
                sort_order=rpc.RangeRequest.ASCEND, sort_target=rpc.RangeRequest.KEY)),
            op_get(lay.compacted_key),
        ]))
        page, mark = resp.responses[0].response_range, resp.responses[1].response_range
        return JournalPage([decode(lay, kv.key, kv.value) for kv in page.kvs], resp.header.revision, page.more,
                           int(mark.kvs[0].value) if mark.kvs else 0)

    async def compacted_through(self) -> int:
        resp = await self._session.range(self.layout.compacted_key)
        return int(resp.kvs[0].value) if resp.kvs else 0

    # ------------------------------------------------------------------ images
    def checkpoint(self, state: dict[str, Any], seq: int) -> int:
        """Write the local image of ``seq`` (records stay in etcd until every FE's image covers
        them: the leader compacts)."""
        name, size = self._images.write(state, seq)
        self._images.drop_all_but(name)
        self.image_seq = seq
        log.info("checkpoint: image at seq %d written (%d bytes)", seq, size)
        return size

    def close(self) -> None:
        self._fence = None
