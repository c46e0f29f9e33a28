"""The FE's channels to its BEs (one per BE, made on first use, carrying the cluster token)."""

from __future__ import annotations

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
        self._channels: dict[int, tuple[str, grpc.aio.Channel, backend_pb2_grpc.BackendServiceStub]] = {}

    def stub(self, backend_id: int) -> backend_pb2_grpc.BackendServiceStub:
        be = self._backends.get(backend_id)
        if be is None:
            raise KeyError(f"unknown backend {backend_id}")
        cached = self._channels.get(backend_id)
        if cached is not None and cached[0] == be.address:
            return cached[2]
        channel = cluster_channel(be.address, self._token, self._interceptors_for(be.address))
        stub = backend_pb2_grpc.BackendServiceStub(channel)
        self._channels[backend_id] = (be.address, channel, stub)
        return stub

    async def close(self) -> None:
        for _, channel, _ in self._channels.values():
            await channel.close()
        self._channels.clear()
