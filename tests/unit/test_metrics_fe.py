"""Issue 15: the FE's /metrics (fe/http/metrics.py) over real domains, and the text it is written in
(common/prometheus.py). No processes: a journal, catalog, txns and routine load manager, and the
routine load scheduler over a fake Kafka topic (tests/unit/test_partition_refresh.py)."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from common.prometheus import Family, counter, gauge, registry_of, render
from fe.clone.daemon import TabletSchedDaemon
from fe.clone.executor import TaskResult
from fe.clone.sched_ctx import CloneKind, CloneTask, SchedType
from fe.ha.role import FeRole, FrontendInfo, SingleFrontend
from fe.http.metrics import FrontendMetrics
from fe.routineload.scheduler import LAG_STATES, max_lag_of_partition
from fe.routineload.state import JobState
from fe.txn.state import SourceType
from tests.unit.fake_ha import FakeHa
from tests.unit.test_partition_refresh import FakeTopic, start_job


def scrape(*collectors) -> list:
    """The families of a scrape, read back by prometheus_client's own parser."""
    return list(text_string_to_metric_families(render(registry_of(*collectors)).decode()))


def value(families, name: str, **labels: str) -> float | None:
    """The sample ``name{labels}`` of a scrape (the parser names counter samples ``<name>_total``)."""
    for family in families:
        for s in family.samples:
            if s.name in (name, name + "_total") and s.labels == labels:
                return s.value
    return None


def series(families, name: str) -> list[dict[str, str]]:
    """The label sets of ``name``'s samples."""
    return [s.labels for f in families for s in f.samples if s.name in (name, name + "_total")]


class Bare:
    """A collector over fixed families."""

    def __init__(self, *families: Family) -> None:
        self.families = families

    def collect(self):
        return iter(self.families)


def test_text_keeps_starrocks_names_types_help_and_escapes_labels():
    text = render(registry_of(Bare(
        counter("starrocks_fe_txn_begin", "counter of begining transactions", 3),
        counter("starrocks_be_engine_requests_total", "engine requests").add(2, type="clone", status="total"),
        gauge("starrocks_fe_routine_load_max_lag_of_partition", "lag").add(7, job_name='a"b\\c\nd'),
        gauge("starrocks_fe_nothing_now", "a family with no sample is left out"),
        gauge("starrocks_be_ratio", "not integral").add(0.25).add(float("nan"), kind="nan"),
    ))).decode()
    assert text == (
        "# HELP starrocks_fe_txn_begin counter of begining transactions\n"
        "# TYPE starrocks_fe_txn_begin counter\n"
        "starrocks_fe_txn_begin 3\n"
        "# HELP starrocks_be_engine_requests_total engine requests\n"
        "# TYPE starrocks_be_engine_requests_total counter\n"
        'starrocks_be_engine_requests_total{type="clone",status="total"} 2\n'
        "# HELP starrocks_fe_routine_load_max_lag_of_partition lag\n"
        "# TYPE starrocks_fe_routine_load_max_lag_of_partition gauge\n"
        'starrocks_fe_routine_load_max_lag_of_partition{job_name="a\\"b\\\\c\\nd"} 7\n'
        "# HELP starrocks_be_ratio not integral\n"
        "# TYPE starrocks_be_ratio gauge\n"
        "starrocks_be_ratio 0.25\n"
        'starrocks_be_ratio{kind="nan"} NaN\n')
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # a Prometheus parser reads it: the counter keeps its type and its StarRocks name
    assert families["starrocks_fe_txn_begin"].type == "counter"
    assert families["starrocks_fe_routine_load_max_lag_of_partition"].samples[0].labels == {"job_name": 'a"b\\c\nd'}
    assert value(families.values(), "starrocks_be_engine_requests_total", type="clone", status="total") == 2


def test_each_node_has_its_own_registry_never_the_global_one():
    before = set(REGISTRY._collector_to_names)
    a, b = registry_of(Bare(gauge("x", "x", 1))), registry_of(Bare(gauge("x", "x", 2)))
    assert render(a) == b"# HELP x x\n# TYPE x gauge\nx 1\n" and render(b).endswith(b"x 2\n")
    assert set(REGISTRY._collector_to_names) == before


async def frontend(tmp_path, topic: FakeTopic):
    journal, txns, routine, scheduler, clients, job = await start_job(
        tmp_path, topic, {"property.kafka_default_offsets": "OFFSET_BEGINNING"})
    catalog = routine._catalog
    ha = SingleFrontend(FrontendInfo(name="fe", host="127.0.0.1", rpc_port=9020, role=FeRole.LEADER, is_leader=True),
                        lambda: journal.durable_seq)
    sched = TabletSchedDaemon(catalog, catalog._backends, clients, catalog._ids, catalog._config)
    metrics = FrontendMetrics(backends=catalog._backends, catalog=catalog, txns=txns, journal=journal,
                              routine=routine, tablet_sched=sched, ha=ha)
    return metrics, journal, catalog, txns, routine, scheduler, sched, job


