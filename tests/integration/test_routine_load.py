"""Issue 5: routine load jobs whose tasks run as BE consumer groups, exactly once."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from deploy.cluster import LocalCluster
from tests.kafka_support import create_topic, produce, run
from tests.support import Admin, assert_eventually, exactly_once, query_ids

pytestmark = pytest.mark.integration

COLUMNS = [
    {"name": "id", "type": "BIGINT", "not_null": True},
    {"name": "ts", "type": "DATETIME"},
    {"name": "msg", "type": "VARCHAR(64)"},
]
JSON_PROPS = {"format": "json", "jsonpaths": '["$.id", "$.ts", "$.msg"]', "max_batch_interval": "1",
              "timezone": "UTC"}
MAPPING = "id, tmp_ts, msg, ts = from_unixtime(tmp_ts)"
FAST = {"routine_load_task_consume_second": "1", "heartbeat_timeout_second": "3"}


def event(i: int) -> bytes:
    return json.dumps({"id": i, "ts": 1_700_000_000 + i, "msg": f"m{i}"}).encode()


def events(ids, partitions: int):
    return ((i % partitions, event(i)) for i in ids)


def setup(admin: Admin, buckets: int = 4) -> None:
    admin.call("CreateDatabase", db="d", if_not_exists=True)
    admin.call("CreateTable", db="d", table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=buckets, properties={"replication_num": "3"})


def create_job(admin: Admin, cluster: LocalCluster, topic: str, name: str = "job", props: dict | None = None,
               source: dict | None = None, columns: str = MAPPING) -> None:
    admin.call("CreateRoutineLoad", db="d", name=name, table="t", columns=columns,
               properties={**JSON_PROPS, **(props or {})},
               data_source_properties={"kafka_broker_list": cluster.broker_address, "kafka_topic": topic,
                                       "property.kafka_default_offsets": "OFFSET_BEGINNING", **(source or {})})


def count(admin: Admin) -> int:
    return int(admin.call("Query", db="d", table="t", limit=0)["count"])


def show(admin: Admin, name: str = "job") -> dict:
    return admin.call("ShowRoutineLoad", db="d", name=name)["jobs"][0]


def wait_count(admin: Admin, n: int, timeout_s: float = 90) -> None:
    assert_eventually(lambda: count(admin) == n or _at_least(admin, n), timeout_s=timeout_s,
                      what=f"{n} rows visible")
    assert count(admin) == n


def _at_least(admin: Admin, n: int) -> bool:
    c = count(admin)
    assert c <= n, f"{c} rows visible, more than the {n} produced"
    return False


class Producer(threading.Thread):
    """Produces ids [start, start + total) continuously in small batches until done or stopped."""

    def __init__(self, broker: str, topic: str, partitions: int, start: int, total: int, per_round: int = 500):
        super().__init__(daemon=True)
        self.broker, self.topic, self.partitions = broker, topic, partitions
        self.next, self.end, self.per_round = start, start + total, per_round
        self.stop_event = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 300
        while self.next < self.end and not self.stop_event.is_set() and time.monotonic() < deadline:
            hi = min(self.next + self.per_round, self.end)
            asyncio.run(produce(self.broker, self.topic, events(range(self.next, hi), self.partitions)))
            self.next = hi
            self.stop_event.wait(0.05)


def test_200k_json_rows_across_8_partitions_exactly_once(cluster_factory):
    cluster = cluster_factory(3, with_broker=True, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    setup(admin)
    run(create_topic(cluster.broker_address, "events", 8))
    run(produce(cluster.broker_address, "events", events(range(200_000), 8)))
    create_job(admin, cluster, "events", props={"desired_concurrent_number": "3"})
    wait_count(admin, 200_000, timeout_s=150)
    job = assert_eventually(lambda: (j := show(admin)) and json.loads(j["statistic"])["loadedRows"] == 200_000
                            and j, timeout_s=30, what="Statistic to count every row")
    assert job["state"] == "RUNNING" and job["current_task_num"] == 3
    stat = json.loads(job["statistic"])
    assert stat["totalRows"] == 200_000 and stat["loadedRows"] == 200_000 and stat["errorRows"] == 0
    assert json.loads(job["progress"]) == {str(p): "25000" for p in range(8)}
    assert_eventually(lambda: json.loads(show(admin)["lag"]) == {str(p): 0 for p in range(8)}, timeout_s=20,
                      what="lag 0 on every partition")
    row = admin.call("Query", db="d", table="t", predicates=[{"column": "id", "op": "=", "value": "12345"}])
    assert row["rows"] == [{"values": ["12345", "2023-11-15 01:39:05", "m12345"]}]
    tasks = admin.call("ShowRoutineLoadTask", db="d", name="job")["tasks"]
    assert len(tasks) == 3 and sorted(sum((list(json.loads(t["data_source_properties"])) for t in tasks), [])) \
        == sorted(str(p) for p in range(8))
    assert_eventually(
        lambda: any("there is no new data in kafka, wait for 1 seconds to schedule again" in t.get("message", "")
                    for t in admin.call("ShowRoutineLoadTask", db="d", name="job")["tasks"]),
        timeout_s=15, interval_s=0.05, what="a task waiting for new data")
    assert count(admin) == 200_000  # tasks that find no new data load nothing twice


def test_task_count_follows_the_formula_and_survives_a_dead_be(cluster_factory):
    cluster = cluster_factory(5, with_broker=True, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    setup(admin)
    run(create_topic(cluster.broker_address, "seven", 7))
    run(produce(cluster.broker_address, "seven", events(range(7000), 7)))
    create_job(admin, cluster, "seven", name="five", props={"desired_concurrent_number": "5"})
    create_job(admin, cluster, "seven", name="three", props={"desired_concurrent_number": "3"})
    assert_eventually(lambda: show(admin, "five")["current_task_num"] == 5, timeout_s=20, what="5 tasks")
    assert_eventually(lambda: show(admin, "three")["current_task_num"] == 3, timeout_s=20, what="3 tasks")
    wait_count(admin, 14_000)  # both jobs load the topic once each
    cluster.kill_node("be4")
    assert_eventually(lambda: show(admin, "five")["current_task_num"] == 4, timeout_s=20,
                      what="the dead BE's tasks re-divided among 4 alive BEs")
    run(produce(cluster.broker_address, "seven", events(range(7000, 8000), 7)))
    wait_count(admin, 16_000)
    assert show(admin, "five")["state"] == "RUNNING"


def test_pause_resume_alter_stop(cluster_factory):
    cluster = cluster_factory(3, with_broker=True, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    setup(admin)
    run(create_topic(cluster.broker_address, "pr", 4))
    run(produce(cluster.broker_address, "pr", events(range(1000), 4)))
    create_job(admin, cluster, "pr", props={"desired_concurrent_number": "1"})
    wait_count(admin, 1000)
    err = admin.error("AlterRoutineLoad", db="d", name="job", properties={"desired_concurrent_number": "2"})
    assert err.code == "FailedPrecondition" and "RUNNING" in err.message
    assert admin.call("PauseRoutineLoad", db="d", name="job")["state"] == "PAUSED"
    paused = show(admin)
    assert paused["state"] == "PAUSED" and paused["pause_time"] != "NULL"
    assert paused["reason_of_state_changed"] == "paused by user"
    run(produce(cluster.broker_address, "pr", events(range(1000, 3000), 4)))
    # the FE reads the end offsets on its own: Lag shows what waits while the job is paused
    assert_eventually(lambda: sum(json.loads(show(admin)["lag"]).values()) == 2000, timeout_s=15,
                      what="Lag 2000 while paused")
    assert count(admin) == 1000  # a paused job loads nothing
    admin.call("AlterRoutineLoad", db="d", name="job", properties={"desired_concurrent_number": "2"})
    err = admin.error("AlterRoutineLoad", db="d", name="job", properties={"max_batch_rows": "zero"})
    assert err.code == "InvalidArgument" and "max_batch_rows" in err.message
    assert admin.call("ResumeRoutineLoad", db="d", name="job")["state"] == "NEED_SCHEDULE"
    wait_count(admin, 3000)
    assert_eventually(lambda: show(admin)["current_task_num"] == 2, timeout_s=10, what="2 tasks after the alter")
    missing, duplicated = exactly_once(query_ids(cluster.fe_address, "d", "t"), range(3000))
    assert missing == [] and duplicated == []
    assert admin.call("StopRoutineLoad", db="d", name="job")["state"] == "STOPPED"
    err = admin.error("ResumeRoutineLoad", db="d", name="job")
    assert err.code == "FailedPrecondition" and "STOPPED is final" in err.message
    assert admin.call("ShowRoutineLoad", db="d").get("jobs", []) == []
    assert admin.call("ShowRoutineLoad", db="d", include_stopped=True)["jobs"][0]["state"] == "STOPPED"


def test_malformed_messages_pause_with_samples_then_resume(cluster_factory):
    cluster = cluster_factory(3, with_broker=True, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    setup(admin)
    run(create_topic(cluster.broker_address, "bad", 2))
    good = [(i % 2, event(i)) for i in range(100)]
    bad = [(0, b"{not json"), (1, json.dumps({"id": "abc", "ts": 1, "msg": "x"}).encode())]
    run(produce(cluster.broker_address, "bad", good[:50] + bad + good[50:]))
    create_job(admin, cluster, "bad", props={"max_error_number": "0"})
    job = assert_eventually(lambda: (j := show(admin))["state"] == "PAUSED" and j, timeout_s=30,
                            what="the job to pause on error rows")
    assert "max_error_number 0" in job["reason_of_state_changed"]
    assert job["error_log_urls"]
    # each of the two partitions' tasks meets one bad row; the first commit pauses the job
    expected = {"malformed JSON", "column 'id' value 'abc' is not a valid BIGINT"}
    assert any(e in s["reason"] for s in job["error_samples"] for e in expected)
    admin.call("AlterRoutineLoad", db="d", name="job", properties={"max_error_number": "100"})
    admin.call("ResumeRoutineLoad", db="d", name="job")
    run(produce(cluster.broker_address, "bad", events(range(100, 200), 2)))
    wait_count(admin, 200)
    missing, duplicated = exactly_once(query_ids(cluster.fe_address, "d", "t"), range(200))
    assert missing == [] and duplicated == []
    job = show(admin)
    assert job["state"] == "RUNNING"
    reasons = " | ".join(s["reason"] for s in job["error_samples"])
    assert all(e in reasons for e in expected), reasons
    assert any("not json" in s["row"] for s in job["error_samples"])
    assert json.loads(job["statistic"])["errorRows"] == 2


def test_start_offsets_kafka_offsets_end_and_datetime(cluster_factory):
    cluster = cluster_factory(3, with_broker=True, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    setup(admin)
    run(create_topic(cluster.broker_address, "off", 2))
    run(produce(cluster.broker_address, "off", ((0, event(i)) for i in range(0, 100))))
    # a clear gap in message timestamps: a whole second boundary between the two batches
    first_done = time.time()
    assert_eventually(lambda: time.time() >= int(first_done) + 1, timeout_s=3, what="the next second")
    middle = datetime.now(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S")
    assert_eventually(lambda: time.time() >= int(first_done) + 2.2, timeout_s=4, what="a second later")
    run(produce(cluster.broker_address, "off", ((0, event(i)) for i in range(100, 150))))
    # kafka_offsets: partition 0 from offset 40
    create_job(admin, cluster, "off", name="pinned", source={"kafka_partitions": "0", "kafka_offsets": "40"},
               columns="id, tmp_ts, msg, ts = from_unixtime(tmp_ts)")
    wait_count(admin, 110)
    admin.call("StopRoutineLoad", db="d", name="pinned")
    ids = sorted(query_ids(cluster.fe_address, "d", "t"))
    assert ids == list(range(40, 150))
    # a datetime: only what was produced after it
    admin.call("DropTable", db="d", table="t")
    setup(admin)
    create_job(admin, cluster, "off", name="bytime",
               source={"property.kafka_default_offsets": middle, "kafka_partitions": "0"})
    wait_count(admin, 50)
    assert sorted(query_ids(cluster.fe_address, "d", "t")) == list(range(100, 150))
    # OFFSET_END: nothing before the job, everything after
    admin.call("DropTable", db="d", table="t")
    setup(admin)
    create_job(admin, cluster, "off", name="fromend", source={"property.kafka_default_offsets": "OFFSET_END"})
    assert_eventually(lambda: show(admin, "fromend")["state"] == "RUNNING"
                      and json.loads(show(admin, "fromend")["progress"]).get("0") == "150",
                      timeout_s=20, what="the job to start at the end of partition 0")
    run(produce(cluster.broker_address, "off", ((i % 2, event(i)) for i in range(1000, 1010))))
    wait_count(admin, 10)
    assert sorted(query_ids(cluster.fe_address, "d", "t")) == list(range(1000, 1010))
    # the dropped table cancelled the earlier job
    assert admin.call("ShowRoutineLoad", db="d", name="bytime")["jobs"][0]["state"] == "CANCELLED"


def test_bad_job_definitions_are_refused(cluster_factory):
    cluster = cluster_factory(1, with_broker=True, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    admin.call("CreateDatabase", db="d")
    admin.call("CreateTable", db="d", table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=1, properties={"replication_num": "1"})
    src = {"kafka_broker_list": cluster.broker_address, "kafka_topic": "x"}
    err = admin.error("CreateRoutineLoad", db="d", name="j", table="t", properties={"desired_concurrent_number": "0"},
                      data_source_properties=src)
    assert err.code == "InvalidArgument" and "'desired_concurrent_number' = '0'" in err.message
    err = admin.error("CreateRoutineLoad", db="d", name="j", table="t", properties={"colour": "red"},
                      data_source_properties=src)
    assert err.code == "InvalidArgument" and "unknown property 'colour'" in err.message
    err = admin.error("CreateRoutineLoad", db="d", name="j", table="t", data_source_properties={"kafka_topic": "x"})
    assert err.code == "InvalidArgument" and "kafka_broker_list" in err.message
    err = admin.error("CreateRoutineLoad", db="d", name="j", table="nope", data_source_properties=src)
    assert err.code == "NotFound"
    err = admin.error("CreateRoutineLoad", db="d", name="j", table="t", columns="id, msg = nosuchfn(id)",
                      data_source_properties=src)
    assert err.code == "InvalidArgument" and "nosuchfn" in err.message
    # a missing topic pauses the job with a reason (the broker is never asked to create it)
    admin.call("CreateRoutineLoad", db="d", name="j", table="t", data_source_properties=src)
    job = assert_eventually(lambda: (j := admin.call("ShowRoutineLoad", db="d", name="j")["jobs"][0])["state"]
                            == "PAUSED" and j, timeout_s=30, what="a job on a missing topic to pause")
    assert "topic 'x' does not exist" in job["reason_of_state_changed"]
    # an unreachable broker too
    admin.call("CreateRoutineLoad", db="d", name="k", table="t",
               data_source_properties={"kafka_broker_list": "127.0.0.1:1", "kafka_topic": "x"})
    job = assert_eventually(lambda: (j := admin.call("ShowRoutineLoad", db="d", name="k")["jobs"][0])["state"]
                            == "PAUSED" and j, timeout_s=60, what="a job on an unreachable broker to pause")
    assert "127.0.0.1:1" in job["reason_of_state_changed"]
    err = admin.error("CreateRoutineLoad", db="d", name="k", table="t", data_source_properties=src)
    assert err.code == "AlreadyExists"


def test_too_few_replicas_pauses_and_auto_resumes(cluster_factory):
    cluster = cluster_factory(3, with_broker=True, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    setup(admin)
    run(create_topic(cluster.broker_address, "q", 2))
    run(produce(cluster.broker_address, "q", events(range(100), 2)))
    create_job(admin, cluster, "q", props={"desired_concurrent_number": "1"})
    wait_count(admin, 100)
    cluster.kill_node("be1")
    cluster.kill_node("be2")
    run(produce(cluster.broker_address, "q", events(range(100, 200), 2)))
    job = assert_eventually(lambda: (j := show(admin))["state"] == "PAUSED" and j, timeout_s=30,
                            what="the job to pause: 1 alive replica, MAJORITY needs 2")
    assert "too few alive replicas for the write quorum" in job["reason_of_state_changed"]
    assert count(admin) == 100
    cluster.start_node("be1")
    cluster.start_node("be2")
    assert_eventually(lambda: show(admin)["state"] == "RUNNING", timeout_s=30,
                      what="the job to resume by itself once the BEs are back")
    wait_count(admin, 200)
    missing, duplicated = exactly_once(query_ids(cluster.fe_address, "d", "t"), range(200))
    assert missing == [] and duplicated == []


def test_offset_out_of_range_pauses(cluster_factory):
    cluster = cluster_factory(1, with_broker=True, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    admin.call("CreateDatabase", db="d")
    admin.call("CreateTable", db="d", table="t", columns=COLUMNS, duplicate_key=["id"], distributed_by=["id"],
               buckets=1, properties={"replication_num": "1"})
    run(create_topic(cluster.broker_address, "oor", 1))
    run(produce(cluster.broker_address, "oor", events(range(100), 1)))
    create_job(admin, cluster, "oor", source={"kafka_partitions": "0", "kafka_offsets": "5000"})
    job = assert_eventually(lambda: (j := show(admin))["state"] == "PAUSED" and j, timeout_s=30,
                            what="the job to pause on an offset past the end")
    assert "offset out of range" in job["reason_of_state_changed"]
    assert "partition 0 offset 5000 is outside [0, 100]" in job["reason_of_state_changed"]
    # pinned to a real offset through ALTER, it loads from there
    admin.call("AlterRoutineLoad", db="d", name="job",
               data_source_properties={"kafka_partitions": "0", "kafka_offsets": "60"})
    admin.call("ResumeRoutineLoad", db="d", name="job")
    wait_count(admin, 40)
    assert sorted(query_ids(cluster.fe_address, "d", "t")) == list(range(60, 100))
