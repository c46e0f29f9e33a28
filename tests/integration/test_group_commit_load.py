"""Issue 14, item 5: group commit (Doris 2.1) of Stream Loads on a real cluster.

Many small loads into one table within group_commit_interval_ms share one txn; each answers its
own counts; a used label answers "Label Already Exists"; async_mode answers after the BE's WAL
write, and a coordinator SIGKILLed before the group is visible loads every answered row exactly
once after its restart (the WAL replay of be/load/group_commit.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from common.gen.tabletsim.v1 import admin_pb2_grpc, types_pb2
from common.rpc import admin_channel
from deploy.cluster import LocalCluster
from tests.integration.conftest import ClusterFactory
from tests.integration.test_debug_points import Debug
from tests.support import Admin, assert_eventually, exactly_once, query_ids

pytestmark = pytest.mark.integration

COLUMNS = [{"name": "id", "type": "BIGINT", "not_null": True}]


@pytest.fixture(scope="module")
def gcluster(tmp_path_factory) -> Iterator[LocalCluster]:
    factory = ClusterFactory(str(tmp_path_factory.mktemp("group_commit")))
    try:
        yield factory(3)
    finally:
        factory.stop_all()


def create_table(admin: Admin, table: str, **props: str) -> None:
    admin.call("CreateDatabase", db="g", if_not_exists=True)
    admin.call("CreateTable", db="g", table=table, columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=2, properties={"replication_num": "3", **props})


def load_all(fe: str, table: str, bodies: dict[str, bytes], **fields) -> dict[str, types_pb2.StreamLoadResult]:
    """Every body (by label) as its own StreamLoad, all at once; their results by label."""

    async def run() -> dict[str, types_pb2.StreamLoadResult]:
        async with admin_channel(fe) as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            results = await asyncio.gather(*(admin.StreamLoad(types_pb2.StreamLoadRequest(
                db="g", table=table, label=label, data=body, **fields), timeout=120)
                for label, body in bodies.items()))
        return dict(zip(bodies, results, strict=True))

    return asyncio.run(run())


def be_node(cluster: LocalCluster, admin: Admin, backend_id: int) -> str:
    ports = {int(b["backend_id"]): b["be_port"] for b in admin.call("ShowBackends")["backends"]}
    for i in range(cluster.spec.bes):
        if cluster.spec.be_port_of(i) == ports[backend_id]:
            return f"be{i}"
    raise AssertionError(f"no node for backend {backend_id}")


def test_group_commit_properties_are_validated_shown_and_altered(gcluster):
    admin = Admin(gcluster.fe_address)
    admin.call("CreateDatabase", db="g", if_not_exists=True)
    err = admin.error("CreateTable", db="g", table="bad", columns=COLUMNS, distributed_by=["id"],
                      properties={"group_commit": "fast_mode"})
    assert err.code == "InvalidArgument"
    assert "off_mode, sync_mode, async_mode" in err.message
    err = admin.error("CreateTable", db="g", table="bad", columns=COLUMNS, distributed_by=["id"],
                      properties={"group_commit_interval_ms": "0"})
    assert err.code == "InvalidArgument" and "group_commit_interval_ms" in err.message
    create_table(admin, "props", group_commit="SYNC_MODE", group_commit_interval_ms="20")
    described = admin.call("DescribeTable", db="g", table="props")
    assert described["properties"]["group_commit"] == "sync_mode"
    assert described["properties"]["group_commit_interval_ms"] == "20"
    assert '"group_commit" = "sync_mode"' in described["create_table_stmt"]
    altered = admin.call("AlterTable", db="g", table="props", properties={"group_commit": "async_mode"})
    assert altered["properties"]["group_commit"] == "async_mode"
    assert altered["properties"]["write_quorum"] == "MAJORITY"  # the others stay
    err = admin.error("StreamLoad", db="g", table="props", data="MQo=", group_commit="later_mode")
    assert err.code == "InvalidArgument" and "off_mode, sync_mode, async_mode" in err.message


def test_sync_mode_50_concurrent_loads_share_few_txns_with_their_own_counts(gcluster):
    admin = Admin(gcluster.fe_address)
    create_table(admin, "s", group_commit="sync_mode")
    # load i carries i % 3 + 1 rows; load 7 has one bad row among its rows and no max_filter_ratio
    bodies = {f"s-{i}": b"".join(b"%d\n" % (i * 10 + j) for j in range(i % 3 + 1)) for i in range(50)}
    bodies["s-7"] += b"not-a-number\n"
    results = load_all(gcluster.fe_address, "s", bodies)

    bad = results.pop("s-7")
    assert bad.status == "Fail" and "max_filter_ratio" in bad.message, bad
    assert (bad.number_total_rows, bad.number_filtered_rows, bad.number_loaded_rows) == (3, 1, 0)
    assert bad.filtered_rows
    for label, res in results.items():
        i = int(label.split("-")[1])
        assert res.status == "Success", res
        assert res.group_commit == "sync_mode"
        assert (res.number_total_rows, res.number_loaded_rows, res.number_filtered_rows) == (i % 3 + 1,) * 2 + (0,)
    txn_ids = {r.txn_id for r in results.values()}
    assert len(txn_ids) <= 10, f"50 concurrent loads took {len(txn_ids)} txns"
    rows = admin.call("ShowTransactions", db="g", limit=1000)["transactions"]
    by_id = {int(t["transaction_id"]): t for t in rows}
    for txn_id in txn_ids:
        assert by_id[txn_id]["transaction_status"] == "VISIBLE"
        assert by_id[txn_id]["label"].startswith("group_commit_")
    expected = [int(line) for label, body in bodies.items() if label != "s-7" for line in body.split()]
    missing, duplicated = exactly_once(query_ids(gcluster.fe_address, "g", "s"), expected)
    assert not missing and not duplicated
    assert len(query_ids(gcluster.fe_address, "g", "s")) == len(expected)

    # a used label: its own "Label Already Exists", naming the group txn that holds it
    again = load_all(gcluster.fe_address, "s", {"s-3": b"999\n", "s-new": b"1000\n"})
    assert again["s-3"].status == "Label Already Exists"
    assert again["s-3"].txn_id == results["s-3"].txn_id
    assert again["s-3"].existing_job_status == "VISIBLE"
    assert f"relate to txn [{results['s-3'].txn_id}]" in again["s-3"].message
    assert again["s-new"].status == "Success"
    # the failed member's label was never used: it loads now
    retry = load_all(gcluster.fe_address, "s", {"s-7": b"700\n"})
    assert retry["s-7"].status == "Success", retry


def test_async_mode_answers_first_and_the_rows_become_visible(gcluster):
    admin = Admin(gcluster.fe_address)
    create_table(admin, "a")  # off_mode: the load's own group_commit says async
    bodies = {f"a-{i}": b"%d\n" % i for i in range(30)}
    results = load_all(gcluster.fe_address, "a", bodies, group_commit="ASYNC_MODE")
    assert all(r.status == "Success" and r.group_commit == "async_mode" for r in results.values()), results
    assert len({r.txn_id for r in results.values()}) <= 6
    assert_eventually(lambda: len(query_ids(gcluster.fe_address, "g", "a")) == 30, timeout_s=30,
                      what="the async loads visible")
    missing, duplicated = exactly_once(query_ids(gcluster.fe_address, "g", "a"), range(30))
    assert not missing and not duplicated
    dup = load_all(gcluster.fe_address, "a", {"a-4": b"4\n"}, group_commit="async_mode")["a-4"]
    assert dup.status == "Label Already Exists" and dup.txn_id == results["a-4"].txn_id


def test_off_mode_loads_are_plain_stream_loads(gcluster):
    admin = Admin(gcluster.fe_address)
    create_table(admin, "o")
    results = load_all(gcluster.fe_address, "o", {f"o-{i}": b"%d\n" % i for i in range(6)})
    assert all(r.status == "Success" and not r.group_commit for r in results.values())
    assert len({r.txn_id for r in results.values()}) == 6  # one txn each


def test_async_mode_coordinator_killed_before_visible_loads_every_answered_row_once(cluster_factory):
    cluster = cluster_factory(3, debug_points=True, fe_config={"heartbeat_timeout_second": "5"})
    admin = Admin(cluster.fe_address)
    create_table(admin, "k", group_commit="async_mode")
    probe = load_all(cluster.fe_address, "k", {"k-probe": b"100000\n"})["k-probe"]
    assert probe.status == "Success"
    coordinator = int(probe.coordinator.split(": ")[1])
    node = be_node(cluster, admin, coordinator)
    debug = Debug(cluster.be_address(int(node[2:])), cluster.spec.cluster_token)
    # the coordinator's commits stall: the groups are answered (in the WAL) but never visible
    debug.add(point="rpc.out", method="*FrontendService/CommitTxn", action="DELAY", delay_ms=120_000)
    assert_eventually(lambda: len(query_ids(cluster.fe_address, "g", "k")) == 1, timeout_s=30,
                      what="the probe row visible")

    bodies = {f"k-{i}": b"%d\n" % i for i in range(40)}
    results = load_all(cluster.fe_address, "k", bodies)
    assert all(r.status == "Success" for r in results.values()), results
    assert len(query_ids(cluster.fe_address, "g", "k")) == 1  # answered, not yet visible

    cluster.kill_node(node)
    cluster.start_node(node)
    assert_eventually(lambda: len(query_ids(cluster.fe_address, "g", "k")) == 41, timeout_s=60, interval_s=0.5,
                      what="every answered row visible after the coordinator's restart")
    missing, duplicated = exactly_once(query_ids(cluster.fe_address, "g", "k"), [*range(40), 100000])
    assert not missing and not duplicated
    # the labels are the group's: a retry of one is refused, the rows stay once
    again = load_all(cluster.fe_address, "k", {"k-5": b"5\n"})["k-5"]
    assert again.status == "Label Already Exists", again
    assert len(query_ids(cluster.fe_address, "g", "k")) == 41