async def test_routine_load_transactions_journal_tablets_and_nodes(tmp_path):
    topic = FakeTopic({0: 10})
    metrics, journal, catalog, txns, routine, scheduler, sched, job = await frontend(tmp_path, topic)
    _, table = catalog.table("d", "t")
    tablets = {t.tablet_id: [r.backend_id for r in t.replicas] for t in table.partitions[0].tablets}

    # a task commits offsets 0-10 (10 rows read, 8 loaded, 2 filtered) and becomes VISIBLE: 2 error
    # rows are more than max_error_number (0), so the job is paused
    task = job.tasks[0]
    txn, _, _ = txns.begin("d", "t", job.label_for(task), 30, "BE: 1", SourceType.ROUTINE_LOAD_TASK)
    routine.task_began(job, task, txn.txn_id)
    txns.commit(txn.txn_id, tablets, {"job_id": job.job_id, "task_id": task.task_id, "offsets": {"0": [0, 10]},
                                      "total_rows": 10, "loaded_rows": 8, "filtered_rows": 2,
                                      "received_bytes": 500}, 8)
    txns.mark_visible(txn.txn_id, [(t, be, 2, 8, 80, 2) for t, bes in tablets.items() for be in bes], [])
    # a stream load aborted, and one refused: its label is in use
    other, _, _ = txns.begin("d", "t", "s1", 30, "BE: 1", SourceType.BACKEND_STREAMING)
    txns.abort(other.txn_id, "cancelled")
    again, _, _ = txns.begin("d", "t", "s2", 30, "BE: 1", SourceType.BACKEND_STREAMING)
    try:
        txns.begin("d", "t", "s2", 30, "BE: 1", SourceType.BACKEND_STREAMING)
    except Exception:  # noqa: BLE001 - AlreadyExists: what is counted is the point
        pass

    got = scrape(metrics)
    assert job.state is JobState.PAUSED
    assert value(got, "starrocks_fe_routine_load_jobs", is_leader="true", state="PAUSED") == 1
    assert value(got, "starrocks_fe_routine_load_jobs", is_leader="true", state="RUNNING") == 0
    assert value(got, "starrocks_fe_routine_load_paused") == 1
    assert {s["state"] for s in series(got, "starrocks_fe_routine_load_jobs")} == {s.value for s in JobState}
    assert value(got, "starrocks_fe_routine_load_rows") == 10  # totalRows, as StarRocks counts them
    assert value(got, "starrocks_fe_routine_load_error_rows") == 2
    assert value(got, "starrocks_fe_routine_load_receive_bytes") == 500
    assert value(got, "starrocks_fe_routine_load_max_lag_of_partition", job_name="j") == 0  # read to the end
    assert (value(got, "starrocks_fe_txn_begin"), value(got, "starrocks_fe_txn_success"),
            value(got, "starrocks_fe_txn_failed"), value(got, "starrocks_fe_txn_reject")) == (3, 1, 1, 1)
    assert value(got, "starrocks_fe_max_journal_id") == journal.last_seq > 0
    assert value(got, "starrocks_fe_edit_log_write") >= 5  # begins, commit, visible, abort, ...
    assert value(got, "starrocks_fe_edit_log_size_bytes") > 0
    assert value(got, "starrocks_fe_meta_log_count") == journal.last_seq  # no image yet
    placed = catalog.replicas_per_backend()
    for be in catalog._backends.all():
        assert value(got, "starrocks_fe_tablet_num", backend=be.address) == placed[be.backend_id] == 1
    assert value(got, "starrocks_fe_scheduled_tablet_num") == 0
    assert value(got, "starrocks_fe_scheduled_pending_tablet_num", is_leader="true", type="REPAIR") == 0
    assert value(got, "starrocks_fe_clone_task_copy_bytes", is_leader="true", type="INTER_NODE") == 0
    assert value(got, "node_info", type="be_node_num", state="alive") == 3
    assert value(got, "node_info", type="fe_node_num", state="total") == 1
    assert value(got, "node_info", type="is_master") == 1
    assert value(got, "starrocks_fe_database_num") == 1 and value(got, "starrocks_fe_table_num", db_name="d") == 1
    assert all(f.documentation for f in got), [f.name for f in got if not f.documentation]

    # an image resets meta_log_count
    journal.checkpoint()
    assert value(scrape(metrics), "starrocks_fe_meta_log_count") == 0
    routine.resume("d", "j")
    got = scrape(metrics)
    assert value(got, "starrocks_fe_image_write") == 1
    assert value(got, "starrocks_fe_meta_log_count") == 1  # the resume, after the image
    assert value(got, "starrocks_fe_routine_load_jobs", is_leader="true", state="NEED_SCHEDULE") == 1


