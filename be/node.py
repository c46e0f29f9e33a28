"""The BE process assembled: storage, the FE link and the gRPC server."""

from __future__ import annotations

import logging

from be.agent.heartbeat import FeLink
from be.agent.peers import PeerClients
from be.agent.report import TabletReporter
from be.clone.task import CloneRunner
from be.http.server import build_app as build_http_app
from be.load.coordinator import LoadCoordinator
from be.load.group_commit import GroupCommitter
from be.load.group_commit_wal import GroupCommitWal
from be.load.routine_task import RoutineLoadRunner
from be.load.stats import LoadStats
from be.service.backend import BackendServicer
from be.storage.compaction import CompactionManager
from be.storage.rowsets import RowsetStore
from be.storage.store import BeStore
from be.storage.tablets import TabletManager
from common.config import BeConfig
from common.debug import BE_POINTS, DebugPoints
from common.debug.service import served as debug_served
from common.gen.tabletsim.v1 import backend_pb2_grpc
from common.httpserver import HttpServer
from common.rpc import build_server, mark_serving
from common.timefmt import now_ms

log = logging.getLogger(__name__)

SERVICES = ("tabletsim.v1.BackendService",)


class BackendNode:
    def __init__(self, config: BeConfig) -> None:
        self.config = config
        self.start_time_ms = now_ms()
        self.store = BeStore(config.storage_dir)
        self.tablets = TabletManager(self.store)
        self.rowsets = RowsetStore(self.store, self.tablets, lambda: config.storage.tablet_max_versions)
        self.compaction = CompactionManager(self.store, self.tablets, self.rowsets, config.storage)
        # the address peers dial (its be_port), sent on every call this BE makes
        self.debug = DebugPoints(f"{config.host}:{config.be_port}", BE_POINTS, enabled=config.enable_debug_points)
        # every FE call (the link's own, the coordinator's, routine load tasks', reports) goes to
        # the current leader FE through the link's stub
        self.link = FeLink(config, self.store, self.start_time_ms, lambda: len(self.tablets),
                           interceptors=self.debug.client_interceptors)
        self.peers = PeerClients(config.cluster_token, self.debug.client_interceptors)
        self.coordinator = LoadCoordinator(lambda: self.link.backend_id, self.link.stub, self.rowsets, self.peers)
        self.group_commit = GroupCommitter(self.coordinator, self.link.stub, GroupCommitWal(self.store),
                                           lambda: self.link.backend_id)
        self.load_stats = LoadStats()  # what this BE loaded: its load metrics (be/http/metrics.py)
        self.routine = RoutineLoadRunner(self.coordinator, self.link.stub, debug=self.debug, stats=self.load_stats,
                                         write_buffer_size=config.storage.write_buffer_size)
        self.cloner = CloneRunner(self.store, self.tablets, self.rowsets, self.peers, lambda: self.link.backend_id,
                                  debug=self.debug)
        self.reporter = TabletReporter(config.tablet_report_interval_s, lambda: self.link.backend_id,
                                       lambda: self.link.stub, self.tablets, self.rowsets,
                                       lambda: set(self.cloner.cloning),
                                       compaction_status=self.compaction.status)
        self._server = None
        self.http: HttpServer | None = None

    async def start(self) -> None:
        backend = BackendServicer(self.store, self.tablets, self.rowsets, self.coordinator, self.routine,
                                  self.start_time_ms, lambda: self.link.backend_id,
                                  config=self.config.storage, compaction=self.compaction, debug=self.debug,
                                  group_commit=self.group_commit, load_stats=self.load_stats)
        backend.attach_cloner(self.cloner)
        debug_services, debug_adders = debug_served(self.debug)
        services = SERVICES + debug_services
        self._server, health = build_server(
            services,
            [lambda s: backend_pb2_grpc.add_BackendServiceServicer_to_server(backend, s), *debug_adders],
            cluster_token=self.config.cluster_token,
            interceptors=self.debug.server_interceptors(),
        )
        port = self._server.add_insecure_port(f"{self.config.host}:{self.config.be_port}")
        if port == 0:
            raise OSError(f"cannot bind the BE to {self.config.host}:{self.config.be_port}")
        await self._server.start()
        await mark_serving(health, services)
        if self.config.http_port:
            self.http = HttpServer(build_http_app(self), self.config.host, self.config.http_port, "BE")
            await self.http.start()
        log.info("BE serving on %s:%d (storage %s%s); registering with the leader of FEs %s",
                 self.config.host, port, self.config.storage_dir,
                 ", debug points on" if self.debug.enabled else "", ", ".join(self.config.fe_addresses))
        await self.link.register()
        self.link.start()
        await self.group_commit.start()  # async_mode groups of the previous process: loaded again
        self.reporter.start()
        self.compaction.start()
        log.info("backend %d started", self.link.backend_id)

    async def stop(self, grace_s: float = 2.0) -> None:
        if self.http is not None:
            await self.http.stop()
        if self._server is not None:
            await self._server.stop(grace_s)
        await self.routine.close()
        await self.group_commit.close()
        await self.coordinator.close()
        await self.compaction.close()
        await self.reporter.close()
        await self.link.close()
        await self.peers.close()
        self.store.close()
        log.info("BE stopped")
