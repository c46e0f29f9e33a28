"""The FE's channels to its BEs (fe/system/be_client.py)."""

from __future__ import annotations

from dataclasses import dataclass

from common.rpc import CHANNEL_OPTIONS
from fe.system.be_client import BackendClients


@dataclass
class FakeBackend:
    address: str
    last_start_time_ms: int


class FakeRegistry:
    def __init__(self) -> None:
        self.backends = {1: FakeBackend("127.0.0.1:1", 1000)}

    def get(self, backend_id: int) -> FakeBackend | None:
        return self.backends.get(backend_id)


async def test_a_restarted_backend_gets_a_new_channel():
    """A BE that restarted (a new start time, same address) is dialled on a fresh channel: the old
    one may sit in gRPC's reconnect backoff for many seconds after the BE came back, and the FE's
    routine load tasks and clones sent through it would fail with UNAVAILABLE meanwhile."""
    registry = FakeRegistry()
    clients = BackendClients(registry, "token")  # type: ignore[arg-type]
    try:
        first = clients.stub(1)
        assert clients.stub(1) is first
        registry.backends[1].last_start_time_ms = 2000
        assert clients.stub(1) is not first
        assert clients.stub(1) is clients.stub(1)
    finally:
        await clients.close()


def test_reconnect_backoff_is_bounded_for_cluster_peers():
    options = dict(CHANNEL_OPTIONS)
    assert options["grpc.max_reconnect_backoff_ms"] <= 2000
