"""Issue 12, 3.4: ids handed out before an FE crash are never handed out again.

A CREATE TABLE that a BE fails part-way has sent its table, partition, tablet and replica ids to
the other BEs, then rolled back: no record names those ids. The FE is SIGKILLed right after. The
next CREATE TABLE must not get any of them again (a BE that kept an orphan of the rolled-back
table, or a clone destination that got a replica id before its record, would hold a replica the
FE then confuses with a new one)."""

from __future__ import annotations

import pytest

from tests.support import Admin, assert_eventually

pytestmark = pytest.mark.integration

COLUMNS = [{"name": "id", "type": "BIGINT", "not_null": True}, {"name": "v", "type": "VARCHAR(16)"}]
BUCKETS = 2
REPLICAS = 3
IDS_PER_TABLE = 1 + 1 + BUCKETS + BUCKETS * REPLICAS  # table, partition, tablets, replicas


def table_req(name: str) -> dict:
    return {"db": "d", "table": name, "columns": COLUMNS, "duplicate_key": ["id"], "distributed_by": ["id"],
            "buckets": BUCKETS, "properties": {"replication_num": str(REPLICAS)}}


def table_ids(admin: Admin, name: str) -> set[int]:
    desc = admin.call("DescribeTable", db="d", table=name)
    ids = {int(desc["table_id"])} | {int(p["partition_id"]) for p in desc["partitions"]}
    for row in admin.call("ShowTablets", db="d", table=name)["tablets"]:
        ids |= {int(row["tablet_id"]), int(row["replica_id"])}
    assert len(ids) == IDS_PER_TABLE, ids
    return ids


def test_ids_of_a_rolled_back_create_are_not_reused_after_an_fe_sigkill(cluster_factory):
    # a killed BE stays alive in the FE's eyes for 60 s: the CREATE TABLE below is placed on it
    cluster = cluster_factory(3, fe_config={"heartbeat_timeout_second": "60"})
    admin = Admin(cluster.fe_address)
    db_id = int(admin.call("CreateDatabase", db="d")["db_id"])
    admin.call("CreateTable", table_req("t1"))
    before = table_ids(admin, "t1") | {db_id}

    cluster.kill_node("be2")
    err = admin.error("CreateTable", table_req("t_failed"))
    assert err.code == "Unavailable" and "rolled back" in err.message, err
    # the rolled-back create took the next IDS_PER_TABLE ids and sent them to be0 and be1
    given_away = set(range(max(before) + 1, max(before) + 1 + IDS_PER_TABLE))

    cluster.kill_node("fe")
    cluster.start_node("fe")
    cluster.start_node("be2")
    assert_eventually(admin.answers, timeout_s=30, what="the restarted FE to answer")
    assert_eventually(lambda: cluster.alive_count() == 3, timeout_s=30, what="every BE alive at the restarted FE")

    admin.call("CreateTable", table_req("t2"))
    after = table_ids(admin, "t2")
    assert not after & (before | given_away), \
        f"ids handed out again after the FE crash: {sorted(after & (before | given_away))}"
    assert min(after) > max(given_away)
