"""The publish daemon: COMMITTED transactions to VISIBLE, strictly in version order per partition.

A commit wakes the daemon at once (fe/node.py); the interval is only the retry period. Each round
takes the committed txns whose versions follow each other without a gap from the visible version
of every partition they touch (a chain: eight concurrent loads into one partition committed
versions 5..12, all eight go), sends one PublishVersion per BE carrying all their tablets in
version order (StarRocks' batch publish: a BE applies them in that order), and marks a txn
VISIBLE once every tablet has a quorum of replicas at the version: the quorum its commit
counted and recorded, not the table's current one (an ALTER of write_quorum in between would
otherwise hold the partition's versions back for good). Replicas that answer with a gap or do
not answer lag behind (lastFailedVersion) until a clone catches them up. A txn that cannot reach
quorum stays COMMITTED and is tried again next round.

A round looks at the running txns only (the manager keeps finished ones apart), so its cost
follows the loads in flight, not the history kept for labels.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from common.debug import FE_TXN_PUBLISH_BEFORE_SEND, DebugPoints
from common.gen.tabletsim.v1 import backend_pb2
from fe.catalog.catalog import Catalog
from fe.system.backends import BackendRegistry
from fe.system.be_client import BackendClients
from fe.txn.manager import TransactionManager
from fe.txn.state import TransactionState, TxnStatus

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 10.0
MAX_BATCH_TXNS = 256
"""Txns one round publishes at most (one PublishVersion per BE carries all of them)."""


class Publisher:
    def __init__(self, txns: TransactionManager, catalog: Catalog, backends: BackendRegistry,
                 clients: BackendClients, *, debug: DebugPoints | None = None) -> None:
        self._debug = debug or DebugPoints.disabled()
        self._txns = txns
        self._catalog = catalog
        self._backends = backends
        self._clients = clients
        self._waiting_logged: set[int] = set()

    def ready(self) -> list[TransactionState]:
        """Committed txns that are next in line on every partition they touch.

        Per partition, the committed txn with the lowest version is the head; a txn is ready when
        it is the head of each of its partitions and each partition is visible at version - 1.
        """
        committed = self._txns.with_status(TxnStatus.COMMITTED)
        head: dict[int, tuple[int, int]] = {}  # partition -> (version, txn_id)
        for txn in committed:
            for partition_id, version in txn.partition_versions.items():
                if partition_id not in head or version < head[partition_id][0]:
                    head[partition_id] = (version, txn.txn_id)
        out = []
        for txn in committed:
            ok = True
            for partition_id, version in txn.partition_versions.items():
                partition = self._txns.partition_of(txn, partition_id)
                if head[partition_id][1] != txn.txn_id or (
                        partition is not None and partition.visible_version != version - 1):
                    ok = False
            if ok:
                out.append(txn)
        return out

    def ready_chain(self, limit: int = MAX_BATCH_TXNS) -> list[TransactionState]:
        """Committed txns that can publish now, in the order they must: :meth:`ready`'s txns, then
        each txn whose versions follow those of the txns before it on every partition it touches.

        Looks at the committed txns only, as :meth:`ready` does; at most ``limit`` txns. A txn that
        loaded nothing (every row filtered or unselected) touches no partition: it has no version
        to wait for and leads the chain, as StarRocks finishes a txn with no tablets at once."""
        committed = self._txns.with_status(TxnStatus.COMMITTED)
        empty = [txn for txn in committed if not txn.partition_versions][:limit]
        if empty:
            return empty
        queues: dict[int, list[tuple[int, int]]] = {}  # partition -> [(version, txn_id)], ascending
        by_id = {txn.txn_id: txn for txn in committed}
        for txn in committed:
            for partition_id, version in txn.partition_versions.items():
                queues.setdefault(partition_id, []).append((version, txn.txn_id))
        expected: dict[int, int | None] = {}  # partition -> the version it publishes next (None: dropped)
        for partition_id, queue in queues.items():
            queue.sort(reverse=True)  # the head at the end: pop() is O(1)
            partition = self._txns.partition_of(by_id[queue[-1][1]], partition_id)
            expected[partition_id] = None if partition is None else partition.visible_version + 1
        chain: list[TransactionState] = []
        candidates = {queue[-1][1] for queue in queues.values()}
        while candidates and len(chain) < limit:
            progressed: set[int] = set()
            for txn_id in sorted(candidates):
                txn = by_id[txn_id]
                if all(queues[p] and queues[p][-1][1] == txn_id and expected[p] in (None, v)
                       for p, v in txn.partition_versions.items()):
                    chain.append(txn)
                    progressed.add(txn_id)
                    for p, v in txn.partition_versions.items():
                        queues[p].pop()
                        if expected[p] is not None:
                            expected[p] = v + 1
                    if len(chain) >= limit:
                        break
            if not progressed:
                break
            candidates = {queues[p][-1][1] for txn_id in progressed
                          for p in by_id[txn_id].partition_versions if queues[p]}
        return chain

    async def run_once(self, max_rounds: int = 1000) -> int:
        """Publish until nothing is ready (a txn made visible may let the next version go)."""
        done = 0
        for _ in range(max_rounds):
            chain = self.ready_chain()
            if not chain:
                break
            try:
                progressed = await self.publish_chain(chain)
            except Exception as exc:  # a debug point, or an answer that could not be read
                log.error("publish of txns %s failed: %s: %s", [t.txn_id for t in chain[:5]], type(exc).__name__,
                          exc)
                break
            done += progressed
            if not progressed:
                break
        return done

    async def publish(self, txn: TransactionState) -> bool:
        """Publish one txn (its versions must be next in line)."""
        return await self.publish_chain([txn]) == 1

    async def publish_chain(self, chain: list[TransactionState]) -> int:
        """Publish ``chain`` (:meth:`ready_chain`) with one PublishVersion per BE; mark VISIBLE, in
        chain order, each txn whose every tablet reached its quorum, unless a txn before it on one
        of its partitions did not (versions become visible in order). How many became VISIBLE."""
        per_be: dict[int, list[backend_pb2.PublishTablet]] = {}
        quorum_of: dict[tuple[int, int], int] = {}  # (txn, tablet) -> the quorum its commit counted
        for txn in chain:
            for tablet_id, backend_ids in txn.tablet_backends.items():
                loc = self._catalog.find_location(tablet_id)
                if loc is None:
                    continue  # the table was dropped: nothing left to publish
                # the quorum the commit counted: an ALTER of write_quorum since then does not apply
                quorum_of[(txn.txn_id, tablet_id)] = txn.quorum or loc.table.quorum
                version = txn.partition_versions[loc.partition.partition_id]
                for be in backend_ids:
                    per_be.setdefault(be, []).append(backend_pb2.PublishTablet(
                        tablet_id=tablet_id, partition_id=loc.partition.partition_id, version=version,
                        txn_id=txn.txn_id))
        first = chain[0].txn_id

        async def send(be_id: int, tablets: list[backend_pb2.PublishTablet]):
            backend = self._backends.get(be_id)
            if backend is None or not backend.alive:
                return be_id, None
            try:
                resp = await self._clients.stub(be_id).PublishVersion(
                    backend_pb2.PublishVersionRequest(txn_id=first, tablets=tablets), timeout=PUBLISH_TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                log.warning("publish of txns %s to backend %d failed: %s", [t.txn_id for t in chain[:5]], be_id,
                            exc.code().name)
                return be_id, None
            return be_id, resp

        await self._debug.point(FE_TXN_PUBLISH_BEFORE_SEND)  # raises: the txns stay COMMITTED, tried next round
        published: dict[int, list[tuple[int, int, int, int, int, int]]] = {t.txn_id: [] for t in chain}
        lagging: dict[int, list[tuple[int, int]]] = {t.txn_id: [] for t in chain}
        reached: dict[tuple[int, int], int] = dict.fromkeys(quorum_of, 0)
        for be_id, resp in await asyncio.gather(*(send(be, ts) for be, ts in per_be.items())):
            answered = {(r.txn_id or first, r.tablet_id): r for r in resp.results} if resp is not None else {}
            for t in per_be[be_id]:
                r = answered.get((t.txn_id, t.tablet_id))
                if r is not None and r.ok and r.version >= t.version:
                    published[t.txn_id].append((t.tablet_id, be_id, t.version, r.row_count, r.data_size,
                                                r.version_count))
                    reached[(t.txn_id, t.tablet_id)] += 1
                else:
                    lagging[t.txn_id].append((t.tablet_id, be_id))
        held: set[int] = set()  # partitions whose next version did not become visible
        visible = 0
        for txn in chain:
            short = [tablet for (txn_id, tablet), n in reached.items()
                     if txn_id == txn.txn_id and n < quorum_of[(txn_id, tablet)]]
            if short or held.intersection(txn.partition_versions):
                held.update(txn.partition_versions)
                if short and txn.txn_id not in self._waiting_logged:
                    log.warning("txn %d stays COMMITTED: tablets %s have fewer than quorum replicas at the version",
                                txn.txn_id, short[:5])
                    self._waiting_logged.add(txn.txn_id)
                continue
            self._waiting_logged.discard(txn.txn_id)
            self._txns.mark_visible(txn.txn_id, published[txn.txn_id], lagging[txn.txn_id])
            visible += 1
        return visible
