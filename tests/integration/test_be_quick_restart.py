"""Issue 12, 3.3: a BE SIGKILLed and restarted before heartbeat_timeout_second passes.

The FE never sees the BE dead, only its new start time at registration. As StarRocks does
(abortTxnWhenCoordinateBeRestart), the FE then aborts the transactions the old process was
coordinating and renews its routine load tasks at once, instead of waiting for the 30 s txn or
task timeout. The job has one partition, hence one task: while that task is stuck nothing loads.
"""

from __future__ import annotations

import re
import time

import grpc
import pytest

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from tests.integration.test_routine_load import Producer, count, create_job, setup, show
from tests.kafka_support import create_topic, run
from tests.support import Admin, assert_eventually, exactly_once, query_ids

pytestmark = pytest.mark.integration

TOTAL = 20_000
TXN_TIMEOUT_S = 30
CONFIG = {
    "routine_load_task_consume_second": "1",
    "routine_load_task_timeout_second": str(TXN_TIMEOUT_S),  # a task's txn and task timeout
    "heartbeat_timeout_second": "20",  # the restart lands well within it
}
RECOVERY_S = 12  # from the restart; the timeouts alone would take up to TXN_TIMEOUT_S


class Transactions:
    """ShowTransactions through a Python channel: polled every few ms to catch a txn in PREPARE."""

    def __init__(self, fe_address: str) -> None:
        self._channel = grpc.insecure_channel(fe_address)
        self._stub = admin_pb2_grpc.AdminServiceStub(self._channel)

    def prepared(self) -> list[admin_pb2.TransactionRow]:
        return list(self._stub.ShowTransactions(
            admin_pb2.ShowTransactionsRequest(db="d", status="PREPARE"), timeout=5).transactions)

    def get(self, txn_id: int) -> admin_pb2.TransactionRow:
        return self._stub.ShowTransactions(admin_pb2.ShowTransactionsRequest(db="d", txn_id=txn_id),
                                           timeout=5).transactions[0]

    def close(self) -> None:
        self._channel.close()


def kill_a_coordinator_mid_txn(cluster, txns: Transactions, nodes: dict[int, str]) -> tuple[int, int, str]:
    """SIGKILL the BE coordinating the job's txn while that txn is PREPARE; (txn, backend, node).
    When the commit beats the kill, the BE is started again and another txn is tried."""
    for _attempt in range(5):
        row = assert_eventually(
            lambda: next((t for t in txns.prepared() if t.label.startswith("job-")), None),
            timeout_s=30, interval_s=0.005, what="a routine load txn in PREPARE")
        backend_id = int(row.coordinator.split(": ")[1])
        node = nodes[backend_id]
        cluster.kill_node(node)
        if txns.get(row.transaction_id).transaction_status == "PREPARE":
            return row.transaction_id, backend_id, node
        cluster.start_node(node)
        assert_eventually(lambda: cluster.alive_count() == len(nodes), timeout_s=30, what="the BE back")
    raise AssertionError("every txn committed before its coordinator could be killed")


def test_quick_restart_aborts_the_old_txns_and_reschedules_at_once(cluster_factory):
    cluster = cluster_factory(3, with_broker=True, fe_config=CONFIG)
    admin = Admin(cluster.fe_address)
    setup(admin)
    run(create_topic(cluster.broker_address, "q", 1))
    ports = {int(b["backend_id"]): b["be_port"] for b in admin.call("ShowBackends")["backends"]}
    nodes = {be_id: next(f"be{i}" for i in range(3) if cluster.spec.be_port_of(i) == port)
             for be_id, port in ports.items()}
    producer = Producer(cluster.broker_address, "q", 1, 0, TOTAL, per_round=200)
    producer.start()
    txns = Transactions(cluster.fe_address)
    try:
        create_job(admin, cluster, "q", props={"desired_concurrent_number": "1"})
        assert_eventually(lambda: count(admin) > 1000, timeout_s=60, what="loading under way")

        txn_id, backend_id, node = kill_a_coordinator_mid_txn(cluster, txns, nodes)
        loaded = count(admin)
        cluster.start_node(node)
        restarted = time.monotonic()

        # the restart is seen at registration: the old process's txn is aborted, not left to time out
        row = assert_eventually(lambda: (t := txns.get(txn_id)).transaction_status != "PREPARE" and t,
                                timeout_s=RECOVERY_S, interval_s=0.05, what=f"txn {txn_id} no longer PREPARE")
        assert row.transaction_status == "ABORTED"
        assert f"coordinator backend {backend_id} restarted" in row.reason
        # and the job loads again (its only task was on that txn), long before any timeout
        assert_eventually(lambda: count(admin) > loaded, timeout_s=RECOVERY_S - (time.monotonic() - restarted),
                          interval_s=0.2, what="the job loading again after the restart")
        assert time.monotonic() - restarted < TXN_TIMEOUT_S / 2

        with open(cluster.log_path("fe"), errors="replace") as f:
            fe_log = f.read()
        assert f"backend {backend_id} restarted" in fe_log
        assert re.search(rf"backend {backend_id} \([^)]*\) is dead", fe_log) is None

        producer.join(timeout=120)
        assert producer.next == TOTAL
        assert_eventually(lambda: count(admin) >= TOTAL, timeout_s=90, what=f"{TOTAL} rows visible")
        missing, duplicated = exactly_once(query_ids(cluster.fe_address, "d", "t"), range(TOTAL))
        assert missing == [] and duplicated == [], f"missing {missing[:20]}, duplicated {duplicated[:20]}"
        assert count(admin) == TOTAL
        assert show(admin)["state"] == "RUNNING"
    finally:
        producer.stop_event.set()
        txns.close()
