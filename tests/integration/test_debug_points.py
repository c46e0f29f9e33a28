"""Debug points (issue 12, section 1), driven with grpcurl as an operator would.

One cluster started with debug points (an FE and 3 BEs) is shared by the tests below, which run
in file order: DebugService's door (token, reflection), its rules, an FE<->BE partition (before
any table exists, so nothing is scheduled to repair), then two named code points under Stream
Load with exactly-once checked. A second, small cluster without the flag shows the service absent.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator

import pytest

from common.debug import BE_POINTS, FE_POINTS
from deploy.cluster import LocalCluster
from tests.integration.conftest import ClusterFactory
from tests.support import Admin, RpcError, assert_eventually, exactly_once, grpcurl, query_ids

pytestmark = pytest.mark.integration

DEBUG = "tabletsim.v1.DebugService"
PROTO_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "proto")
COLUMNS = [{"name": "id", "type": "BIGINT", "not_null": True}, {"name": "msg", "type": "VARCHAR(32)"}]


class Debug:
    """DebugService of one node through the real grpcurl, with the cluster token."""

    def __init__(self, address: str, token: str) -> None:
        self.address = address
        self.token = token

    def call(self, method: str, **fields) -> dict:
        res = grpcurl(self.address, f"{DEBUG}/{method}", fields, headers={"x-cluster-token": self.token},
                      timeout_s=15)
        if not res.ok:
            raise RpcError(method, res.stderr)
        return res.json

    def add(self, **rule) -> dict:
        return self.call("AddDebugRule", rule=rule)["rule"]

    def error(self, method: str, **fields) -> RpcError:
        try:
            result = self.call(method, **fields)
        except RpcError as exc:
            return exc
        raise AssertionError(f"{method} succeeded but should have failed: {result}")


@pytest.fixture(scope="module")
def dcluster(tmp_path_factory) -> Iterator[LocalCluster]:
    factory = ClusterFactory(str(tmp_path_factory.mktemp("debug_points")))
    try:
        yield factory(3, debug_points=True)
    finally:
        factory.stop_all()


def fe_debug(cluster: LocalCluster) -> Debug:
    return Debug(cluster.fe_address, cluster.spec.cluster_token)


def be_debug(cluster: LocalCluster, i: int) -> Debug:
    return Debug(cluster.be_address(i), cluster.spec.cluster_token)


def csv(start: int, n: int) -> str:
    return base64.b64encode("".join(f"{i},m{i}\n" for i in range(start, start + n)).encode()).decode()


def backend_alive(admin: Admin, be_port: int) -> bool:
    rows = [b for b in admin.call("ShowBackends")["backends"] if b["be_port"] == be_port]
    assert rows, f"no backend on port {be_port}"
    return bool(rows[0].get("alive", False))  # grpcurl leaves false out


# ------------------------------------------------------------------ off by default


def test_debug_service_is_absent_without_the_flag(cluster_factory):
    cluster = cluster_factory(1)
    token = {"x-cluster-token": cluster.spec.cluster_token}
    schema = ["-import-path", os.path.abspath(PROTO_DIR), "-proto", "tabletsim/v1/debug.proto"]
    for address in (cluster.fe_address, cluster.be_address(0)):
        listed = grpcurl(address)
        assert listed.ok and DEBUG not in listed.stdout, listed.stdout
        res = grpcurl(address, f"{DEBUG}/ListDebugRules", {}, headers=token, extra=schema)
        assert not res.ok and "Code: Unimplemented" in res.stderr, res.stderr


# ------------------------------------------------------------------ the service


def test_debug_service_is_listed_and_needs_the_cluster_token(dcluster):
    for address in (dcluster.fe_address, dcluster.be_address(0)):
        assert DEBUG in grpcurl(address).stdout
        described = grpcurl(address, "describe")  # every service, through reflection
        assert described.ok and "rpc AddDebugRule" in described.stdout, described.stderr
        for headers in ({}, {"x-cluster-token": "wrong"}):
            res = grpcurl(address, f"{DEBUG}/ListDebugRules", {}, headers=headers)
            assert not res.ok and "Code: Unauthenticated" in res.stderr, res.stderr


def test_add_list_remove_and_clear_rules(dcluster):
    fe, be = fe_debug(dcluster), be_debug(dcluster, 1)
    listed = fe.call("ListDebugRules")
    assert listed["node"] == dcluster.fe_address and listed["points"] == list(FE_POINTS)
    assert "rules" not in listed
    assert be.call("ListDebugRules")["points"] == list(BE_POINTS)
    assert be.call("ListDebugRules")["node"] == dcluster.be_address(1)

    # harmless rules: they match nothing the cluster calls
    a = fe.add(point="rpc.in", method="/tabletsim.v1.AdminService/NoSuchMethod", action="DELAY", delay_ms=50,
               probability=0.5, expire_after_ms=600_000)
    b = fe.add(id="publish-slow", point="rpc.out", peer="127.0.0.1:1", action="FAIL",
               fail_code="RESOURCE_EXHAUSTED", fail_message="no room")
    assert a["id"] and int(a["expires_at_ms"]) > 0 and a["probability"] == 0.5
    assert b["id"] == "publish-slow" and b["fail_code"] == "RESOURCE_EXHAUSTED"
    rules = fe.call("ListDebugRules")["rules"]
    assert [(r["id"], r["point"], r["action"]) for r in rules] == [
        (a["id"], "rpc.in", "DELAY"), ("publish-slow", "rpc.out", "FAIL")]

    for rule, words in [
        ({"point": "be.clone.middle", "action": "DROP"}, ["unknown point 'be.clone.middle'", "fe.txn.commit.after_journal"]),
        ({"point": "rpc", "action": "DELAY"}, ["delay_ms > 0"]),
        ({"point": "rpc", "action": "FAIL", "fail_code": "NOPE"}, ["unknown fail_code 'NOPE'", "UNAVAILABLE"]),
        ({"point": "rpc", "action": "DROP", "probability": 1.5}, ["outside (0, 1]"]),
        ({"point": "rpc", "action": "DROP", "method": "Heartbeat"}, ["not a full method pattern"]),
        ({"point": "fe.txn.commit.before_journal", "action": "DROP", "peer": "127.0.0.1:1"}, ["has no peer"]),
    ]:
        err = fe.error("AddDebugRule", rule=rule)
        assert err.code == "InvalidArgument", err
        for word in words:
            assert word in err.message, err.message

    assert fe.call("RemoveDebugRule", id="no-such-rule") == {}  # removed: false (left out by grpcurl)
    assert fe.call("RemoveDebugRule", id="publish-slow") == {"removed": True}
    assert fe.call("ClearDebugRules") == {"removed": 1}
    assert "rules" not in fe.call("ListDebugRules")


def test_fe_be_partition_makes_the_be_dead_and_clearing_brings_it_back(dcluster):
    admin = Admin(dcluster.fe_address)
    fe, be0 = fe_debug(dcluster), be_debug(dcluster, 0)
    be_port = dcluster.spec.be_port_of(0)
    assert backend_alive(admin, be_port)
    # a network partition between two nodes: one DROP rule on each side
    fe.add(point="rpc", peer=dcluster.be_address(0), action="DROP")
    be0.add(point="rpc", peer=dcluster.fe_address, action="DROP")
    try:
        assert_eventually(lambda: not backend_alive(admin, be_port), timeout_s=20,
                          what=f"the FE to see the BE on {be_port} dead")
        assert all(backend_alive(admin, dcluster.spec.be_port_of(i)) for i in (1, 2))
        hits = [int(r.get("hits", 0)) for r in be0.call("ListDebugRules")["rules"]]
        assert hits[0] > 0, "the BE's heartbeats were not dropped"
    finally:
        fe.call("ClearDebugRules")
        be0.call("ClearDebugRules")
    assert_eventually(lambda: backend_alive(admin, be_port), timeout_s=20,
                      what=f"the BE on {be_port} alive again once the partition is healed")


# ------------------------------------------------------------------ named code points under loads


def _setup_table(admin: Admin) -> None:
    admin.call("CreateDatabase", db="dbg", if_not_exists=True)
    admin.call("CreateTable", db="dbg", table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=2, properties={"replication_num": "3", "write_quorum": "MAJORITY"}, if_not_exists=True)


def _load(admin: Admin, label: str, start: int, n: int) -> dict:
    return admin.call("StreamLoad", {"db": "dbg", "table": "t", "label": label, "data": csv(start, n),
                                     "params": {"column_separator": ","}}, timeout_s=120)


def test_fail_before_write_ack_fails_the_load_and_the_retry_loads_once(dcluster):
    admin = Admin(dcluster.fe_address)
    _setup_table(admin)
    bes = [be_debug(dcluster, i) for i in range(3)]
    for be in bes:  # every replica write a peer receives fails after storing the rows
        be.add(point="be.write.before_ack", action="FAIL", fail_code="INTERNAL", fail_message="disk on fire")
    try:
        err = admin.error("StreamLoad", {"db": "dbg", "table": "t", "label": "ack-1", "data": csv(0, 500),
                                         "params": {"column_separator": ","}})
        assert "disk on fire" in err.message and "write quorum" in err.message, err
    finally:
        for be in bes:
            be.call("ClearDebugRules")
    res = _load(admin, "ack-1", 0, 500)
    assert res["status"] == "Success" and int(res["number_loaded_rows"]) == 500, res
    assert exactly_once(query_ids(dcluster.fe_address, "dbg", "t"), range(500)) == ([], [])


def test_fail_after_commit_journal_is_an_error_but_the_txn_commits_once(dcluster):
    admin = Admin(dcluster.fe_address)
    _setup_table(admin)
    fe = fe_debug(dcluster)
    before = len(query_ids(dcluster.fe_address, "dbg", "t"))
    rule = fe.add(point="fe.txn.commit.after_journal", action="FAIL", fail_code="INTERNAL",
                  fail_message="the commit answer was lost")
    try:
        err = admin.error("StreamLoad", {"db": "dbg", "table": "t", "label": "journal-1", "data": csv(10_000, 300),
                                         "params": {"column_separator": ","}})
        assert err.code == "Internal" and "the commit answer was lost" in err.message, err
        hits = fe.call("ListDebugRules")["rules"][0]["hits"]
        assert int(hits) == 1
    finally:
        fe.call("RemoveDebugRule", id=rule["id"])
    # the txn was journaled as COMMITTED: it is published, and the label is taken
    assert_eventually(lambda: len(query_ids(dcluster.fe_address, "dbg", "t")) == before + 300, timeout_s=30,
                      what="the committed txn to become visible")
    again = _load(admin, "journal-1", 10_000, 300)
    assert again["status"] == "Label Already Exists", again
    assert again.get("existing_job_status") in ("COMMITTED", "VISIBLE"), again
    ids = query_ids(dcluster.fe_address, "dbg", "t")
    assert exactly_once(ids, [*range(500), *range(10_000, 10_300)]) == ([], [])
