"""fe/service/leader.py on real in-process grpc.aio servers (127.0.0.1, free ports) with fake HaStates.

A follower forwards an AdminService write to the leader (same request, same metadata and admin
token), waits until it replayed the leader's journal id, and answers; a read is answered where it
arrives; a FrontendService call on a follower is refused with the leader's address.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from common.errors import AlreadyExists
from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc, frontend_pb2, frontend_pb2_grpc
from common.rpc import admin_channel, build_server, cluster_channel, servicer
from fe.ha.role import FeRole
from fe.service.leader import (
    ADMIN_ACCESS,
    FORWARDED_BY_HEADER,
    JOURNAL_ID_HEADER,
    LEADER_ADDRESS_HEADER,
    Access,
    LeaderInterceptor,
    admin_methods,
    check_classified,
    metadata_value,
)
from tests.unit.fake_ha import FakeHa

pytestmark = pytest.mark.timeout(30)

TOKEN = "cluster-secret"
ADMIN_TOKEN = "admin-secret"
SERVICES = ("tabletsim.v1.AdminService", "tabletsim.v1.FrontendService")


@servicer
class _Admin(admin_pb2_grpc.AdminServiceServicer):
    """Databases in memory: CreateDatabase is a write (it bumps the FE's journal id), ShowDatabases a read."""

    def __init__(self, ha: FakeHa) -> None:
        self.ha = ha
        self.dbs: list[str] = []
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def CreateDatabase(self, request, context):
        self.calls.append(("CreateDatabase", dict(context.invocation_metadata())))
        if request.db in self.dbs:
            raise AlreadyExists(f"database '{request.db}' already exists")
        self.dbs.append(request.db)
        self.ha.set_replayed(self.ha.replayed_journal_id + 1)
        return admin_pb2.CreateDatabaseResponse(db_id=len(self.dbs))

    async def ShowDatabases(self, request, context):
        self.calls.append(("ShowDatabases", dict(context.invocation_metadata())))
        return admin_pb2.ShowDatabasesResponse(databases=[admin_pb2.DatabaseRow(name=n) for n in self.dbs])


@servicer
class _Frontend(frontend_pb2_grpc.FrontendServiceServicer):
    def __init__(self) -> None:
        self.heartbeats = 0

    async def Heartbeat(self, request, context):
        self.heartbeats += 1
        return frontend_pb2.HeartbeatResponse(heartbeat_interval_ms=1000)


class _Fe:
    """One FE: a fake HaState, the two fake servicers and the LeaderInterceptor under test."""

    def __init__(self, role: FeRole, *, replay_wait_s: float = 5.0) -> None:
        self.role = role
        self.replay_wait_s = replay_wait_s
        self.ha: FakeHa | None = None
        self.address = ""

    async def start(self) -> None:
        self.ha = FakeHa("pending", self.role)  # its address once the port is bound
        self.interceptor = LeaderInterceptor(self.ha, replay_wait_s=self.replay_wait_s)
        self.admin = _Admin(self.ha)
        self.frontend = _Frontend()
        self.server, _ = build_server(
            SERVICES,
            [lambda s: admin_pb2_grpc.add_AdminServiceServicer_to_server(self.admin, s),
             lambda s: frontend_pb2_grpc.add_FrontendServiceServicer_to_server(self.frontend, s)],
            cluster_token=TOKEN, admin_token=ADMIN_TOKEN, interceptors=[self.interceptor])
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{port}"
        self.ha.bind(self.address)
        await self.server.start()

    async def stop(self) -> None:
        await self.interceptor.close()
        await self.server.stop(None)


@pytest.fixture
async def pair():
    leader, follower = _Fe(FeRole.LEADER), _Fe(FeRole.FOLLOWER, replay_wait_s=2.0)
    await leader.start()
    await follower.start()
    follower.ha.become(FeRole.FOLLOWER, leader.address)
    follower.ha.others = (leader.address,)
    yield leader, follower
    await follower.stop()
    await leader.stop()


def _tail_from(leader: _Fe, follower: _Fe) -> None:
    """When the follower starts waiting, it 'replays' the leader's state a moment later."""

    def on_wait(journal_id: int) -> None:
        def apply() -> None:
            follower.admin.dbs = list(leader.admin.dbs)
            asyncio.ensure_future(follower.ha.replay_to(leader.ha.replayed_journal_id))

        asyncio.get_running_loop().call_later(0.05, apply)

    follower.ha.on_wait = on_wait


async def test_a_write_on_a_follower_runs_on_the_leader_and_is_readable_on_the_follower_after(pair):
    leader, follower = pair
    _tail_from(leader, follower)
    async with admin_channel(follower.address, ADMIN_TOKEN) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        call = stub.CreateDatabase(admin_pb2.CreateDatabaseRequest(db="d1"), timeout=5,
                                   metadata=(("x-client-tag", "t1"),))
        resp = await call
        trailing = await call.trailing_metadata()
        shown = await stub.ShowDatabases(admin_pb2.ShowDatabasesRequest(), timeout=5)

    assert resp.db_id == 1
    assert leader.admin.dbs == ["d1"]
    assert [c[0] for c in follower.admin.calls] == ["ShowDatabases"], "the write ran on the follower"
    method, metadata = leader.admin.calls[0]
    assert method == "CreateDatabase"
    assert metadata["authorization"] == f"Bearer {ADMIN_TOKEN}"  # the caller's token, forwarded
    assert metadata["x-client-tag"] == "t1"
    assert metadata[FORWARDED_BY_HEADER] == follower.address
    assert follower.ha.waits and follower.ha.waits[0][0] == 1  # waited for the leader's journal id
    assert metadata_value(trailing, JOURNAL_ID_HEADER) == "1"
    assert metadata_value(trailing, LEADER_ADDRESS_HEADER) == leader.address
    assert [d.name for d in shown.databases] == ["d1"]  # read-your-write on the follower


async def test_a_follower_that_does_not_catch_up_says_the_write_is_done(pair):
    leader, follower = pair
    follower.interceptor._replay_wait_s = 0.2  # the fake never replays
    async with admin_channel(follower.address, ADMIN_TOKEN) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await admin_pb2_grpc.AdminServiceStub(channel).CreateDatabase(
                admin_pb2.CreateDatabaseRequest(db="d1"), timeout=5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "journal id 1" in err.value.details() and "the write is done" in err.value.details()
    assert leader.admin.dbs == ["d1"]


async def test_the_leaders_error_comes_back_through_the_follower(pair):
    leader, follower = pair
    _tail_from(leader, follower)
    leader.admin.dbs.append("d1")
    async with admin_channel(follower.address, ADMIN_TOKEN) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await admin_pb2_grpc.AdminServiceStub(channel).CreateDatabase(
                admin_pb2.CreateDatabaseRequest(db="d1"), timeout=5)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "database 'd1' already exists" in err.value.details()


async def test_the_leader_tags_writes_with_its_journal_id_and_not_reads(pair):
    leader, _ = pair
    leader.ha.set_replayed(41)
    async with admin_channel(leader.address, ADMIN_TOKEN) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        write = stub.CreateDatabase(admin_pb2.CreateDatabaseRequest(db="d1"), timeout=5)
        await write
        refused = stub.CreateDatabase(admin_pb2.CreateDatabaseRequest(db="d1"), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError):
            await refused
        read = stub.ShowDatabases(admin_pb2.ShowDatabasesRequest(), timeout=5)
        await read
        assert metadata_value(await write.trailing_metadata(), JOURNAL_ID_HEADER) == "42"
        assert metadata_value(await refused.trailing_metadata(), JOURNAL_ID_HEADER) == "42"  # errors too
        assert metadata_value(await read.trailing_metadata(), JOURNAL_ID_HEADER) is None


async def test_reads_on_a_follower_are_answered_there(pair):
    leader, follower = pair
    follower.admin.dbs = ["only-here"]
    async with admin_channel(follower.address, ADMIN_TOKEN) as channel:
        shown = await admin_pb2_grpc.AdminServiceStub(channel).ShowDatabases(
            admin_pb2.ShowDatabasesRequest(), timeout=5)
    assert [d.name for d in shown.databases] == ["only-here"]
    assert leader.admin.calls == []


async def test_a_write_without_a_known_leader_is_unavailable_naming_the_fes(pair):
    leader, follower = pair
    follower.ha.become(FeRole.FOLLOWER, None)
    async with admin_channel(follower.address, ADMIN_TOKEN) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await admin_pb2_grpc.AdminServiceStub(channel).CreateDatabase(
                admin_pb2.CreateDatabaseRequest(db="d1"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no leader FE is known" in err.value.details()
    assert follower.address in err.value.details() and leader.address in err.value.details()
    assert leader.admin.calls == []


async def test_a_forwarded_write_is_never_forwarded_again(pair):
    """Two followers that each think the other leads answer UNAVAILABLE instead of bouncing."""
    leader, follower = pair
    leader.ha.become(FeRole.FOLLOWER, follower.address)  # stale: it believes the follower leads
    async with admin_channel(follower.address, ADMIN_TOKEN) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await admin_pb2_grpc.AdminServiceStub(channel).CreateDatabase(
                admin_pb2.CreateDatabaseRequest(db="d1"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "leadership just moved" in err.value.details()
    assert leader.admin.calls == [] and follower.admin.calls == []


async def test_the_admin_token_is_still_checked_on_a_follower(pair):
    leader, follower = pair
    async with admin_channel(follower.address, "wrong") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await admin_pb2_grpc.AdminServiceStub(channel).CreateDatabase(
                admin_pb2.CreateDatabaseRequest(db="d1"), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert leader.admin.calls == []


async def test_frontend_service_on_a_follower_names_the_leader_and_does_not_run(pair):
    leader, follower = pair
    async with cluster_channel(follower.address, TOKEN) as channel:
        stub = frontend_pb2_grpc.FrontendServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Heartbeat(frontend_pb2.HeartbeatRequest(backend_id=1), timeout=5)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert leader.address in err.value.details() and "not the leader" in err.value.details()
        assert metadata_value(err.value.trailing_metadata(), LEADER_ADDRESS_HEADER) == leader.address

        follower.ha.become(FeRole.FOLLOWER, None)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Heartbeat(frontend_pb2.HeartbeatRequest(backend_id=1), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert metadata_value(err.value.trailing_metadata(), LEADER_ADDRESS_HEADER) == ""
    assert follower.frontend.heartbeats == 0
    async with cluster_channel(leader.address, TOKEN) as channel:
        await frontend_pb2_grpc.FrontendServiceStub(channel).Heartbeat(
            frontend_pb2.HeartbeatRequest(backend_id=1), timeout=5)
    assert leader.frontend.heartbeats == 1


def test_every_admin_method_is_classified_read_or_write():
    check_classified()
    assert set(ADMIN_ACCESS) == set(admin_methods())
    missing = dict(ADMIN_ACCESS)
    missing.pop("CreateTable")
    with pytest.raises(ValueError, match="unclassified: CreateTable"):
        check_classified(missing)
    with pytest.raises(ValueError, match="unclassified: CreateTable"):
        LeaderInterceptor(FakeHa("127.0.0.1:1"), access=missing)


def test_writes_are_unary_so_they_can_be_forwarded_as_bytes():
    service = admin_pb2.DESCRIPTOR.services_by_name["AdminService"]
    streaming = [m.name for m in service.methods if ADMIN_ACCESS[m.name] is Access.WRITE
                 and (m.client_streaming or m.server_streaming)]
    assert streaming == []


def test_the_classification_of_state_changing_methods():
    writes = {n for n, a in ADMIN_ACCESS.items() if a is Access.WRITE}
    assert {"CreateDatabase", "DropDatabase", "CreateTable", "DropTable", "AlterTable", "StreamLoad",
            "CreateRoutineLoad", "AlterRoutineLoad", "PauseRoutineLoad", "ResumeRoutineLoad",
            "StopRoutineLoad", "SetConfig", "RepairTable", "CancelRepairTable", "CheckConsistency",
            "DecommissionBackend", "DropBackend"} == writes
    assert all(n.startswith(("Show", "Describe", "Query")) for n, a in ADMIN_ACCESS.items() if a is Access.READ)
