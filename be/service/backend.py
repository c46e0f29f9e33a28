"""BackendService: what the FE and peer BEs call on a BE."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from be.load.coordinator import LoadCoordinator
from be.load.group_commit import GroupCommitter
from be.load.routine_task import RoutineLoadRunner
from be.load.stats import LoadStats
from be.load.stream_load import execute_stream_load
from be.service.clone_service import CloneServiceMixin
from be.storage.compaction import CompactionManager
from be.storage.rowsets import RowsetStore, StorageError
from be.storage.scan import ScanResult, TabletScan
from be.storage.store import BeStore
from be.storage.tablets import TabletManager, TabletMeta
from common.config import StorageConfig
from common.debug import BE_WRITE_BEFORE_ACK, DebugPoints, caller_node
from common.errors import FailedPrecondition, InvalidArgument
from common.gen.tabletsim.v1 import backend_pb2, backend_pb2_grpc
from common.offload import off_loop_if_large
from common.rpc import servicer

PUBLISH_COST_BYTES = 4096
"""A tablet's publish (one small RocksDB batch) counted as this many bytes of work: a publish of up
to 64 tablets runs on the loop (common/offload.py)."""

@servicer
class BackendServicer(CloneServiceMixin, backend_pb2_grpc.BackendServiceServicer):
    def __init__(self, store: BeStore, tablets: TabletManager, rowsets: RowsetStore, coordinator: LoadCoordinator,
                 routine: RoutineLoadRunner, start_time_ms: int, backend_id: Callable[[], int], *,
                 config: StorageConfig | None = None, compaction: CompactionManager | None = None,
                 debug: DebugPoints | None = None, group_commit: GroupCommitter | None = None,
                 load_stats: LoadStats | None = None) -> None:
        self._debug = debug or DebugPoints.disabled()
        self._load_stats = load_stats
        self._group_commit = group_commit
        self._routine = routine
        self._config = config or StorageConfig()
        self._compaction = compaction
        self._store = store
        self._tablets = tablets
        self._rowsets = rowsets
        self._coordinator = coordinator
        self._start_time_ms = start_time_ms
        self._backend_id = backend_id

    async def GetBackendInfo(self, request, context):
        counters = self._compaction.counters if self._compaction else None
        return backend_pb2.GetBackendInfoResponse(
            backend_id=self._backend_id(),
            start_time_ms=self._start_time_ms,
            tablet_num=len(self._tablets),
            storage_dir=self._store.storage_dir,
            config=self._config.show(),
            cumulative_compactions=counters.cumulative if counters else 0,
            base_compactions=counters.base if counters else 0,
            compaction_failures=counters.failures if counters else 0,
            compaction_running=len(counters.running) if counters else 0,
        )

    async def CreateTablets(self, request, context):
        metas = []
        for t in request.tablets:
            if t.tablet_id <= 0 or t.replica_id <= 0 or t.version <= 0:
                raise InvalidArgument(
                    f"tablet {t.tablet_id}: tablet_id, replica_id and version must be positive"
                )
            metas.append(TabletMeta(
                tablet_id=t.tablet_id, replica_id=t.replica_id, db_id=t.db_id, table_id=t.table_id,
                partition_id=t.partition_id, version=t.version, schema_json=t.schema_json,
            ))
        created = await asyncio.to_thread(self._tablets.create, metas)
        return backend_pb2.CreateTabletsResponse(created=created)

    async def DropTablets(self, request, context):
        ids, replicas = list(request.tablet_ids), list(request.replica_ids)
        if replicas and len(replicas) != len(ids):
            raise InvalidArgument(f"replica_ids has {len(replicas)} entries for {len(ids)} tablet_ids; "
                                  "give one per tablet or none")
        def drop() -> list[int]:  # a worker thread: both take the tablet lock
            gone = self._tablets.drop(ids, replicas or None)
            for tablet_id in gone:
                self._rowsets.forget_tablet(tablet_id)
            return gone

        dropped = await asyncio.to_thread(drop)
        return backend_pb2.DropTabletsResponse(dropped=len(dropped))

    # ------------------------------------------------------------------ loads
    async def ExecuteStreamLoad(self, request, context):
        # the gRPC door of be/load/stream_load.py; the HTTP one is be/http/stream_load.py
        return await execute_stream_load(request, coordinator=self._coordinator, group_commit=self._group_commit,
                                         stats=self._load_stats, backend_id=self._backend_id())

    async def SubmitRoutineLoadTask(self, request, context):
        if not request.task_id or not request.start_offsets:
            raise InvalidArgument("a routine load task needs task_id and start_offsets")
        self._routine.submit(request)
        return backend_pb2.SubmitRoutineLoadTaskResponse(accepted=True)

    async def WriteRows(self, request, context):
        chunks = [(c.tablet_id, c.partition_id, c.rows, c.row_count, c.seq if c.HasField("seq") else None)
                  for c in request.chunks]
        try:
            written = await off_loop_if_large(sum(len(c[2]) for c in chunks), self._rowsets.write,
                                              request.txn_id, chunks)
        except StorageError as exc:
            raise FailedPrecondition(f"backend {self._backend_id()}: {exc}") from None
        # stored as pending, not yet acknowledged: a failure here is a replica that took the rows
        # but whose answer never reached the coordinator
        await self._debug.point(BE_WRITE_BEFORE_ACK, caller_node(context.invocation_metadata()))
        return backend_pb2.WriteRowsResponse(written_rows=written)

    async def PublishVersion(self, request, context):
        def publish_all() -> list[backend_pb2.PublishResult]:
            out = []
            for t in request.tablets:
                txn_id = t.txn_id or request.txn_id
                outcome = self._rowsets.publish(txn_id, t.tablet_id, t.version)
                meta = self._tablets.get(t.tablet_id)
                out.append(backend_pb2.PublishResult(
                    tablet_id=t.tablet_id, txn_id=txn_id, ok=outcome.ok, version=outcome.version, error=outcome.error,
                    row_count=meta.row_count if meta else 0, data_size=meta.data_size if meta else 0,
                    version_count=meta.version_count if meta else 0,
                ))
            return out

        results = await off_loop_if_large(len(request.tablets) * PUBLISH_COST_BYTES, publish_all)
        if self._compaction is not None:
            self._compaction.notify([r.tablet_id for r in results if r.ok])
        return backend_pb2.PublishVersionResponse(results=results)

    async def ClearTransaction(self, request, context):
        cleared = await asyncio.to_thread(self._rowsets.clear, request.txn_id, list(request.tablet_ids) or None)
        return backend_pb2.ClearTransactionResponse(cleared=cleared)

    # ------------------------------------------------------------------ reads
    async def ScanTablets(self, request, context):
        def scan() -> ScanResult:
            read = TabletScan(request.predicates, request.limit, columnar=request.columnar, columns=request.columns,
                              aggregates=[(a.func, a.column) for a in request.aggregates], group_by=request.group_by)
            for t in request.tablets:
                meta = self._tablets.get(t.tablet_id)
                if meta is None:
                    raise StorageError(f"tablet {t.tablet_id} does not exist on this backend")
                read.tablet(meta.schema_json)
                for payload in self._rowsets.chunks(t.tablet_id, t.version):
                    read.add(payload, meta.schema_json)
            return read.finish()

        try:
            res = await asyncio.to_thread(scan)
        except StorageError as exc:
            raise FailedPrecondition(f"backend {self._backend_id()}: {exc}") from None
        return backend_pb2.ScanTabletsResponse(count=res.count, rows=res.rows, partials=res.partials,
                                               aggregated=res.aggregated)

    async def TabletChecksum(self, request, context):
        try:
            checksum, rows = await asyncio.to_thread(self._rowsets.checksum, request.tablet_id, request.version)
        except StorageError as exc:
            raise FailedPrecondition(f"backend {self._backend_id()}: {exc}") from None
        return backend_pb2.TabletChecksumResponse(checksum=checksum, row_count=rows, version=request.version)

