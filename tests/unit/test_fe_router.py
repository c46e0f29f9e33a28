"""BEs follow the leader FE (be/agent/fe_router.py, FeLink): in-process FEs on 127.0.0.1 behind the
real LeaderInterceptor, with fake HaStates whose role and leader the tests flip."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import grpc
import pytest

from be.agent.fe_router import FeRouter
from be.agent.heartbeat import FeLink
from be.main import parse_fe_addresses
from common.config import BeConfig
from common.errors import Unavailable
from common.gen.tabletsim.v1 import frontend_pb2, frontend_pb2_grpc
from common.rpc import build_server, servicer
from deploy.ports import free_ports
from fe.ha.role import FeRole
from fe.service.frontend import FrontendServicer
from fe.service.leader import LeaderInterceptor
from fe.txn.state import TxnStatus
from tests.unit.fake_ha import FakeHa

pytestmark = pytest.mark.timeout(30)

TOKEN = "cluster-secret"


@servicer
class _Frontend(frontend_pb2_grpc.FrontendServiceServicer):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.unavailable = False
        self.hung = False  # a SIGSTOPped FE: the connection stands, no answer ever comes

    async def RegisterBackend(self, request, context):
        self.calls.append("RegisterBackend")
        return frontend_pb2.RegisterBackendResponse(backend_id=10001, heartbeat_interval_ms=1000)

    async def Heartbeat(self, request, context):
        self.calls.append("Heartbeat")
        if self.hung:
            await asyncio.Event().wait()
        if self.unavailable:
            raise Unavailable("tablet 7: 1 of 3 replicas written, below the write quorum 2")
        return frontend_pb2.HeartbeatResponse(heartbeat_interval_ms=1000)

    async def BeginTxn(self, request, context):
        self.calls.append("BeginTxn")
        return frontend_pb2.BeginTxnResponse(txn_id=7)


class _Fe:
    def __init__(self, role: FeRole) -> None:
        self.ha = FakeHa("pending", role)
        self.frontend = _Frontend()
        self.interceptor = LeaderInterceptor(self.ha)
        self.server, _ = build_server(
            ("tabletsim.v1.FrontendService",),
            [lambda s: frontend_pb2_grpc.add_FrontendServiceServicer_to_server(self.frontend, s)],
            cluster_token=TOKEN, interceptors=[self.interceptor])
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.ha.bind(self.address)

    async def stop(self) -> None:
        await self.interceptor.close()
        await self.server.stop(None)


@pytest.fixture
async def fes():
    made: list[_Fe] = []

    async def make(role: FeRole) -> _Fe:
        fe = _Fe(role)
        await fe.server.start()
        made.append(fe)
        return fe

    yield make
    for fe in made:
        await fe.stop()


def _dead_address() -> str:
    return f"127.0.0.1:{free_ports(1)[0]}"


async def test_a_refusal_names_the_leader_and_the_call_goes_there(fes):
    follower, leader = await fes(FeRole.FOLLOWER), await fes(FeRole.LEADER)
    follower.ha.become(FeRole.FOLLOWER, leader.address)
    router = FeRouter([follower.address, leader.address], TOKEN)
    try:
        await router.stub.Heartbeat(frontend_pb2.HeartbeatRequest(backend_id=1), timeout=5)
        assert router.leader == leader.address and router.switches == 1
        await router.stub.Heartbeat(frontend_pb2.HeartbeatRequest(backend_id=1), timeout=5)
    finally:
        await router.close()
    assert follower.frontend.calls == []
    assert leader.frontend.calls == ["Heartbeat", "Heartbeat"]


async def test_an_unreachable_fe_is_skipped_for_the_next_one(fes):
    leader = await fes(FeRole.LEADER)
    dead = _dead_address()
    router = FeRouter([dead, leader.address], TOKEN, backoff_s=0.01)
    try:
        await router.stub.Heartbeat(frontend_pb2.HeartbeatRequest(backend_id=1), timeout=5)
    finally:
        await router.close()
    assert router.leader == leader.address
    assert leader.frontend.calls == ["Heartbeat"]


async def test_a_leader_elected_while_the_call_waits_gets_it(fes):
    a, b = await fes(FeRole.FOLLOWER), await fes(FeRole.FOLLOWER)
    a.ha.become(FeRole.FOLLOWER, None)
    b.ha.become(FeRole.FOLLOWER, None)

    def elect_b() -> None:
        b.ha.become(FeRole.LEADER, b.address)
        a.ha.become(FeRole.FOLLOWER, b.address)

    asyncio.get_running_loop().call_later(0.15, elect_b)
    router = FeRouter([a.address, b.address], TOKEN, backoff_s=0.05)
    try:
        await router.stub.Heartbeat(frontend_pb2.HeartbeatRequest(backend_id=1), timeout=10)
    finally:
        await router.close()
    assert router.leader == b.address
    assert b.frontend.calls == ["Heartbeat"] and a.frontend.calls == []


async def test_a_leader_that_stops_answering_is_left_for_the_next_fe(fes):
    # the leader is SIGSTOPped: its connection stays up, calls wait for their deadline; a follower
    # took over. The timed-out call goes back to its caller (it may have run), the next one asks
    # the next FE, which names (or is) the leader
    old, new = await fes(FeRole.LEADER), await fes(FeRole.LEADER)
    router = FeRouter([old.address, new.address], TOKEN)
    try:
        await router.stub.Heartbeat(frontend_pb2.HeartbeatRequest(backend_id=1), timeout=5)
        old.frontend.hung = True
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await router.stub.Heartbeat(frontend_pb2.HeartbeatRequest(backend_id=1), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await router.stub.Heartbeat(frontend_pb2.HeartbeatRequest(backend_id=1), timeout=5)
    finally:
        await router.close()
    assert router.leader == new.address
    assert old.frontend.calls == ["Heartbeat", "Heartbeat"] and new.frontend.calls == ["Heartbeat"]


async def test_one_fe_down_fails_at_once_as_a_plain_stub_would():
    router = FeRouter([_dead_address()], TOKEN)
    started = time.monotonic()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await router.stub.Heartbeat(frontend_pb2.HeartbeatRequest(backend_id=1), timeout=5)
    finally:
        await router.close()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 3


async def test_every_fe_down_gives_up_after_bounded_attempts():
    router = FeRouter([_dead_address(), _dead_address()], TOKEN, backoff_s=0.01, max_backoff_s=0.05)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await router.stub.Heartbeat(frontend_pb2.HeartbeatRequest(backend_id=1), timeout=10)
    finally:
        await router.close()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_leaders_own_unavailable_is_not_sent_elsewhere(fes):
    leader, other = await fes(FeRole.LEADER), await fes(FeRole.LEADER)
    leader.frontend.unavailable = True
    router = FeRouter([leader.address, other.address], TOKEN, backoff_s=0.01)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await router.stub.Heartbeat(frontend_pb2.HeartbeatRequest(backend_id=1), timeout=5)
    finally:
        await router.close()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "write quorum" in err.value.details()
    assert leader.frontend.calls == ["Heartbeat"] and other.frontend.calls == []


class _Store:
    storage_dir = "/nonexistent"

    def __init__(self) -> None:
        self.backend = 0

    def backend_id(self) -> int:
        return self.backend

    def set_backend_id(self, backend_id: int) -> None:
        self.backend = backend_id


async def test_fe_link_registers_with_the_leader_and_its_stub_follows_it(fes):
    follower, leader = await fes(FeRole.FOLLOWER), await fes(FeRole.LEADER)
    follower.ha.become(FeRole.FOLLOWER, leader.address)
    config = BeConfig(storage_dir="/nonexistent", fe_address=follower.address, cluster_token=TOKEN,
                      fe_addresses=(follower.address, leader.address))
    link = FeLink(config, _Store(), start_time_ms=1, tablet_count=lambda: 0)
    try:
        assert await link.register() == 10001
        # the coordinator's BeginTxn goes through the same stub
        begun = await link.stub.BeginTxn(frontend_pb2.BeginTxnRequest(db="d", table="t", label="l"), timeout=5)
        assert begun.txn_id == 7
        # leadership moves to the other FE: the next call follows it
        leader.ha.become(FeRole.FOLLOWER, follower.address)
        follower.ha.become(FeRole.LEADER, follower.address)
        await link.stub.BeginTxn(frontend_pb2.BeginTxnRequest(db="d", table="t", label="l2"), timeout=5)
    finally:
        await link.close()
    assert leader.frontend.calls == ["RegisterBackend", "BeginTxn"]
    assert follower.frontend.calls == ["BeginTxn"]
    assert link.router.leader == follower.address


def test_fe_addresses_from_the_command_line():
    assert parse_fe_addresses(["127.0.0.1:9020"]) == ("127.0.0.1:9020",)
    assert parse_fe_addresses(["a:1,b:2", "c:3", "a:1"]) == ("a:1", "b:2", "c:3")
    with pytest.raises(ValueError, match="'b' is not HOST:PORT"):
        parse_fe_addresses(["a:1,b"])
    with pytest.raises(ValueError, match="at least one FE"):
        parse_fe_addresses([" , "])


def test_be_config_keeps_fe_address_as_the_first_fe():
    one = BeConfig(storage_dir="/s", fe_address="a:1", cluster_token="t")
    assert one.fe_addresses == ("a:1",)
    many = BeConfig(storage_dir="/s", fe_address="a:1", cluster_token="t", fe_addresses=("a:1", "b:2"))
    assert many.fe_address == "a:1"
    with pytest.raises(ValueError, match="must start with fe_address"):
        BeConfig(storage_dir="/s", fe_address="b:2", cluster_token="t", fe_addresses=("a:1", "b:2"))


async def test_a_commit_retried_after_it_landed_answers_its_status():
    """A coordinator re-sending CommitTxn to a new leader learns the txn is done; nothing is logged twice."""

    class _Txns:
        def get(self, txn_id):
            return SimpleNamespace(txn_id=txn_id, label="job-1-task", status=TxnStatus.VISIBLE)

        def commit(self, *args):
            raise AssertionError("an already committed txn must not be committed again")

    fe = FrontendServicer(SimpleNamespace(), SimpleNamespace(), _Txns(), SimpleNamespace(), 1000)
    resp = await fe.CommitTxn(frontend_pb2.CommitTxnRequest(txn_id=5, attachment_json='{"a": 1}'), None)
    assert resp.status == "VISIBLE"
