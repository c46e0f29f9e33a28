"""AdminService methods of replica management: ADMIN SHOW REPLICA STATUS, ADMIN [CANCEL] REPAIR
TABLE, ALTER SYSTEM DECOMMISSION / DROP BACKEND."""

from __future__ import annotations

from common.errors import FailedPrecondition, InvalidArgument, NotFound
from common.gen.tabletsim.v1 import admin_pb2
from fe.catalog.catalog import Catalog
from fe.catalog.health import replica_is_healthy
from fe.clone.daemon import TabletSchedDaemon
from fe.system.backends import Backend, BackendRegistry

REPLICA_STATUSES = ("OK", "DEAD", "VERSION_ERROR", "SCHEMA_ERROR", "MISSING")


def _require(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(f"field '{field}' is required")
    return value


class ReplicaAdmin:
    """Mixed into the AdminServicer; errors are mapped by its @servicer decorator."""

    _backends: BackendRegistry
    _catalog: Catalog
    _tablet_sched: TabletSchedDaemon

    async def ShowReplicaStatus(self, request, context):
        _, table = self._catalog.table(_require(request.db, "db"), _require(request.table, "table"))
        partitions = self._catalog.partitions(table, list(request.partitions))
        wanted = request.status.strip().upper()
        if wanted and wanted not in REPLICA_STATUSES:
            raise InvalidArgument(f"invalid status '{request.status}'; allowed: "
                                  f"{', '.join(REPLICA_STATUSES)}")
        rows = []
        for p in partitions:
            for t in p.tablets:
                for r in t.replicas:
                    be = self._backends.get(r.backend_id)
                    if be is None or not be.alive or r.bad:
                        status = "DEAD"
                    elif r.version < p.visible_version or r.last_failed_version > 0:
                        status = "VERSION_ERROR"
                    else:
                        status = "OK"
                    rows.append(admin_pb2.ReplicaStatusRow(
                        tablet_id=t.tablet_id, replica_id=r.replica_id, backend_id=r.backend_id,
                        version=r.version, last_failed_version=r.last_failed_version,
                        last_success_version=r.last_success_version,
                        committed_version=p.committed_version, schema_hash=-1,
                        version_num=r.version_count, is_bad=r.bad, state=r.state.value,
                        status=status))
                for _ in range(len(t.replicas), table.replication_num):
                    rows.append(admin_pb2.ReplicaStatusRow(
                        tablet_id=t.tablet_id, replica_id=-1, backend_id=-1, version=-1,
                        last_failed_version=-1, last_success_version=-1, committed_version=-1,
                        schema_hash=-1, version_num=-1, is_bad=False, state="NULL", status="MISSING"))
        if wanted:
            rows = [r for r in rows if r.status == wanted]
        return admin_pb2.ShowReplicaStatusResponse(replicas=rows)

    def _hints_of(self, request) -> tuple[list[tuple[int, int | None]], int]:
        _, table = self._catalog.table(_require(request.db, "db"), _require(request.table, "table"))
        if request.partitions:
            parts = self._catalog.partitions(table, list(request.partitions))
            return [(table.table_id, p.partition_id) for p in parts], sum(len(p.tablets) for p in parts)
        return [(table.table_id, None)], sum(len(p.tablets) for p in table.partitions)

    async def RepairTable(self, request, context):
        hints, tablets = self._hints_of(request)
        self._tablet_sched.hints |= set(hints)
        self._tablet_sched.wake()
        return admin_pb2.RepairTableResponse(tablets=tablets)

    async def CancelRepairTable(self, request, context):
        hints, tablets = self._hints_of(request)
        sched = self._tablet_sched
        if request.partitions:
            sched.hints -= set(hints)
        else:
            sched.hints = {h for h in sched.hints if h[0] != hints[0][0]}
        sched.wake()
        return admin_pb2.RepairTableResponse(tablets=tablets)

    def _backend_of(self, request) -> Backend:
        if request.backend_id:
            be = self._backends.get(request.backend_id)
            if be is None:
                raise NotFound(f"unknown backend {request.backend_id}; see ShowBackends for the ids")
            return be
        if not request.host or not request.be_port:
            raise InvalidArgument("name the backend: field 'backend_id', or 'host' and 'be_port'")
        be = next((b for b in self._backends.all()
                   if (b.host, b.be_port) == (request.host, request.be_port)), None)
        if be is None:
            raise NotFound(f"unknown backend {request.host}:{request.be_port}; see ShowBackends")
        return be

    async def DecommissionBackend(self, request, context):
        be = self._backend_of(request)
        self._backends.decommission(be.backend_id)
        self._tablet_sched.wake()
        return admin_pb2.BackendResponse(backend_id=be.backend_id,
                                         tablets_left=self._tablet_sched.tablets_on(be.backend_id))

    async def DropBackend(self, request, context):
        be = self._backend_of(request)
        blocking: list[int] = []
        leftovers: list[int] = []
        for tablet_id in self._catalog.replicas_on(be.backend_id):
            loc = self._catalog.location(tablet_id)
            elsewhere = sum(1 for r in loc.tablet.replicas if r.backend_id != be.backend_id
                            and replica_is_healthy(r, loc.partition, self._backends))
            if elsewhere < loc.table.replication_num:
                blocking.append(loc.tablet.tablet_id)
            else:
                leftovers.append(loc.tablet.tablet_id)
        if blocking:
            shown = ", ".join(map(str, sorted(blocking)[:10])) + (" ..." if len(blocking) > 10 else "")
            raise FailedPrecondition(
                f"backend {be.backend_id} still holds replicas of {len(blocking)} tablets that have "
                f"fewer than replication_num healthy replicas on other backends (tablets {shown}); "
                f"DecommissionBackend it first and drop it once ShowBackends shows "
                f"tablets_left_to_move 0")
        for tablet_id in leftovers:  # redundant copies: the other backends hold enough
            self._catalog.drop_replica(tablet_id, be.backend_id)
        self._backends.drop(be.backend_id)
        return admin_pb2.BackendResponse(backend_id=be.backend_id, tablets_left=0)