async def test_a_follower_reports_no_leader_gauges(tmp_path):
    metrics, *_ = await frontend(tmp_path, FakeTopic({0: 1}))
    metrics._ha = FakeHa("127.0.0.1:9021", FeRole.FOLLOWER, "127.0.0.1:9020")
    got = scrape(metrics)
    assert {value(got, "starrocks_fe_tablet_num", **labels) for labels in series(got, "starrocks_fe_tablet_num")} == {0}
    assert value(got, "node_info", type="is_master") is None
    assert value(got, "starrocks_fe_routine_load_jobs", is_leader="false", state="RUNNING") == 0
    assert value(got, "starrocks_fe_clone_task_total", is_leader="false") == 0


async def test_lag_of_a_paused_job_keeps_growing_and_a_stopped_job_has_none(tmp_path):
    """StarRocks #18558 (lag metrics for PAUSED Kafka jobs) and #17104 (the lag of a stopped job is
    cleared): the scheduler refreshes the end offsets of NEED_SCHEDULE, RUNNING and PAUSED jobs,
    and /metrics exports the lag of those only."""
    topic = FakeTopic({0: 10, 1: 4})
    metrics, journal, catalog, txns, routine, scheduler, sched, job = await frontend(tmp_path, topic)
    assert LAG_STATES == {JobState.NEED_SCHEDULE, JobState.RUNNING, JobState.PAUSED}
    lag = lambda: value(scrape(metrics), "starrocks_fe_routine_load_max_lag_of_partition", job_name="j")  # noqa: E731
    assert job.lag() == {0: 10, 1: 4} and lag() == 10

    # paused (by the user, or by a failure): producers go on and its lag keeps growing
    routine.pause("d", "j")
    topic.ends.update({0: 25, 1: 30})
    await scheduler.refresh_lag()
    assert job.state is JobState.PAUSED and job.lag() == {0: 25, 1: 30}
    assert max_lag_of_partition(job) == 30 and lag() == 30

    # resumed but not scheduled yet (NEED_SCHEDULE, e.g. no alive BE): still current
    routine.resume("d", "j")
    topic.ends[0] = 60
    await scheduler.refresh_lag()
    assert job.state is JobState.NEED_SCHEDULE and lag() == 60

    # stopped: no series, and its end offsets are no longer read
    routine.stop("d", "j")
    topic.ends[0] = 99
    await scheduler.refresh_lag()
    got = scrape(metrics)
    assert max_lag_of_partition(job) is None and series(got, "starrocks_fe_routine_load_max_lag_of_partition") == []
    assert job.highwater[0] == 60
    assert value(got, "starrocks_fe_routine_load_jobs", is_leader="true", state="STOPPED") == 1


async def test_a_job_before_any_end_offset_has_no_lag_series(tmp_path):
    topic = FakeTopic({0: 3})
    metrics, journal, catalog, txns, routine, scheduler, sched, job = await frontend(tmp_path, topic)
    job.highwater.clear()  # as after an FE restart, before the first refresh
    assert series(scrape(metrics), "starrocks_fe_routine_load_max_lag_of_partition") == []
    await scheduler.refresh_lag()
    assert value(scrape(metrics), "starrocks_fe_routine_load_max_lag_of_partition", job_name="j") == 3


async def test_clone_tasks_are_counted_as_starrocks_tablet_scheduler_stat(tmp_path):
    metrics, journal, catalog, txns, routine, scheduler, sched, job = await frontend(tmp_path, FakeTopic({0: 1}))
    full = CloneTask(1, 101, CloneKind.FULL, 1, 2, 1, 5, 5, 60, SchedType.REPAIR)
    drop = CloneTask(2, 102, CloneKind.DROP, None, 3, 0, 0, 5, 60, SchedType.REPAIR)
    sched._on_task_finished(full, TaskResult(True, detail="FULL clone", copied_bytes=4096, copy_ms=30))
    sched._on_task_finished(drop, TaskResult(True, detail="dropped"))
    sched._on_task_finished(full, TaskResult(False, "source died"))
    got = scrape(metrics)
    assert value(got, "starrocks_fe_clone_task_total", is_leader="true") == 0  # counted as run_once sends one
    assert value(got, "starrocks_fe_clone_task_success", is_leader="true") == 1  # drops are not clones
    assert value(got, "starrocks_fe_clone_task_copy_bytes", is_leader="true", type="INTER_NODE") == 4096
    assert value(got, "starrocks_fe_clone_task_copy_duration_ms", is_leader="true", type="INTER_NODE") == 30
    assert value(got, "starrocks_fe_clone_task_copy_bytes", is_leader="true", type="INTRA_NODE") == 0
