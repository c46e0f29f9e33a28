"""The publish daemon: COMMITTED transactions to VISIBLE, strictly in version order per partition.

Each round takes the committed txns whose versions are next in line on every partition they
touch, sends PublishVersion to the replicas that took their rows (one call per BE), and marks a
txn VISIBLE once every tablet has a quorum of replicas at the version: the quorum its commit
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

    async def run_once(self, max_rounds: int = 1000) -> int:
        """Publish until nothing is ready (a txn made visible may let the next version go)."""
        done = 0
        for _ in range(max_rounds):
            ready = self.ready()
            if not ready:
                break
            results = await asyncio.gather(*(self.publish(txn) for txn in ready), return_exceptions=True)
            progressed = 0
            for txn, res in zip(ready, results, strict=True):
                if isinstance(res, BaseException):
                    log.error("publish of txn %d failed: %s: %s", txn.txn_id, type(res).__name__, res)
                elif res:
                    progressed += 1
            done += progressed
            if not progressed:
                break
        return done

    async def publish(self, txn: TransactionState) -> bool:
        per_be: dict[int, list[backend_pb2.PublishTablet]] = {}
        quorum_of: dict[int, int] = {}
        for tablet_id, backend_ids in txn.tablet_backends.items():
            loc = self._catalog.find_location(tablet_id)
            if loc is None:
                continue  # the table was dropped: nothing left to publish
            # the quorum the commit counted: an ALTER of write_quorum since then does not apply
            quorum_of[tablet_id] = txn.quorum or loc.table.quorum
            version = txn.partition_versions[loc.partition.partition_id]
            for be in backend_ids:
                per_be.setdefault(be, []).append(
                    backend_pb2.PublishTablet(tablet_id=tablet_id, partition_id=loc.partition.partition_id,
                                              version=version))

        async def send(be_id: int, tablets: list[backend_pb2.PublishTablet]):
            backend = self._backends.get(be_id)
            if backend is None or not backend.alive:
                return be_id, None
            try:
                resp = await self._clients.stub(be_id).PublishVersion(
                    backend_pb2.PublishVersionRequest(txn_id=txn.txn_id, tablets=tablets), timeout=PUBLISH_TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                log.warning("publish of txn %d to backend %d failed: %s", txn.txn_id, be_id, exc.code().name)
                return be_id, None
            return be_id, resp

        await self._debug.point(FE_TXN_PUBLISH_BEFORE_SEND)  # raises: the txn stays COMMITTED, tried next round
        published: list[tuple[int, int, int, int, int, int]] = []
        lagging: list[tuple[int, int]] = []
        reached: dict[int, int] = dict.fromkeys(quorum_of, 0)
        for be_id, resp in await asyncio.gather(*(send(be, ts) for be, ts in per_be.items())):
            answered = {r.tablet_id: r for r in resp.results} if resp is not None else {}
            for t in per_be[be_id]:
                r = answered.get(t.tablet_id)
                if r is not None and r.ok and r.version >= t.version:
                    published.append((t.tablet_id, be_id, t.version, r.row_count, r.data_size, r.version_count))
                    reached[t.tablet_id] += 1
                else:
                    lagging.append((t.tablet_id, be_id))
        short = [t for t, n in reached.items() if n < quorum_of[t]]
        if short:
            if txn.txn_id not in self._waiting_logged:
                log.warning("txn %d stays COMMITTED: tablets %s have fewer than quorum replicas at the version",
                            txn.txn_id, short[:5])
                self._waiting_logged.add(txn.txn_id)
            return False
        self._waiting_logged.discard(txn.txn_id)
        self._txns.mark_visible(txn.txn_id, published, lagging)
        return True
