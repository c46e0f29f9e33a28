"""SHOW ROUTINE LOAD's ErrorLogUrls: the error logs of the job's last tasks that filtered rows,
kept on the job from each committed task's attachment (journaled, so a restart keeps them), and
shown wherever the job's row is (ShowRoutineLoad, the web console)."""

from __future__ import annotations

from fe.routineload.state import JobState
from fe.service.admin_routine import job_row
from fe.txn.state import SourceType
from tests.unit.test_catalog import spec
from tests.unit.test_routineload_exactly_once import setup, tablet_infos


async def test_error_log_urls_are_the_last_three_and_survive_a_restart(tmp_path):
    journal, catalog, txns, routine = await setup(tmp_path)
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=1))
    job = routine.create("d", "j", "t", "", "", {}, {"kafka_broker_list": "127.0.0.1:9092", "kafka_topic": "x"})
    routine.init_progress(job, [0], {0: 0})
    routine.divide(job, [[0]])
    assert job.state is JobState.RUNNING
    for n in range(5):
        task = job.tasks[0]
        routine.check_task_label(f"j-{task.task_id}")
        txn, _, _ = txns.begin("d", "t", f"j-{task.task_id}", 30, "BE: 1", SourceType.ROUTINE_LOAD_TASK)
        routine.task_began(job, task, txn.txn_id)
        url = f"http://127.0.0.1:8040/api/_load_error_log?file=error_log_{n:016x}_{n:016x}" if n != 3 else ""
        txns.commit(txn.txn_id, tablet_infos(table), {
            "job_id": job.job_id, "task_id": task.task_id, "total_rows": 10, "loaded_rows": 9, "filtered_rows": 1,
            "offsets": {"0": [n * 10, n * 10 + 10]}, "error_log_url": url})
        routine.renew(job, task, 0, "")
    wanted = [f"http://127.0.0.1:8040/api/_load_error_log?file=error_log_{n:016x}_{n:016x}" for n in (1, 2, 4)]
    assert job_row(job).error_log_urls == ", ".join(wanted)
    journal.close()
    journal2, _, _, routine2 = await setup(tmp_path)
    assert job_row(routine2.job("d", "j")).error_log_urls == ", ".join(wanted)
    journal2.close()


async def test_a_stopped_job_shows_no_lag(tmp_path):
    """Lag is cleared when a job is STOPPED (StarRocks #17104), as its max_lag_of_partition metric
    is; a PAUSED job keeps it (it is still behind Kafka)."""
    journal, catalog, txns, routine = await setup(tmp_path)
    catalog.create_database("d")
    await catalog.create_table("d", spec("t", buckets=1))
    job = routine.create("d", "j", "t", "", "", {}, {"kafka_broker_list": "127.0.0.1:9092", "kafka_topic": "x"})
    routine.init_progress(job, [0], {0: 10})
    job.observe_highwater({0: 25})
    assert job_row(job).lag == '{"0":15}'
    routine.pause("d", "j")
    assert job_row(job).lag == '{"0":15}'
    routine.stop("d", "j")
    assert job.state is JobState.STOPPED and job_row(job).lag == "{}"
    journal.close()
