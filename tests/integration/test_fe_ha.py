"""FE high availability end to end: 3 etcd members, 3 FEs, 1 BE (``make cluster FES=3``)."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from deploy.cluster import ClusterSpec, LocalCluster
from deploy.ports import free_ports
from tests.support import assert_eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def ha_cluster(tmp_path) -> Iterator[LocalCluster]:
    ports = free_ports(4)
    cluster = LocalCluster(os.path.join(tmp_path, "ha"))
    spec = ClusterSpec(bes=1, fes=3, fe_ports=ports[:3], be_ports=ports[3:], with_broker=False,
                       fe_config={"heartbeat_timeout_second": "3", "fe_leader_lease_second": "3"})
    try:
        cluster.start(spec, timeout_s=90)
        yield cluster
    finally:
        cluster.stop()


def databases(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        resp = admin_pb2_grpc.AdminServiceStub(channel).ShowDatabases(admin_pb2.ShowDatabasesRequest(), timeout=3)
        return {row.name for row in resp.databases}


def create_database(address: str, db: str) -> None:
    with grpc.insecure_channel(address) as channel:
        admin_pb2_grpc.AdminServiceStub(channel).CreateDatabase(admin_pb2.CreateDatabaseRequest(db=db), timeout=10)


def sees(address: str, wanted: set[str]) -> bool:
    try:
        return wanted <= databases(address)
    except grpc.RpcError:
        return False


def created(address: str, db: str) -> bool:
    try:
        create_database(address, db)
        return True
    except grpc.RpcError as exc:
        assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), exc
        return False


def test_one_leader_replication_failover_and_rejoin(ha_cluster):
    cluster = ha_cluster
    spec = cluster.spec
    leader = assert_eventually(cluster.leader, timeout_s=20, what="a leader")
    name, address = leader
    followers = [n for n in spec.fe_names() if n != name]
    assert len(followers) == 2

    # a write on the leader is replayed by every follower
    create_database(address, "ha_db1")
    for follower in followers:
        assert_eventually(lambda f=follower: sees(cluster.fe_address_of(f), {"ha_db1"}), timeout_s=10,
                          what=f"{follower} to replay CreateDatabase")

    # SIGKILL the leader: a follower takes over within about a lease and a half
    killed_at = time.monotonic()
    cluster.kill_node(name)
    new = assert_eventually(lambda: (lead := cluster.leader()) and lead[0] != name and lead, timeout_s=15,
                            what="another FE to lead")
    failover_s = time.monotonic() - killed_at
    assert failover_s < 7, f"failover took {failover_s:.1f} s with a 3 s lease"
    assert new[0] in followers
    assert_eventually(lambda: created(new[1], "ha_db2"), timeout_s=10, what="a write on the new leader")
    survivor = next(f for f in followers if f != new[0])
    assert_eventually(lambda: sees(cluster.fe_address_of(survivor), {"ha_db1", "ha_db2"}), timeout_s=10,
                      what="the other follower to follow the new leader")

    # the killed FE comes back as a follower with the same catalog
    cluster.start_node(name)
    assert_eventually(lambda: sees(cluster.fe_address_of(name), {"ha_db1", "ha_db2"}), timeout_s=30,
                      what=f"{name} to come back with the catalog")
    assert cluster.leader() == new


def test_every_fe_shows_its_http_port_and_answers_bootstrap(ha_cluster):
    """SHOW FRONTENDS' HttpPort is each FE's own (from its member record in etcd), and each FE's
    /api/bootstrap says it serves, as a leader or as a follower that knows its leader."""
    spec = ha_cluster.spec
    wanted = {f"fe{i}": spec.fe_http_port_of(i) for i in range(spec.fes)}

    def listed() -> dict[str, int]:
        with grpc.insecure_channel(ha_cluster.fe_address) as channel:
            rows = admin_pb2_grpc.AdminServiceStub(channel).ShowFrontends(
                admin_pb2.ShowFrontendsRequest(), timeout=3).frontends
        got = {r.name: r.http_port for r in rows}
        assert got == wanted, f"ShowFrontends HttpPort {got}, expected {wanted}"
        return got

    assert_eventually(listed, timeout_s=20, what="every FE's HttpPort in ShowFrontends")

    def bootstrapped() -> set[str]:
        roles = set()
        for name in wanted:
            with urllib.request.urlopen(f"{ha_cluster.fe_http_url(name)}/api/bootstrap", timeout=3) as resp:
                body = json.load(resp)
            assert resp.status == 200 and body["status"] == "OK", body
            roles.add(body["role"])
        return roles

    assert assert_eventually(bootstrapped, timeout_s=20, what="/api/bootstrap OK on every FE") == {"LEADER", "FOLLOWER"}
