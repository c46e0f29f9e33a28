"""AdminService: what an operator does, over gRPC (grpcurl-friendly).

One servicer class made of one mixin per domain (backends here, the catalog in
``admin_catalog``); the @servicer decorator maps domain errors to status codes for all of them.
"""

from __future__ import annotations

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from common.rpc import servicer
from common.timefmt import fmt_bytes, fmt_ms
from fe.catalog.catalog import Catalog
from fe.catalog.stats import Statistics
from fe.clone.daemon import TabletSchedDaemon
from fe.ha.role import HaState
from fe.routineload.manager import RoutineLoadManager
from fe.service.admin_catalog import CatalogAdmin
from fe.service.admin_frontends import FRONTENDS_PROC_PATH, FrontendsAdmin, frontends_proc
from fe.service.admin_load import LoadAdmin
from fe.service.admin_replica import ReplicaAdmin
from fe.service.admin_routine import RoutineLoadAdmin
from fe.system.backends import BackendRegistry
from fe.system.be_client import BackendClients
from fe.system.dynconfig import DynamicConfig
from fe.txn.manager import TransactionManager


class BackendsAdmin:
    _backends: BackendRegistry
    _catalog: Catalog

    async def ShowBackends(self, request, context):
        placed = self._catalog.replicas_per_backend()
        rows = []
        for be in self._backends.all():
            disk = be.disk
            used_pct = (
                f"{100.0 * (disk.total_capacity - disk.avail_capacity) / disk.total_capacity:.2f} %"
                if disk.total_capacity
                else "0.00 %"
            )
            rows.append(
                admin_pb2.BackendRow(
                    backend_id=be.backend_id,
                    host=be.host,
                    be_port=be.be_port,
                    http_port=be.http_port,
                    last_start_time=fmt_ms(be.last_start_time_ms),
                    last_heartbeat=fmt_ms(be.last_heartbeat_ms),
                    alive=be.alive,
                    tablet_num=placed.get(be.backend_id, 0),
                    data_used_capacity=fmt_bytes(disk.data_used),
                    avail_capacity=fmt_bytes(disk.avail_capacity),
                    total_capacity=fmt_bytes(disk.total_capacity),
                    used_pct=used_pct,
                    err_msg=be.err_msg,
                    decommissioned=be.decommissioned,
                    tablets_left_to_move=placed.get(be.backend_id, 0) if be.decommissioned else 0,
                )
            )
        return admin_pb2.ShowBackendsResponse(backends=rows)


@servicer
class AdminServicer(BackendsAdmin, FrontendsAdmin, CatalogAdmin, LoadAdmin, RoutineLoadAdmin, ReplicaAdmin,
                    admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, backends: BackendRegistry, catalog: Catalog, stats: Statistics,
                 dynconfig: DynamicConfig, txns: TransactionManager, clients: BackendClients,
                 inconsistent_tablets: set[int], routine: RoutineLoadManager,
                 tablet_sched: TabletSchedDaemon | None = None, *, ha: HaState) -> None:
        self._ha = ha
        stats.register(FRONTENDS_PROC_PATH, lambda: frontends_proc(ha))
        self._tablet_sched = tablet_sched
        self._routine = routine
        self._backends = backends
        self._catalog = catalog
        self._stats = stats
        self._dynconfig = dynconfig
        self._txns = txns
        self._clients = clients
        self._inconsistent = inconsistent_tablets
