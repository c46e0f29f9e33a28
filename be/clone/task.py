"""The destination side of a clone: pull rowsets from the source BE and make them visible.

FULL: the replica (created when absent) becomes a copy of the source's rowsets up to the
requested version, replacing what it had. INCREMENTAL: only the versions after the replica's own
are copied. A source whose compactions merged those versions into a rowset that also covers
versions the replica has cannot serve them; the clone then tries the other healthy replicas the FE
named (``alt_src_addresses``), and only when none can - or the replica is gone - falls back to
FULL from ``src_address`` and says why (``incremental=False``, ``fallback_reason``), as StarRocks
does.

Chunks arrive on a ReadRowsets stream and are written in RocksDB batches of a few MB off the event
loop; the rowsets become visible in one synced batch at the end (:meth:`RowsetStore.install_clone`),
so a clone that dies half-way leaves the replica as it was. ``cloning`` names the tablets being
cloned: the tablet report leaves them alone (no orphan drop, no pending-rowset clearing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from rocksdict import WriteBatch

from be.agent.peers import PeerClients
from be.storage import versions as V
from be.storage.rowsets import RowsetStore, StorageError, chunk_key
from be.storage.store import BeStore
from be.storage.tablets import TabletManager, TabletMeta
from common.debug import BE_CLONE_MIDDLE, DebugPoints
from common.errors import FailedPrecondition, InvalidArgument
from common.gen.tabletsim.v1 import backend_pb2

log = logging.getLogger(__name__)

WRITE_BATCH_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT_S = 600.0


@dataclass
class CloneCounters:
    """Clones this BE ran as the destination since it started; ``/metrics`` exports them under
    StarRocks' names: engine_requests_total{type="clone", status="total" | "failed"} and
    clone_task_copy_bytes / clone_task_copy_duration_ms{type="INTER_NODE"} (bytes pulled from
    the source BE and the time the clones that succeeded took)."""

    requests: int = 0
    failed: int = 0
    copied_bytes: int = 0
    copy_ms: int = 0


@dataclass
class Pulled:
    rowsets: list[list[int]]
    copied_bytes: int


class CloneRunner:
    def __init__(self, store: BeStore, tablets: TabletManager, rowsets: RowsetStore,
                 peers: PeerClients, backend_id: Callable[[], int], *, debug: DebugPoints | None = None) -> None:
        self._debug = debug or DebugPoints.disabled()
        self._store = store
        self._tablets = tablets
        self._rowsets = rowsets
        self._peers = peers
        self._backend_id = backend_id
        self.cloning: set[int] = set()
        self.counters = CloneCounters()

    async def clone(self, req: backend_pb2.CloneTabletRequest,
                    timeout_s: float | None) -> backend_pb2.CloneTabletResponse:
        """Run one clone task (counted in :attr:`counters`, whatever its outcome)."""
        self.counters.requests += 1
        started = time.monotonic()
        try:
            resp = await self._clone(req, timeout_s)
        except BaseException:
            self.counters.failed += 1
            raise
        self.counters.copied_bytes += resp.copied_bytes
        self.counters.copy_ms += int((time.monotonic() - started) * 1000)
        return resp

    async def _clone(self, req: backend_pb2.CloneTabletRequest,
                     timeout_s: float | None) -> backend_pb2.CloneTabletResponse:
        m = req.meta
        if m.tablet_id <= 0 or m.replica_id <= 0 or req.version <= 0 or not req.src_address:
            raise InvalidArgument("clone needs meta.tablet_id, meta.replica_id, version > 0 and src_address")
        if m.tablet_id in self.cloning:
            raise FailedPrecondition(f"tablet {m.tablet_id} is already being cloned on backend "
                                     f"{self._backend_id()}")
        template = TabletMeta(tablet_id=m.tablet_id, replica_id=m.replica_id, db_id=m.db_id,
                              table_id=m.table_id, partition_id=m.partition_id,
                              version=max(m.version, 1), schema_json=m.schema_json)
        deadline = time.monotonic() + (timeout_s or DEFAULT_TIMEOUT_S)
        self.cloning.add(m.tablet_id)
        started = time.monotonic()
        try:
            local = self._tablets.get(m.tablet_id)
            incremental = req.incremental and local is not None
            if incremental and local.version >= req.version:
                return backend_pb2.CloneTabletResponse(
                    version=local.version, row_count=local.row_count, data_size=local.data_size,
                    incremental=True)
            pulled, source, fallback = None, req.src_address, ""
            if req.incremental and local is None:
                fallback = f"the replica is not on backend {self._backend_id()}"
            if incremental:
                refusals = []
                for address in [req.src_address, *[a for a in req.alt_src_addresses if a != req.src_address]]:
                    try:
                        pulled = await self._pull(req, address, local.version, deadline)
                        source = address
                        break
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                            if address == req.src_address:
                                raise
                            refusals.append(f"{address}: {exc.code().name}")
                            continue
                        refusals.append(f"{address}: {exc.details()}")
                if pulled is None:
                    fallback = "no source holds the missing versions: " + "; ".join(refusals)
                    log.info("tablet %d: incremental clone impossible (%s); cloning in full",
                             m.tablet_id, fallback)
                    incremental = False
            if pulled is None:
                pulled = await self._pull(req, req.src_address, 0, deadline)
            await self._debug.point(BE_CLONE_MIDDLE, source)  # fetched, not installed yet
            if self._tablets.get(m.tablet_id) is None:
                await asyncio.to_thread(self._tablets.create, [template])
            try:
                meta = await asyncio.to_thread(self._rowsets.install_clone, template, pulled.rowsets,
                                               incremental)
            except StorageError as exc:
                raise FailedPrecondition(f"backend {self._backend_id()}: {exc}") from None
        finally:
            self.cloning.discard(m.tablet_id)
        log.info("tablet %d: %s clone from %s copied %d rowsets (%d bytes) in %.2f s; now at version %d",
                 m.tablet_id, "incremental" if incremental else "full", req.src_address,
                 len(pulled.rowsets), pulled.copied_bytes, time.monotonic() - started, meta.version)
        return backend_pb2.CloneTabletResponse(
            version=meta.version, row_count=meta.row_count, data_size=meta.data_size,
            copied_versions=[v for rs in pulled.rowsets for v in range(max(rs[V.START], 2), rs[V.END] + 1)],
            copied_bytes=pulled.copied_bytes, incremental=incremental, source_address=source,
            fallback_reason=fallback)

    async def _pull(self, req: backend_pb2.CloneTabletRequest, address: str, version_from: int,
                    deadline: float) -> Pulled:
        tablet_id = req.meta.tablet_id
        stream = self._peers.stub(address).ReadRowsets(
            backend_pb2.ReadRowsetsRequest(tablet_id=tablet_id, version_from=version_from,
                                           version_to=req.version),
            timeout=max(deadline - time.monotonic(), 1.0))
        rowsets: dict[int, list[int]] = {}
        got: dict[int, int] = {}
        batch, batch_bytes, copied = WriteBatch(raw_mode=True), 0, 0
        async for c in stream:
            rs = rowsets.setdefault(c.version, [c.start_version, c.version, c.txn_id, c.row_count,
                                                c.rowset_bytes, c.chunk_count])
            if rs[V.RID] != c.txn_id:
                raise FailedPrecondition(f"tablet {tablet_id}: source sent two rowsets ending at version {c.version}")
            if c.chunk_count == 0:
                continue
            batch.put(chunk_key(tablet_id, c.txn_id, c.chunk_index), c.rows)
            got[c.version] = got.get(c.version, 0) + 1
            batch_bytes += len(c.rows)
            copied += len(c.rows)
            if batch_bytes >= WRITE_BATCH_BYTES:
                await asyncio.to_thread(self._store.db.write, batch, self._store.wal)
                batch, batch_bytes = WriteBatch(raw_mode=True), 0
        if batch_bytes or len(batch):
            await asyncio.to_thread(self._store.db.write, batch, self._store.wal)
        ordered = [rowsets[v] for v in sorted(rowsets)]
        if not V.covers(ordered, version_from, req.version):
            raise FailedPrecondition(f"tablet {tablet_id}: the source sent versions "
                                     f"{[rs[:2] for rs in ordered]}, not a path over ({version_from}, {req.version}]")
        short = [rs[V.END] for rs in ordered if got.get(rs[V.END], 0) != rs[V.CHUNKS]]
        if short:
            raise FailedPrecondition(f"tablet {tablet_id}: the stream ended before every chunk of "
                                     f"versions {short} arrived")
        return Pulled(ordered, copied)
