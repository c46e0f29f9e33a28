"""Issue 5: exactly once while a task's BE, or the FE, is SIGKILLed under continuous production."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_routine_load import FAST, Producer, count, create_job, setup, show
from tests.kafka_support import create_topic, run
from tests.support import Admin, assert_eventually, exactly_once, query_ids

pytestmark = pytest.mark.integration

TOTAL = 15_000


def wait_all(admin: Admin, cluster, total: int) -> None:
    assert_eventually(lambda: count(admin) >= total, timeout_s=120, what=f"{total} rows visible")
    missing, duplicated = exactly_once(query_ids(cluster.fe_address, "d", "t"), range(total))
    assert missing == [] and duplicated == [], f"missing {missing[:20]}, duplicated {duplicated[:20]}"
    assert count(admin) == total


def test_sigkill_of_a_task_backend_mid_batch_loses_and_duplicates_nothing(cluster_factory):
    cluster = cluster_factory(3, with_broker=True, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    setup(admin)
    run(create_topic(cluster.broker_address, "k", 4))
    producer = Producer(cluster.broker_address, "k", 4, 0, TOTAL, per_round=300)
    producer.start()
    try:
        create_job(admin, cluster, "k", props={"desired_concurrent_number": "3"})
        assert_eventually(lambda: count(admin) > 2000, timeout_s=60, what="loading under way")
        # the BE running a task (consuming its batch, or with its txn open): kill it mid-batch
        task = assert_eventually(
            lambda: next((t for t in admin.call("ShowRoutineLoadTask", db="d", name="job")["tasks"]
                          if int(t.get("be_id", -1)) > 0 and not t.get("message")), None),
            timeout_s=30, interval_s=0.02, what="a task running on a BE")
        ports = {b["backend_id"]: b["be_port"] for b in admin.call("ShowBackends")["backends"]}
        node = next(f"be{i}" for i in range(3) if cluster.spec.be_port_of(i) == ports[task["be_id"]])
        cluster.kill_node(node)
        assert_eventually(lambda: count(admin) > 6000, timeout_s=60, what="loading goes on without the BE")
        cluster.start_node(node)
        producer.join(timeout=120)
        assert producer.next == TOTAL
        wait_all(admin, cluster, TOTAL)
        assert show(admin)["state"] == "RUNNING"
    finally:
        producer.stop_event.set()


def test_sigkill_of_the_fe_while_producing_loses_and_duplicates_nothing(cluster_factory):
    cluster = cluster_factory(3, with_broker=True, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    setup(admin)
    run(create_topic(cluster.broker_address, "f", 4))
    producer = Producer(cluster.broker_address, "f", 4, 0, TOTAL, per_round=300)
    producer.start()
    try:
        create_job(admin, cluster, "f", props={"desired_concurrent_number": "3"})
        assert_eventually(lambda: count(admin) > 3000, timeout_s=60, what="loading under way")
        cluster.kill_node("fe")
        cluster.start_node("fe")
        assert_eventually(admin.answers, timeout_s=30, what="the FE back")
        producer.join(timeout=120)
        assert producer.next == TOTAL
        wait_all(admin, cluster, TOTAL)
        job = show(admin)
        assert job["state"] == "RUNNING"
        assert sum(int(v) for v in json.loads(job["progress"]).values()) == TOTAL
    finally:
        producer.stop_event.set()

