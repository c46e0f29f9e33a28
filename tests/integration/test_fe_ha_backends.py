"""BE liveness with FE high availability (``make cluster FES=3``): BEs heartbeat only to the leader,
which journals each BE's liveness transitions; followers apply them. So a follower shows the BEs
alive (and plans its reads on them), sees a killed BE go dead, and a follower promoted after the
leader's SIGKILL keeps the BEs alive instead of starting with every BE dead (fe/system/backends.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import grpc
import pytest

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from deploy.cluster import ClusterSpec, LocalCluster
from deploy.ports import free_ports
from tests.support import assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TIMEOUT_S = 3  # heartbeat_timeout_second
LEASE_S = 3  # fe_leader_lease_second


@pytest.fixture
def ha_cluster(tmp_path) -> Iterator[LocalCluster]:
    ports = free_ports(5)
    cluster = LocalCluster(os.path.join(tmp_path, "ha"))
    spec = ClusterSpec(bes=2, fes=3, fe_ports=ports[:3], be_ports=ports[3:], with_broker=False,
                       fe_config={"heartbeat_timeout_second": str(TIMEOUT_S),
                                  "fe_leader_lease_second": str(LEASE_S)})
    try:
        cluster.start(spec, timeout_s=90)
        yield cluster
    finally:
        cluster.stop()


def admin(address: str, method: str, request, timeout_s: float = 5.0):
    with grpc.insecure_channel(address) as channel:
        return getattr(admin_pb2_grpc.AdminServiceStub(channel), method)(request, timeout=timeout_s)


def backends(address: str, timeout_s: float = 2.0) -> dict[int, admin_pb2.BackendRow]:
    """The BEs by port, as the FE at ``address`` shows them."""
    resp = admin(address, "ShowBackends", admin_pb2.ShowBackendsRequest(), timeout_s)
    return {row.be_port: row for row in resp.backends}


def alive_ports(address: str) -> set[int]:
    return {port for port, row in backends(address).items() if row.alive}


def wall_s(shown: str) -> float:
    """A LastHeartbeat as ShowBackends prints it ('YYYY-MM-DD HH:MM:SS', local time)."""
    return time.mktime(time.strptime(shown, "%Y-%m-%d %H:%M:%S"))


def query_reads_from(address: str) -> list[str]:
    resp = admin(address, "Query", admin_pb2.QueryRequest(db="d", table="t", limit=0))
    assert resp.count == 0
    return list(resp.read_from)


def test_followers_follow_backend_liveness_and_a_new_leader_inherits_it(ha_cluster):
    cluster = ha_cluster
    spec = cluster.spec
    be0, be1 = spec.be_port_of(0), spec.be_port_of(1)
    leader, leader_address = assert_eventually(cluster.leader, timeout_s=20, what="a leader")
    followers = [n for n in spec.fe_names() if n != leader]

    # every follower shows both BEs alive, with the disk the leader heard of
    for name in followers:
        address = cluster.fe_address_of(name)
        assert_eventually(lambda a=address: alive_ports(a) == {be0, be1}, timeout_s=10,
                          what=f"{name} to show both BEs alive")
        rows = backends(address)
        assert all(row.total_capacity != "0 B" and not row.err_msg for row in rows.values()), rows

    # a follower plans reads on the BEs it knows alive
    admin(leader_address, "CreateDatabase", admin_pb2.CreateDatabaseRequest(db="d"))
    admin(leader_address, "CreateTable", admin_pb2.CreateTableRequest(
        db="d", table="t", columns=[admin_pb2.ColumnDef(name="id", type="BIGINT")], distributed_by=["id"], buckets=2,
        properties={"replication_num": "2"}), timeout_s=30)
    follower = cluster.fe_address_of(followers[0])
    assert_eventually(lambda: query_reads_from(follower), timeout_s=10, what="a Query on a follower")

    # a killed BE goes dead on the followers too, within heartbeat_timeout_second and a little
    killed_be_at = time.monotonic()
    cluster.kill_node("be1")
    for name in followers:
        address = cluster.fe_address_of(name)
        assert_eventually(lambda a=address: alive_ports(a) == {be0}, timeout_s=TIMEOUT_S + 5,
                          what=f"{name} to show be1 dead")
    assert time.monotonic() - killed_be_at < TIMEOUT_S + 5
    row = backends(follower)[be1]
    assert "heartbeat_timeout_second" in row.err_msg, row
    be0_id = backends(follower)[be0].backend_id
    reads = query_reads_from(follower)
    assert reads and all(r.endswith(f"from backend {be0_id}") for r in reads), reads

    # SIGKILL the leader. Sample every surviving FE from the kill until the new leader has led for
    # longer than heartbeat_timeout_second: be0 is alive in every answer (no all-dead gap at the
    # promotion, no dead blip once the grace ends), be1 stays dead
    killed_at, killed_wall = time.monotonic(), time.time()
    cluster.kill_node(leader)
    new_leader, led_since = None, 0.0
    samples: dict[str, int] = dict.fromkeys(followers, 0)
    after_promotion = 0
    while True:
        assert time.monotonic() - killed_at < 30, f"no new leader within 30 s ({samples})"
        if new_leader is None and (found := cluster.leader()) and found[0] != leader:
            new_leader, led_since = found[0], time.monotonic()
        for name in followers:
            try:
                rows = backends(cluster.fe_address_of(name), timeout_s=1.0)
            except grpc.RpcError:
                continue
            assert rows[be0].alive and not rows[be1].alive, (name, time.monotonic() - killed_at, rows)
            samples[name] += 1
            if name == new_leader:
                after_promotion += 1
        if new_leader is not None and time.monotonic() - led_since > TIMEOUT_S + 1:
            break
    assert new_leader in followers and after_promotion >= 10, (new_leader, samples)
    roles = {f.name: f.role for f in admin(cluster.fe_address_of(new_leader), "ShowFrontends",
                                           admin_pb2.ShowFrontendsRequest()).frontends}
    assert roles[new_leader] == "LEADER", roles
    # be0 found the new leader and heartbeats to it (the follower-era view was be0's first heartbeat)
    assert wall_s(backends(cluster.fe_address_of(new_leader))[be0].last_heartbeat) >= int(killed_wall)
    survivor = next(n for n in followers if n != new_leader)
    assert alive_ports(cluster.fe_address_of(survivor)) == {be0}
