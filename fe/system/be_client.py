"""The FE's channels to its BEs (one per BE run, made on first use, carrying the cluster token).

A BE that restarted (its heartbeat brings a new start time) is dialled on a new channel: the old
one may still wait out a reconnect backoff from while the BE was down.
"""

from __future__ import annotations

import asyncio

import grpc

from common.gen.tabletsim.v1 import backend_pb2_grpc
from common.rpc import InterceptorFactory, cluster_channel, no_interceptors
from fe.system.backends import BackendRegistry


class BackendClients:
    def __init__(self, backends: BackendRegistry, cluster_token: str,
                 interceptors_for: InterceptorFactory = no_interceptors) -> None:
        self._backends = backends
        self._token = cluster_token
        self._interceptors_for = interceptors_for  # the node's own client hooks, per target address
        # backend id -> ((address, start time), channel, stub)
        self._channels: dict[int, tuple[tuple[str, int], grpc.aio.Channel, backend_pb2_grpc.BackendServiceStub]] = {}
        self._closing: set[asyncio.Task] = set()

    def stub(self, backend_id: int) -> backend_pb2_grpc.BackendServiceStub:
        be = self._backends.get(backend_id)
        if be is None:
            raise KeyError(f"unknown backend {backend_id}")
        run = (be.address, be.last_start_time_ms)
        cached = self._channels.get(backend_id)
        if cached is not None and cached[0] == run:
            return cached[2]
        if cached is not None:  # calls in flight on the old channel end on their own; then it closes
            task = asyncio.ensure_future(cached[1].close(grace=30))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        channel = cluster_channel(be.address, self._token, self._interceptors_for(be.address))
        stub = backend_pb2_grpc.BackendServiceStub(channel)
        self._channels[backend_id] = (run, channel, stub)
        return stub

    async def close(self) -> None:
        for _, channel, _ in self._channels.values():
            await channel.close()
        self._channels.clear()
        for task in list(self._closing):
            task.cancel()
