"""Issue 15: GET /metrics of the FE and of every BE, over HTTP, read by prometheus_client's parser and
checked against SHOW ROUTINE LOAD and SHOW BACKENDS of a real cluster loading from the broker."""

from __future__ import annotations

import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_routine_load import FAST, create_job, event, events, setup, show, wait_count
from tests.kafka_support import create_topic, produce, run
from tests.support import Admin, assert_eventually
from tests.unit.test_metrics_fe import series, value

pytestmark = pytest.mark.integration

ROWS = 1000
MORE = 300


def scrape(base_url: str) -> list:
    """GET <base_url>/metrics with no credentials (as Prometheus scrapes StarRocks), parsed."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return list(text_string_to_metric_families(resp.read().decode()))


def lag_metric(cluster, job: str = "job") -> float | None:
    return value(scrape(cluster.fe_http_url()), "starrocks_fe_routine_load_max_lag_of_partition", job_name=job)


def test_metrics_follow_routine_load_and_backends_and_the_lag_of_a_paused_then_stopped_job(cluster_factory):
    cluster = cluster_factory(3, with_broker=True, fe_config=FAST)
    admin = Admin(cluster.fe_address)
    setup(admin)
    run(create_topic(cluster.broker_address, "events", 2))
    run(produce(cluster.broker_address, "events", events(range(ROWS), 2)))
    create_job(admin, cluster, "events")
    wait_count(admin, ROWS, timeout_s=60)
    job = assert_eventually(
        lambda: (j := show(admin)) and json.loads(j["statistic"])["loadedRows"] == ROWS
        and json.loads(j["lag"]) == {"0": 0, "1": 0} and j, timeout_s=20, what="Statistic and Lag to settle")
    stat = json.loads(job["statistic"])

    # the FE: routine load as SHOW ROUTINE LOAD says, transactions, journal
    fe = scrape(cluster.fe_http_url())
    assert value(fe, "starrocks_fe_routine_load_jobs", is_leader="true", state="RUNNING") == 1
    assert value(fe, "starrocks_fe_routine_load_jobs", is_leader="true", state="PAUSED") == 0
    assert value(fe, "starrocks_fe_routine_load_rows") == stat["totalRows"] == ROWS
    assert value(fe, "starrocks_fe_routine_load_error_rows") == stat["errorRows"] == 0
    assert value(fe, "starrocks_fe_routine_load_receive_bytes") == stat["receivedBytes"] > 0
    assert value(fe, "starrocks_fe_routine_load_max_lag_of_partition", job_name="job") == 0
    committed = stat["committedTaskNum"]
    fe = assert_eventually(lambda: (m := scrape(cluster.fe_http_url()))
                           and value(m, "starrocks_fe_txn_success") >= committed and m,
                           timeout_s=10, what="every committed task's txn VISIBLE")
    assert value(fe, "starrocks_fe_txn_begin") >= value(fe, "starrocks_fe_txn_success") \
        + value(fe, "starrocks_fe_txn_failed")
    assert value(fe, "starrocks_fe_txn_failed") >= stat["abortedTaskNum"]
    assert value(fe, "starrocks_fe_edit_log_write") > 0
    assert value(fe, "starrocks_fe_max_journal_id") > 0
    assert value(fe, "starrocks_fe_database_num") == 1 and value(fe, "starrocks_fe_table_num", db_name="d") == 1
    assert value(fe, "node_info", type="is_master") == 1
    assert all(f.documentation for f in fe)

    # SHOW BACKENDS: alive BEs and tablets per BE, on the FE and on each BE
    rows = admin.call("ShowBackends")["backends"]
    assert value(fe, "node_info", type="be_node_num", state="total") == len(rows) == 3
    assert value(fe, "node_info", type="be_node_num", state="alive") == sum(1 for r in rows if r["alive"]) == 3
    tablets = {f"{r['host']}:{r['be_port']}": int(r["tablet_num"]) for r in rows}
    assert sum(tablets.values()) == 4 * 3  # 4 buckets, 3 replicas
    for address, n in tablets.items():
        assert value(fe, "starrocks_fe_tablet_num", backend=address) == n
    for i in range(3):
        be = assert_eventually(lambda i=i: (m := scrape(cluster.be_http_url(i)))
                               and series(m, "starrocks_be_disks_total_capacity") and m,
                               timeout_s=10, what=f"BE {i}'s disk metrics")
        assert value(be, "tabletsim_be_tablet_num") == tablets[cluster.be_address(i)]
        (disk,) = series(be, "starrocks_be_disks_total_capacity")
        assert value(be, "starrocks_be_disks_total_capacity", **disk) > 0
        assert value(be, "starrocks_be_disks_data_used_capacity", **disk) > 0
        assert value(be, "starrocks_be_engine_requests_total", type="report_all_tablets", status="total") >= 1
        assert value(be, "starrocks_be_routine_load_task_count") >= 0
        assert value(be, "starrocks_be_stream_load", type="load_rows") == value(be, "starrocks_be_load_rows")
        assert all(f.documentation for f in be)
    # each task's rows are counted once, on the BE that coordinated it (once its commit returned)
    assert_eventually(lambda: sum(value(scrape(cluster.be_http_url(i)), "starrocks_be_load_rows")
                                  for i in range(3)) == ROWS, timeout_s=10, what="the BEs' load_rows to add up")

    # paused: it runs no task, yet its lag stays current and grows while producers go on
    assert admin.call("PauseRoutineLoad", db="d", name="job")["state"] == "PAUSED"
    run(produce(cluster.broker_address, "events", ((0, event(i)) for i in range(ROWS, ROWS + MORE))))
    assert_eventually(lambda: json.loads(show(admin)["lag"]) == {"0": MORE, "1": 0}, timeout_s=20,
                      what=f"Lag of the paused job to grow to {MORE}")
    assert lag_metric(cluster) == MORE
    fe = scrape(cluster.fe_http_url())
    assert value(fe, "starrocks_fe_routine_load_jobs", is_leader="true", state="PAUSED") == 1
    assert value(fe, "starrocks_fe_routine_load_jobs", is_leader="true", state="RUNNING") == 0
    assert value(fe, "starrocks_fe_routine_load_paused") == 1

    # stopped: its lag series is gone
    assert admin.call("StopRoutineLoad", db="d", name="job")["state"] == "STOPPED"
    fe = scrape(cluster.fe_http_url())
    assert series(fe, "starrocks_fe_routine_load_max_lag_of_partition") == []
    assert value(fe, "starrocks_fe_routine_load_jobs", is_leader="true", state="STOPPED") == 1
    assert value(fe, "starrocks_fe_routine_load_jobs", is_leader="true", state="PAUSED") == 0
    assert value(fe, "starrocks_fe_routine_load_rows") == ROWS  # what it loaded still counts
