"""FrontendService: what BEs call on the FE (registration, heartbeats, load transactions)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson

from common import quorum
from common.debug import FE_TXN_COMMIT_AFTER_JOURNAL, FE_TXN_COMMIT_BEFORE_JOURNAL, DebugPoints
from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import frontend_pb2, frontend_pb2_grpc, types_pb2
from common.rpc import servicer
from fe.catalog.catalog import Catalog
from fe.catalog.model import Database, Table
from fe.routineload.manager import RoutineLoadManager
from fe.service.frontend_report import ReportServiceMixin
from fe.system.backends import BackendRegistry, DiskInfo, Heartbeat
from fe.txn.manager import LabelConflict, TransactionManager
from fe.txn.state import SourceType, TxnStatus

log = logging.getLogger(__name__)


def _require_endpoint(host: str, port: int) -> None:
    if not host:
        raise InvalidArgument("field 'host' is required: the address the BE listens on")
    if not 0 < port < 65536:
        raise InvalidArgument(f"field 'be_port' = {port}: must be a TCP port in 1..65535")


def load_target(db: Database, table: Table, backends: BackendRegistry) -> types_pb2.LoadTarget:
    """Where a load writes: every partition's tablets and their writable replicas' addresses.

    Only replicas that count towards the write quorum (NORMAL, not bad) on alive backends, as
    StarRocks' OlapTableSink: a dead or hung BE would hold every batch up to the write timeout,
    and a CLONE replica would count on the coordinator but not at the commit. A tablet with fewer
    of them than its quorum is refused by the coordinator before it writes.
    """
    partitions = []
    for p in table.partitions:
        tablets = []
        for t in p.tablets:
            replicas = []
            for r in t.replicas:
                be = backends.get(r.backend_id)
                if be is not None and quorum.writable(r.state.value, r.bad, be.alive):
                    replicas.append(types_pb2.TargetReplica(backend_id=r.backend_id, address=be.address))
            tablets.append(types_pb2.TargetTablet(tablet_id=t.tablet_id, replicas=replicas))
        tp = types_pb2.TargetPartition(partition_id=p.partition_id, name=p.name, tablets=tablets)
        if p.lower is not None:
            tp.lower = p.lower
        if p.upper is not None:
            tp.upper = p.upper
        partitions.append(tp)
    return types_pb2.LoadTarget(
        db_id=db.db_id, table_id=table.table_id, db=db.name, table=table.name,
        columns_json=orjson.dumps([c.to_dict() for c in table.columns]).decode(),
        partition_column=table.partition_column or "", partitions=partitions,
        distribution_columns=table.distribution_columns, buckets=table.buckets,
        replication_num=table.replication_num, quorum=table.quorum, write_quorum=table.write_quorum.value,
    )


def parse_source_type(text: str) -> SourceType:
    try:
        return SourceType(text or SourceType.BACKEND_STREAMING.value)
    except ValueError:
        raise InvalidArgument(
            f"invalid source_type '{text}'; allowed: {', '.join(s.value for s in SourceType)}"
        ) from None


@servicer
class FrontendServicer(ReportServiceMixin, frontend_pb2_grpc.FrontendServiceServicer):
    def __init__(self, backends: BackendRegistry, catalog: Catalog, txns: TransactionManager,
                 routine: RoutineLoadManager, heartbeat_interval_ms: int, *,
                 debug: DebugPoints | None = None,
                 durable: Callable[[], Awaitable[None]] | None = None) -> None:
        self._debug = debug or DebugPoints.disabled()
        self._durable = durable  # waits until the journal is synced (the "after journal" point)
        self._routine = routine
        self._backends = backends
        self._catalog = catalog
        self._txns = txns
        self._interval_ms = heartbeat_interval_ms

    async def RegisterBackend(self, request, context):
        _require_endpoint(request.host, request.be_port)
        if request.start_time_ms <= 0:
            raise InvalidArgument("field 'start_time_ms' must be the BE's start time in epoch millis")
        backend_id = self._backends.register(
            request.backend_id, request.host, request.be_port, request.http_port, request.start_time_ms
        )
        return frontend_pb2.RegisterBackendResponse(
            backend_id=backend_id, heartbeat_interval_ms=self._interval_ms
        )

    async def Heartbeat(self, request, context):
        if request.backend_id <= 0:
            raise InvalidArgument("field 'backend_id' is required: register first (RegisterBackend)")
        _require_endpoint(request.host, request.be_port)
        disk = request.disk
        known = self._backends.heartbeat(
            Heartbeat(
                backend_id=request.backend_id,
                host=request.host,
                be_port=request.be_port,
                http_port=request.http_port,
                start_time_ms=request.start_time_ms,
                disk=DiskInfo(
                    total_capacity=disk.total_capacity_bytes,
                    data_used=disk.data_used_bytes,
                    avail_capacity=disk.avail_capacity_bytes,
                ),
                tablet_num=request.tablet_num,
            )
        )
        return frontend_pb2.HeartbeatResponse(
            need_register=not known, heartbeat_interval_ms=self._interval_ms
        )

    async def BeginTxn(self, request, context):
        coordinator = f"BE: {request.coordinator_backend_id}" if request.coordinator_backend_id else "FE"
        source = parse_source_type(request.source_type)
        if request.member_labels or request.wal_replay:  # group commit (be/load/group_commit.py)
            group = self._txns.begin_group(
                request.db, request.table, request.label, request.timeout_s, coordinator, source,
                list(request.member_labels), wal_replay=request.wal_replay,
                commit_may_have_been_sent=request.commit_may_have_been_sent)
            return frontend_pb2.BeginTxnResponse(
                txn_id=group.txn.txn_id if group.txn else 0,
                target=load_target(group.db, group.table, self._backends) if group.txn else None,
                member_conflicts=[_conflict(c) for c in group.conflicts],
                existing_txn_id=group.existing.txn_id if group.existing else 0,
                existing_status=group.existing.status.value if group.existing else "")
        task = self._routine.check_task_label(request.label) if source is SourceType.ROUTINE_LOAD_TASK else None
        txn, db, table = self._txns.begin(
            request.db, request.table, request.label, request.timeout_s, coordinator, source,
        )
        if task is not None:
            self._routine.task_began(*task, txn.txn_id)
        return frontend_pb2.BeginTxnResponse(txn_id=txn.txn_id, target=load_target(db, table, self._backends))

    async def CommitTxn(self, request, context):
        try:
            attachment = orjson.loads(request.attachment_json) if request.attachment_json else {}
        except orjson.JSONDecodeError as exc:
            raise InvalidArgument(f"field 'attachment_json' is not JSON: {exc}") from None
        tablets = {info.tablet_id: list(info.backend_ids) for info in request.tablet_commit_infos}
        txn = self._txns.get(request.txn_id)
        if txn.status in (TxnStatus.COMMITTED, TxnStatus.VISIBLE):
            # StarRocks' commitTransaction returns at once for a txn already COMMITTED or VISIBLE:
            # only its coordinator commits a txn, so this is that coordinator retrying a commit whose
            # first attempt landed (on a leader that died or stepped down before it answered).
            # Nothing is logged again: the offsets CAS of a routine load task ran once, with the first.
            log.info("txn %d (label %s) is already %s: commit answered as done", txn.txn_id, txn.label,
                     txn.status.value)
        else:
            # every commit (stream load, routine load task) comes through here
            await self._debug.point(FE_TXN_COMMIT_BEFORE_JOURNAL)
            txn = self._txns.commit(request.txn_id, tablets, attachment, request.loaded_rows)
            if self._debug.enabled and self._durable is not None:
                await self._durable()  # the point means "journaled": the commit record is synced
            await self._debug.point(FE_TXN_COMMIT_AFTER_JOURNAL)
        if request.wait_visible_ms > 0:
            txn = await self._txns.wait_finished(txn.txn_id, request.wait_visible_ms / 1000)
        return frontend_pb2.CommitTxnResponse(status=txn.status.value)

    async def AddTxnMembers(self, request, context):
        conflicts = self._txns.add_members(request.txn_id, list(request.member_labels))
        return frontend_pb2.AddTxnMembersResponse(member_conflicts=[_conflict(c) for c in conflicts])

    async def AbortTxn(self, request, context):
        txn = self._txns.get(request.txn_id)
        if txn.status is TxnStatus.PREPARE:
            self._txns.abort(request.txn_id, request.reason or "aborted by the coordinator")
        return frontend_pb2.AbortTxnResponse()

    async def ReportRoutineLoadTask(self, request, context):
        self._routine.report(
            request.job_id, request.task_id, request.outcome, request.error_kind, request.message,
            dict(request.highwater), [{"row": r.row, "reason": r.reason} for r in request.error_samples],
        )
        return frontend_pb2.RoutineLoadTaskReportResponse()


def _conflict(c: LabelConflict) -> frontend_pb2.MemberLabelConflict:
    return frontend_pb2.MemberLabelConflict(label=c.label, txn_id=c.txn_id, status=c.status, message=c.message)
