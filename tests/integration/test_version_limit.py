"""Issue 11: loads into replicas at tablet_max_versions are refused with StarRocks' "Too many
versions" text - Stream Load answers Fail, a routine load job stays RUNNING and retries its task
with a backoff - and nothing is lost or loaded twice."""

from __future__ import annotations

import base64
import json
import re

import pytest

from deploy.cluster import LocalCluster
from tests.kafka_support import create_topic, produce, run
from tests.support import Admin, assert_eventually, exactly_once, query_ids

pytestmark = pytest.mark.integration

LIMIT = 5
# a small limit, and compaction effectively off: the version count only grows
BE_CONFIG = {"tablet_max_versions": str(LIMIT), "min_cumulative_compaction_num_singleton_deltas": "1000",
             "max_cumulative_compaction_num_singleton_deltas": "1000"}
FE_CONFIG = {"routine_load_task_consume_second": "1", "heartbeat_timeout_second": "3"}
REFUSAL = re.compile(rf"Too many versions\. tablet_id: (\d+), version_count: (\d+), limit: {LIMIT}")
COLUMNS = [{"name": "id", "type": "BIGINT", "not_null": True}, {"name": "msg", "type": "VARCHAR(64)"}]


def create_table(admin: Admin, table: str) -> str:
    """A one-tablet table (3 replicas, MAJORITY); returns its tablet id."""
    admin.call("CreateDatabase", db="d", if_not_exists=True)
    admin.call("CreateTable", db="d", table=table, columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=1, properties={"replication_num": "3", "write_quorum": "MAJORITY"})
    return admin.call("ShowTablets", db="d", table=table)["tablets"][0]["tablet_id"]


def count(admin: Admin, table: str) -> int:
    return int(admin.call("Query", db="d", table=table, limit=0)["count"])


def stream_load_one(admin: Admin, table: str, i: int) -> dict:
    data = base64.b64encode(f"{i},row-{i}\n".encode()).decode()
    return admin.call("StreamLoad", {"db": "d", "table": table, "label": f"{table}-{i}", "data": data},
                      timeout_s=120)


def tasks(admin: Admin) -> list[dict]:
    return admin.call("ShowRoutineLoadTask", db="d", name="job").get("tasks", [])


def job(admin: Admin) -> dict:
    return admin.call("ShowRoutineLoad", db="d", name="job")["jobs"][0]


def refused_task(admin: Admin) -> re.Match | None:
    return next((m for t in tasks(admin) if (m := REFUSAL.search(t.get("message", "")))), None)


def test_stream_load_fails_with_the_version_limit_message(cluster_factory):
    cluster = cluster_factory(3, fe_config=FE_CONFIG, be_config=BE_CONFIG)
    admin = Admin(cluster.fe_address)
    tablet_id = create_table(admin, "s")
    loaded, res = 0, {}
    for i in range(LIMIT + 2):  # the initial version counts: the limit is reached within LIMIT loads
        res = stream_load_one(admin, "s", i)
        if res["status"] == "Fail":
            break
        assert res["status"] == "Success", res
        loaded += 1
    assert res["status"] == "Fail", f"{LIMIT + 2} one-row loads all succeeded under tablet_max_versions={LIMIT}"
    assert 1 <= loaded < LIMIT
    m = REFUSAL.search(res["message"])
    assert m, res
    assert m.group(1) == tablet_id and int(m.group(2)) >= LIMIT
    # the quorum facts are kept beside the reason, not instead of it
    assert "reached 0 of the 2 replicas its write quorum needs" in res["message"]
    assert res.get("number_loaded_rows", "0") == "0"
    txn = admin.call("ShowTransactions", db="d", label=f"s-{loaded}")["transactions"][0]
    assert txn["transaction_status"] == "ABORTED" and "Too many versions" in txn["reason"]
    assert count(admin, "s") == loaded
    # refused again: nothing was added by the refused load
    again = stream_load_one(admin, "s", 100)
    assert again["status"] == "Fail" and REFUSAL.search(again["message"]).group(2) == m.group(2)
    # the BEs' reports show the same version count on every replica
    assert_eventually(
        lambda: all(r.get("version_count") == m.group(2) for r in admin.call("ShowTablets", db="d", table="s")["tablets"]),
        timeout_s=30, what=f"SHOW TABLETS version_count {m.group(2)} on every replica")
    # ... and their compaction status (none ran: compaction is off here)
    rows = assert_eventually(
        lambda: (rs := admin.call("ShowTablet", tablet_id=tablet_id)["replicas"])
        and all("cumulative_point" in r.get("compaction_status", {}) for r in rs) and rs,
        timeout_s=30, what="every replica's compaction status reported")
    assert all(not r["compaction_status"].get("last_cumulative_compaction_time")
               and not r["compaction_status"].get("last_base_compaction_time") for r in rows), rows
    assert count(admin, "s") == loaded


def test_routine_load_at_the_version_limit_stays_running_and_retries_with_backoff(cluster_factory):
    cluster: LocalCluster = cluster_factory(3, with_broker=True, fe_config=FE_CONFIG, be_config=BE_CONFIG)
    admin = Admin(cluster.fe_address)
    tablet_id = create_table(admin, "r")
    run(create_topic(cluster.broker_address, "events", 1))

    def send(i: int) -> None:
        run(produce(cluster.broker_address, "events", [(0, json.dumps({"id": i, "msg": f"m{i}"}).encode())]))

    send(0)
    admin.call("CreateRoutineLoad", db="d", name="job", table="r", columns="id, msg",
               properties={"format": "json", "max_batch_interval": "1"},
               data_source_properties={"kafka_broker_list": cluster.broker_address, "kafka_topic": "events",
                                       "property.kafka_default_offsets": "OFFSET_BEGINNING"})
    # one message per batch: each committed task adds a version, until a replica refuses
    produced, refusal = 1, None
    for i in range(1, LIMIT + 2):
        refusal = assert_eventually(
            lambda n=i: ("loaded" if count(admin, "r") == n else None) or refused_task(admin),
            timeout_s=60, interval_s=0.05, what=f"message {i - 1} loaded or a task refused")
        if refusal != "loaded":
            break
        send(i)
        produced += 1
        refusal = None
    assert isinstance(refusal, re.Match), f"{produced} batches all loaded under tablet_max_versions={LIMIT}"
    assert refusal.group(1) == tablet_id and int(refusal.group(2)) >= LIMIT
    loaded = count(admin, "r")
    assert 1 <= loaded < produced

    # RUNNING, never paused; the reason in OtherMsg; the task retried with a growing backoff
    shown = job(admin)
    assert shown["state"] == "RUNNING" and not shown.get("reason_of_state_changed"), shown
    assert REFUSAL.search(shown.get("other_msg", "")), shown
    assert_eventually(
        lambda: any(int(s) >= 4 for t in tasks(admin)
                    for s in re.findall(r"retrying in (\d+) s", t.get("message", ""))),
        timeout_s=90, interval_s=0.05, what="the retry backoff to grow to 4 s")
    shown = job(admin)
    assert shown["state"] == "RUNNING", shown
    stat = json.loads(shown["statistic"])
    assert stat["abortedTaskNum"] >= 3 and stat["loadedRows"] == loaded

    # nothing lost, nothing twice: exactly the messages before the refusal, progress right after them
    assert count(admin, "r") == loaded
    missing, duplicated = exactly_once(query_ids(cluster.fe_address, "d", "r"), range(loaded))
    assert missing == [] and duplicated == []
    assert json.loads(shown["progress"]) == {"0": str(loaded)}
