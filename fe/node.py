"""The FE process assembled: journal, domains, daemons and the gRPC server.

Two journal set-ups (``FeConfig.ha``):
- none (the default): one FE on its local RocksDB journal, the leader always
  (:class:`fe.ha.role.SingleFrontend`);
- etcd: the journal lives in etcd and the FEs elect a leader (:class:`fe.ha.etcd.EtcdFrontend`).
  The FE starts as a follower, tailing the journal. Only the leader runs the daemons that act
  (liveness, publish, txn timeouts and label cleaning, the routine load schedulers, the tablet
  checker/scheduler): they start when this FE becomes the leader, after it replayed the journal to
  its end. A leader that loses its lease re-executes itself (fe/ha/stepdown.py), so the daemons
  never need to stop while the process lives.

``self.ha`` is the :class:`fe.ha.role.HaState` the servicers consult.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from common.config import FeConfig
from common.daemon import PeriodicDaemon
from common.debug import FE_POINTS, DebugPoints
from common.debug.service import served as debug_served
from common.gen.tabletsim.v1 import admin_pb2_grpc, backend_pb2, frontend_pb2_grpc
from common.httpserver import HttpServer
from common.rpc import build_server, mark_serving
from common.timefmt import now_ms
from fe.catalog.catalog import Catalog
from fe.catalog.stats import Statistics
from fe.clone.daemon import TabletSchedDaemon
from fe.ha.etcd import EtcdFrontend
from fe.ha.role import FeRole, FrontendInfo, HaState, SingleFrontend
from fe.ha.stepdown import reexec
from fe.http.server import build_app as build_http_app
from fe.persist.durability import DurableRepliesInterceptor, durable_call_hook
from fe.persist.editlog import EditLog
from fe.persist.etcdclient import EtcdLayout, EtcdSession
from fe.persist.etcdlog import MAX_GROUP_RECORDS as ETCD_MAX_GROUP_RECORDS
from fe.persist.etcdlog import EtcdEditLog
from fe.persist.groupcommit import JournalWriteFailed
from fe.persist.ids import IdAllocator
from fe.persist.journal import Journal
from fe.routineload.manager import RoutineLoadManager
from fe.routineload.scheduler import LAG_REFRESH_S, RoutineLoadScheduler
from fe.service.admin import AdminServicer
from fe.service.frontend import FrontendServicer
from fe.service.leader import LeaderInterceptor
from fe.sql.server import SqlServer
from fe.system.backends import BackendRegistry
from fe.system.be_client import BackendClients
from fe.system.dynconfig import DynamicConfig
from fe.system.report import TabletReportHandler
from fe.txn.manager import TransactionManager
from fe.txn.publish import Publisher

log = logging.getLogger(__name__)

SERVICES = ("tabletsim.v1.AdminService", "tabletsim.v1.FrontendService")
TXN_CLEAN_INTERVAL_S = 30.0  # StarRocks' transaction_clean_interval_second


class FrontendNode:
    def __init__(self, config: FeConfig) -> None:
        self.config = config
        self.started_ms = now_ms()
        roll = lambda: self.dynconfig.edit_log_roll_num  # noqa: E731
        self._etcd: EtcdSession | None = None
        if config.ha is None:
            self.journal = Journal(EditLog(config.meta_dir), roll)
        else:
            self._etcd = EtcdSession(config.ha.etcd_endpoints)
            store = EtcdEditLog(config.meta_dir, self._etcd, EtcdLayout(config.ha.cluster_id))
            # a write refused by fencing (or failed for a whole lease) ends this process's leadership
            self.journal = Journal(store, roll, lambda exc: self._etcd_ha.fatal(exc), writable=False,
                                   max_group_records=ETCD_MAX_GROUP_RECORDS)
        self.ids = IdAllocator(self.journal)
        self.dynconfig = DynamicConfig(self.journal, config.config_overrides)
        self.backends = BackendRegistry(
            self.journal,
            self.ids,
            heartbeat_timeout_s=lambda: self.dynconfig.heartbeat_timeout_second,
            wall_ms=now_ms,
            mono=time.monotonic,
        )
        # the address BEs dial (rpc_port), sent on every call the FE makes
        self.debug = DebugPoints(f"{config.host}:{config.rpc_port}", FE_POINTS, enabled=config.enable_debug_points)
        # a call to a BE waits until the journal records it may depend on are durable
        self.clients = BackendClients(self.backends, config.cluster_token, lambda address: [
            durable_call_hook(self.journal.durable), *self.debug.client_interceptors(address)])
        self.catalog = Catalog(self.journal, self.ids, self.backends, self.clients, self.dynconfig, now_ms)
        self.inconsistent_tablets: set[int] = set()
        self.stats = Statistics(
            self.catalog,
            lambda loc: self.tablet_sched.is_unhealthy(loc.tablet.tablet_id),  # the checker's verdict
            lambda tablet_id: tablet_id in self.inconsistent_tablets,
        )
        self.journal.register("ids", self.ids)
        self.journal.register("config", self.dynconfig)
        self.journal.register("backend", self.backends)
        self.txns = TransactionManager(self.journal, self.ids, self.catalog, self.backends, self.dynconfig, now_ms)
        self.publisher = Publisher(self.txns, self.catalog, self.backends, self.clients, debug=self.debug)
        self.txns.on_aborted.append(self._clear_aborted)
        self.journal.register("catalog", self.catalog)
        self.journal.register("txn", self.txns)
        self.tablet_sched = TabletSchedDaemon(self.catalog, self.backends, self.clients, self.ids, self.dynconfig)
        self.tablet_sched.register_procs(self.stats.register)
        self.reports = TabletReportHandler(self.catalog, self.backends, self.txns,
                                           busy=self.tablet_sched.executor.busy)
        self.routine = RoutineLoadManager(self.journal, self.ids, self.catalog, self.txns, self.dynconfig, now_ms)
        self.routine_scheduler = RoutineLoadScheduler(self.routine, self.catalog, self.backends, self.clients,
                                                      self.txns, self.dynconfig, now_ms)
        self.journal.register("routineload", self.routine)
        self._daemons: list[PeriodicDaemon] = []
        self._leading = False
        self._clearing: set[asyncio.Future] = set()
        self._server = None
        self.port = 0
        self.ha: HaState
        if config.ha is None:
            info = FrontendInfo(name=f"{config.host}_{config.rpc_port}", host=config.host,
                                rpc_port=config.rpc_port, http_port=config.http_port, query_port=config.query_port,
                                role=FeRole.LEADER, is_leader=True, start_time_ms=self.started_ms)
            self.ha = SingleFrontend(info, lambda: self.journal.durable_seq)
        else:
            assert self._etcd is not None
            info = FrontendInfo(name=config.ha.fe_name, host=config.host, rpc_port=config.rpc_port, http_port=config.http_port,
                                query_port=config.query_port, cluster_id=config.ha.cluster_id, start_time_ms=self.started_ms,
                                version=config.ha.version)
            self._etcd_ha = EtcdFrontend(
                info=info, frontends=config.ha.frontends, session=self._etcd, store=store, journal=self.journal,
                lease_s=lambda: self.dynconfig.fe_leader_lease_second, step_down=reexec)
            self.ha = self._etcd_ha
        self.leader_routing: LeaderInterceptor | None = None
        self.admin: AdminServicer | None = None  # the AdminService implementation, which HTTP also calls
        self.serving = False  # set once the journal is read and gRPC serves: /api/bootstrap answers OK
        self.http: HttpServer | None = None
        self.sql: SqlServer | None = None  # the MySQL-protocol door (query_port), once gRPC serves

    async def start(self) -> None:
        started = time.monotonic()
        if self.config.http_port:  # first: /api/bootstrap says "starting" while the journal is read
            self.http = HttpServer(build_http_app(self), self.config.host, self.config.http_port, "FE")
            await self.http.start()
        self.journal.replay()
        log.info("metadata loaded in %.3f s", time.monotonic() - started)
        if self._etcd is None:
            # the one FE leads from its own start: the journaled BE liveness is its previous run's
            self.backends.lead(inherit=False)
        if self._etcd is not None:
            # a follower until it wins the election and replays the journal to its end
            self.ha.add_listener(self._on_role)
            await self._etcd_ha.start()
            log.info("journal in etcd read up to seq %d in %.3f s", self.journal.last_seq,
                     time.monotonic() - started)
        # followers forward AdminService writes to the leader and refuse FrontendService calls
        self.leader_routing = LeaderInterceptor(self.ha, interceptors=self.debug.client_interceptors)
        self.admin = admin = AdminServicer(self.backends, self.catalog, self.stats, self.dynconfig, self.txns, self.clients,
                              self.inconsistent_tablets, self.routine, tablet_sched=self.tablet_sched, ha=self.ha)
        frontend = FrontendServicer(self.backends, self.catalog, self.txns, self.routine,
                                    self.config.heartbeat_interval_ms, debug=self.debug,
                                    durable=self.journal.durable)
        frontend.attach_reports(self.reports)
        debug_services, debug_adders = debug_served(self.debug)  # none unless --enable-debug-points
        services = SERVICES + debug_services
        self._server, health = build_server(
            services,
            [
                lambda s: admin_pb2_grpc.add_AdminServiceServicer_to_server(admin, s),
                lambda s: frontend_pb2_grpc.add_FrontendServiceServicer_to_server(frontend, s),
                *debug_adders,
            ],
            cluster_token=self.config.cluster_token,
            admin_token=self.config.admin_token,
            # every answer waits until the journal records it may depend on are durable
            interceptors=[*self.debug.server_interceptors(), self.leader_routing,
                          DurableRepliesInterceptor(self.journal.durable)],
        )
        self.port = self._server.add_insecure_port(f"{self.config.host}:{self.config.rpc_port}")
        if self.port == 0:
            raise OSError(f"cannot bind the FE to {self.config.host}:{self.config.rpc_port}")
        self.debug.node = f"{self.config.host}:{self.port}"  # the bound port when rpc_port was 0
        await self._server.start()
        await mark_serving(health, services)
        if self.config.query_port:  # SQL runs through AdminService on this FE's own gRPC port
            self.sql = SqlServer(self.config.host, self.config.query_port, f"{self.config.host}:{self.port}",
                                 self.config.admin_token)
            await self.sql.start()
        if self.ha.role is FeRole.LEADER:
            self._start_leader_daemons()
        self.serving = True
        log.info("FE serving on %s:%d (meta %s, %s)", self.config.host, self.port, self.config.meta_dir,
                 "local journal" if self._etcd is None else f"journal in etcd, {self.ha.role.value}")

    def _on_role(self, role: FeRole) -> None:
        if role is FeRole.LEADER:
            # a promoted follower keeps the BEs its predecessor saw alive (fe/system/backends.py)
            self.backends.lead(inherit=True)
            self._start_leader_daemons()

    def _start_leader_daemons(self) -> None:
        """What only the leader runs; started once, when this FE leads (with the journal read to
        its end)."""
        if self._leading:
            return
        self._leading = True
        self.publish_daemon = PeriodicDaemon("publish", lambda: self.dynconfig.publish_version_interval_ms / 1000,
                                             self.publisher.run_once)
        self.txns.on_committed.append(lambda _txn: self.publish_daemon.wake())
        routine_daemon = PeriodicDaemon("routine-load-scheduler", lambda: 0.2, self.routine_scheduler.run_once)
        self.routine.on_change.append(routine_daemon.wake)  # a job created, altered or resumed: scheduled now
        self._daemons = [
            PeriodicDaemon(
                "backend-liveness",
                lambda: self.config.liveness_check_interval_ms / 1000,
                self.backends.check_liveness,
            ),
            self.publish_daemon,
            PeriodicDaemon("txn-timeout", lambda: 1.0, self.txns.abort_expired),
            PeriodicDaemon("txn-label-clean", lambda: TXN_CLEAN_INTERVAL_S, self.txns.clean_finished),
            routine_daemon,
            PeriodicDaemon("routine-load-lag", lambda: LAG_REFRESH_S, self.routine_scheduler.refresh_lag),
        ]
        for daemon in self._daemons:
            daemon.start()
        # the one FE starts knowing no live BE; a promoted follower inherited their liveness
        self.tablet_sched.start(grace=self._etcd is None)
        log.info("leader daemons started (liveness, publish, txn timeouts, routine load, tablet scheduling)")

    def _clear_aborted(self, txn) -> None:
        """Tell every alive BE to drop the aborted txn's pending rowsets (best effort: a BE that
        misses it keeps them until it learns the txn is over)."""
        self._clearing.add(asyncio.ensure_future(self._clear_on_backends(txn.txn_id)))

    async def _clear_on_backends(self, txn_id: int) -> None:
        async def clear(be_id: int) -> None:
            try:
                await self.clients.stub(be_id).ClearTransaction(
                    backend_pb2.ClearTransactionRequest(txn_id=txn_id), timeout=5)
            except grpc.aio.AioRpcError as exc:
                log.info("backend %d did not clear txn %d: %s", be_id, txn_id, exc.code().name)

        try:
            await asyncio.gather(*(clear(b.backend_id) for b in self.backends.alive()))
        finally:
            self._clearing.discard(asyncio.current_task())

    async def wait(self) -> None:
        assert self._server is not None
        await self._server.wait_for_termination()

    async def stop(self, grace_s: float = 2.0) -> None:
        if self.sql is not None:
            await self.sql.stop()
        if self.http is not None:
            await self.http.stop()
        for daemon in self._daemons:
            await daemon.close()
        await self.tablet_sched.close()
        for task in list(self._clearing):
            task.cancel()
        if self._server is not None:
            await self._server.stop(grace_s)
        if self.leader_routing is not None:
            await self.leader_routing.close()
        await self.clients.close()
        if self._etcd is None:
            await self.journal.drain()  # a checkpoint in flight finishes off the loop
        else:
            self._etcd_ha.closing = True  # a write failing now ends the process, not re-executes it
            try:
                await self.journal.drain()
            except JournalWriteFailed as exc:
                log.warning("journal records not written to etcd at stop: %s", exc)
            await self._etcd_ha.close()
        self.journal.close()
        log.info("FE stopped")
