"""The BE's link to the FE: register (with retries until the FE answers), then heartbeat.

Every call goes to the leader FE through :class:`be.agent.fe_router.FeRouter`, which follows the
leader across the FEs the BE was given (``--fe a,b,c``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable

import grpc
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from be.agent.fe_router import FeRouter, LeaderStub
from be.storage.store import BeStore
from common.config import BeConfig
from common.errors import Unauthenticated, is_retriable
from common.gen.tabletsim.v1 import frontend_pb2
from common.rpc import InterceptorFactory, no_interceptors

log = logging.getLogger(__name__)


class FeLink:
    """Registers this BE and keeps heartbeating; re-registers when the FE asks.

    ``interceptors``: the client interceptors of the channel to each FE address (debug points)."""

    def __init__(self, config: BeConfig, store: BeStore, start_time_ms: int,
                 tablet_count: Callable[[], int], interceptors: InterceptorFactory = no_interceptors) -> None:
        self._config = config
        self._store = store
        self._start_time_ms = start_time_ms
        self._tablet_count = tablet_count
        self.router = FeRouter(config.fe_addresses, config.cluster_token, interceptors)
        self._stub = self.router.stub
        self.backend_id = store.backend_id()
        self.interval_ms = config.heartbeat_interval_ms
        self._task: asyncio.Task | None = None
        self._failures = 0
        self.disk: tuple[int, int, int] | None = None
        """(total, data used, available) bytes of the storage dir at the last heartbeat (None before
        the first): the BE's disk metrics, refreshed as often as StarRocks' disk stats."""
        # the heartbeat's own thread: scans, checksums and writes fill the loop's default
        # executor for seconds at a time, and a heartbeat queued behind them arrives too late
        self._disk_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="heartbeat-disk")

    @property
    def stub(self) -> LeaderStub:
        """FrontendService's methods, each sent to the current leader FE: give it to whatever
        calls the FE (the load coordinator, routine load tasks, the tablet reporter)."""
        return self._stub

    async def register(self) -> int:
        """Register until the FE answers. A wrong cluster token is fatal (Unauthenticated)."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_retriable),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            reraise=True,
        ):
            with attempt:
                try:
                    resp = await self._stub.RegisterBackend(
                        frontend_pb2.RegisterBackendRequest(
                            backend_id=self.backend_id,
                            host=self._config.host,
                            be_port=self._config.be_port,
                            http_port=self._config.http_port,
                            start_time_ms=self._start_time_ms,
                        ),
                        timeout=5,
                    )
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                        raise Unauthenticated(f"the FE at {self.router.leader} refused this BE: "
                                              f"{exc.details()}") from None
                    if attempt.retry_state.attempt_number % 10 == 1:
                        log.warning("no leader FE reachable yet (last tried %s of %s: %s); retrying",
                                    self.router.leader, ", ".join(self.router.addresses), exc.code().name)
                    raise
        if resp.backend_id != self.backend_id:
            self._store.set_backend_id(resp.backend_id)
            log.info("registered as backend %d", resp.backend_id)
        self.backend_id = resp.backend_id
        self.interval_ms = resp.heartbeat_interval_ms or self.interval_ms
        return self.backend_id

    def start(self) -> None:
        self._task = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")

    async def _heartbeat_once(self) -> None:
        total, used, avail = await asyncio.get_running_loop().run_in_executor(
            self._disk_pool, self._store.disk_usage, self._config.capacity_bytes)
        self.disk = (total, used, avail)
        resp = await self._stub.Heartbeat(
            frontend_pb2.HeartbeatRequest(
                backend_id=self.backend_id,
                host=self._config.host,
                be_port=self._config.be_port,
                http_port=self._config.http_port,
                start_time_ms=self._start_time_ms,
                disk=frontend_pb2.DiskStat(
                    path=self._store.storage_dir,
                    total_capacity_bytes=total,
                    data_used_bytes=used,
                    avail_capacity_bytes=avail,
                ),
                tablet_num=self._tablet_count(),
            ),
            timeout=max(self.interval_ms / 1000 * 2, 2.0),
        )
        if resp.need_register:
            log.warning("FE does not know backend %d; registering again", self.backend_id)
            await self.register()
        if resp.heartbeat_interval_ms:
            self.interval_ms = resp.heartbeat_interval_ms

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self._heartbeat_once()
                if self._failures:
                    log.info("heartbeat to FE restored after %d failures", self._failures)
                self._failures = 0
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                self._failures += 1
                if self._failures in (1, 10) or self._failures % 100 == 0:
                    log.warning("heartbeat to FE %s failed (%d in a row): %s %s", self.router.leader,
                                self._failures, exc.code().name, exc.details())
            except Exception:
                self._failures += 1
                log.exception("heartbeat failed")
            await asyncio.sleep(self.interval_ms / 1000)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._disk_pool.shutdown(wait=False, cancel_futures=True)
        await self.router.close()
