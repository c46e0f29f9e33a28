"""The chaos driver's FrontendPool (deploy/fe_pool.py): in-process AdminService servers on
127.0.0.1 stand in for FEs; the tests make one answer UNAVAILABLE, another an error that may have
acted, and hold FEs down as a fault would."""

from __future__ import annotations

import grpc
import pytest

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from deploy.fe_pool import FrontendPool
from deploy.ports import free_ports

pytestmark = pytest.mark.timeout(30)


class _Fe(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, name: str) -> None:
        self.name = name
        self.answer: grpc.StatusCode | None = None  # None: answer; else abort with this code
        self.calls = 0

    async def ShowDatabases(self, request, context):
        self.calls += 1
        if self.answer is not None:
            await context.abort(self.answer, f"{self.name} says {self.answer.name}")
        return admin_pb2.ShowDatabasesResponse(databases=[admin_pb2.DatabaseRow(name=self.name)])


@pytest.fixture
async def fes():
    ports = free_ports(3)
    fes, servers = {}, []
    for i, port in enumerate(ports):
        fe = _Fe(f"fe{i}")
        server = grpc.aio.server()
        admin_pb2_grpc.add_AdminServiceServicer_to_server(fe, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        fes[fe.name] = (fe, f"127.0.0.1:{port}")
        servers.append(server)
    try:
        yield fes
    finally:
        for server in servers:
            await server.stop(None)


async def who(pool: FrontendPool) -> str:
    return (await pool.admin.ShowDatabases(admin_pb2.ShowDatabasesRequest(), timeout=5)).databases[0].name


async def test_the_preferred_fe_answers_and_unavailable_moves_on(fes):
    async with FrontendPool({name: address for name, (_, address) in fes.items()}) as pool:
        assert await who(pool) == "fe0" and pool.last_answered == "fe0"
        pool.prefer("fe2")
        assert await who(pool) == "fe2"
        pool.prefer("nobody")  # an unknown name changes nothing
        assert pool.preferred == "fe2"
        fes["fe2"][0].answer = grpc.StatusCode.UNAVAILABLE  # gone, or no leader to forward to
        assert await who(pool) == "fe0" and pool.order() == ["fe2", "fe0", "fe1"]
        for fe, _ in fes.values():
            fe.answer = grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await who(pool)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "fe1 says UNAVAILABLE" in err.value.details()


async def test_an_answer_that_may_have_acted_is_never_retried_elsewhere(fes):
    async with FrontendPool({name: address for name, (_, address) in fes.items()}) as pool:
        fes["fe0"][0].answer = grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await who(pool)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert [fe.calls for fe, _ in fes.values()] == [1, 0, 0]


async def test_fes_held_down_are_skipped(fes):
    async with FrontendPool({name: address for name, (_, address) in fes.items()}) as pool:
        pool.avoid("fe0")
        assert await who(pool) == "fe1" and fes["fe0"][0].calls == 0
        pool.avoid("fe1")
        pool.avoid("fe2")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await who(pool)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "every FE is held down by a fault (fe0, fe1, fe2)" in err.value.details()
        pool.allow("fe0")
        assert await who(pool) == "fe0"
    with pytest.raises(ValueError, match="at least one FE"):
        FrontendPool({})
