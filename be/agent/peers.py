"""Channels from this BE to peer BEs (replica writes, clone sources), by address."""

from __future__ import annotations

import grpc

from common.gen.tabletsim.v1 import backend_pb2_grpc
from common.rpc import InterceptorFactory, cluster_channel, no_interceptors


class PeerClients:
    def __init__(self, cluster_token: str, interceptors_for: InterceptorFactory = no_interceptors) -> None:
        self._token = cluster_token
        self._interceptors_for = interceptors_for  # the node's own client hooks, per target address
        self._stubs: dict[str, tuple[grpc.aio.Channel, backend_pb2_grpc.BackendServiceStub]] = {}

    def stub(self, address: str) -> backend_pb2_grpc.BackendServiceStub:
        cached = self._stubs.get(address)
        if cached is None:
            channel = cluster_channel(address, self._token, self._interceptors_for(address))
            cached = (channel, backend_pb2_grpc.BackendServiceStub(channel))
            self._stubs[address] = cached
        return cached[1]

    async def close(self) -> None:
        for channel, _ in self._stubs.values():
            await channel.close()
        self._stubs.clear()
