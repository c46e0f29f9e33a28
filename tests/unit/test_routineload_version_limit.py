"""A routine load task refused at tablet_max_versions: classified apart, retried with a backoff
(pure state, then the manager's report path; no processes)."""

from __future__ import annotations

import pytest

from fe.routineload.manager import RETRY_AFTER_FAILURE_MS
from fe.routineload.state import (
    RETRY_BACKOFF_INITIAL_MS,
    RETRY_BACKOFF_MAX_MS,
    JobState,
    PauseReasonKind,
    RetryBackoff,
    TaskErrorKind,
    TaskFailureAction,
    on_task_failure,
)
from fe.txn.state import SourceType, TxnStatus
from tests.unit.test_catalog import FakeClients, build, spec, txns_and_routine
from tests.unit.test_txn import Clock

REFUSAL = "Too many versions. tablet_id: 10012, version_count: 5, limit: 5"


# ---- pure classification and backoff -------------------------------------------------------------


@pytest.mark.parametrize("kind, pause", [
    (TaskErrorKind.OFFSET_OUT_OF_RANGE, PauseReasonKind.OFFSET_OUT_OF_RANGE),
    (TaskErrorKind.TOO_FEW_REPLICAS, PauseReasonKind.TOO_FEW_REPLICAS),
    (TaskErrorKind.ERROR_ROWS, PauseReasonKind.ERROR_ROWS),
])
def test_pausing_kinds(kind, pause):
    assert on_task_failure(kind) == TaskFailureAction(pause=pause, backoff=False)


def test_too_many_versions_is_retried_with_backoff_never_paused():
    action = on_task_failure(TaskErrorKind.TOO_MANY_VERSIONS)
    assert action.pause is None and action.backoff


def test_a_tasks_kafka_error_is_retried_with_backoff_never_paused():
    """`make chaos` broker_unreachable: one BE that could not reach the broker paused the whole job
    for good (KAFKA_ERROR is not auto-resumed). As in StarRocks, a task that fails to consume is
    aborted and renewed (RoutineLoadJob.afterAborted pauses only on "Offset out of range"); the
    FE's own failure to read the topic's metadata still pauses the job."""
    action = on_task_failure(TaskErrorKind.KAFKA_ERROR)
    assert action.pause is None and action.backoff


def test_other_and_unknown_kinds_are_retried_without_backoff():
    assert on_task_failure(TaskErrorKind.OTHER) == TaskFailureAction()
    assert TaskErrorKind.parse("") is TaskErrorKind.OTHER
    assert TaskErrorKind.parse("SOMETHING_NEW") is TaskErrorKind.OTHER
    assert TaskErrorKind.parse("TOO_MANY_VERSIONS") is TaskErrorKind.TOO_MANY_VERSIONS


def test_backoff_doubles_from_1s_to_at_most_30s_and_resets():
    assert (RETRY_BACKOFF_INITIAL_MS, RETRY_BACKOFF_MAX_MS) == (1000, 30_000)
    b = RetryBackoff()
    now, delays = 0, []
    for _ in range(8):
        d = b.on_failure(now)
        delays.append(d)
        now += d  # the retry fails again once its delay passed
    assert delays == [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    b.reset()
    assert b.on_failure(now) == 1000


def test_failures_of_the_same_round_wait_for_the_same_moment():
    b = RetryBackoff()
    assert b.on_failure(10_000) == 1000  # retry at 11 000
    assert b.on_failure(10_400) == 600  # another task of the job, same round: same moment, no doubling
    assert b.on_failure(11_000) == 2000  # the retry failed: doubled
    assert b.failures == 2


def test_backoff_never_overflows():
    b = RetryBackoff(failures=10_000)
    assert b.on_failure(0) == RETRY_BACKOFF_MAX_MS


# ---- the manager: report after the abort that renewed the task ----------------------------------


async def setup(tmp_path, clock: Clock):
    more = txns_and_routine(lambda: clock.ms)
    journal, catalog, (txns, routine) = build(tmp_path, FakeClients(), more=more)
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=1))
    job = routine.create("d", "j", "t", "", "", {}, {"kafka_broker_list": "127.0.0.1:9092", "kafka_topic": "x"})
    routine.init_progress(job, [0], {0: 100})
    routine.divide(job, [[0]])
    return txns, routine, job, table


def begin(txns, routine, job, task):
    job_, task_ = routine.check_task_label(job.label_for(task))
    txn, _, _ = txns.begin("d", "t", job.label_for(task), 30, "BE: 1", SourceType.ROUTINE_LOAD_TASK)
    routine.task_began(job_, task_, txn.txn_id)
    task.submitted = True
    return txn


def fail_at_version_limit(txns, routine, job, clock):
    """What the BE does: abort the txn, then report the task FAILED with TOO_MANY_VERSIONS."""
    task = job.tasks[0]
    txn = begin(txns, routine, job, task)
    txns.abort(txn.txn_id, REFUSAL)
    routine.report(job.job_id, task.task_id, "FAILED", "TOO_MANY_VERSIONS", REFUSAL, {}, [])
    assert txn.status is TxnStatus.ABORTED
    fresh = job.tasks[0]
    assert fresh.task_id != task.task_id
    return fresh, fresh.next_schedule_ms - clock.ms


async def test_version_limit_keeps_the_job_running_with_a_growing_backoff(tmp_path):
    clock = Clock()
    txns, routine, job, table = await setup(tmp_path, clock)
    delays = []
    for _ in range(4):
        fresh, delay = fail_at_version_limit(txns, routine, job, clock)
        delays.append(delay)
        assert job.state is JobState.RUNNING and job.sm.reason_kind is None
        assert REFUSAL in fresh.message and f"retrying in {delay / 1000:g} s" in fresh.message
        assert REFUSAL in job.other_msg
        assert job.progress == {0: 100}  # nothing committed: the renewed task reads from here
        clock.ms += delay
    assert delays == [1000, 2000, 4000, 8000]
    assert job.stat.aborted_task_num == 4

    # a commit resets the backoff
    task = job.tasks[0]
    txn = begin(txns, routine, job, task)
    txns.commit(txn.txn_id, {t.tablet_id: [r.backend_id for r in t.replicas] for t in table.partitions[0].tablets},
                {"job_id": job.job_id, "task_id": task.task_id, "offsets": {"0": [100, 110]}, "loaded_rows": 10})
    published = [(tid, be, 2, 10, 100) for tid, bs in txn.tablet_backends.items() for be in bs]
    txns.mark_visible(txn.txn_id, published, [])
    assert job.progress == {0: 110}
    _, delay = fail_at_version_limit(txns, routine, job, clock)
    assert delay == 1000


async def test_report_before_any_txn_renews_the_task_itself(tmp_path):
    clock = Clock()
    txns, routine, job, _ = await setup(tmp_path, clock)
    task = job.tasks[0]
    task.submitted = True
    routine.report(job.job_id, task.task_id, "FAILED", "TOO_MANY_VERSIONS", REFUSAL, {}, [])
    fresh = job.tasks[0]
    assert fresh.task_id != task.task_id and fresh.next_schedule_ms == clock.ms + 1000
    assert not fresh.submitted and REFUSAL in fresh.message


async def test_a_submitted_successor_is_left_alone(tmp_path):
    clock = Clock()
    txns, routine, job, _ = await setup(tmp_path, clock)
    task = job.tasks[0]
    txn = begin(txns, routine, job, task)
    txns.abort(txn.txn_id, REFUSAL)
    fresh = job.tasks[0]
    assert fresh.next_schedule_ms == clock.ms + RETRY_AFTER_FAILURE_MS
    fresh.submitted = True  # the scheduler sent it before the late report came
    routine.report(job.job_id, task.task_id, "FAILED", "TOO_MANY_VERSIONS", REFUSAL, {}, [])
    assert job.tasks[0] is fresh and fresh.next_schedule_ms == clock.ms + RETRY_AFTER_FAILURE_MS


async def test_too_few_replicas_still_pauses(tmp_path):
    clock = Clock()
    txns, routine, job, _ = await setup(tmp_path, clock)
    task = job.tasks[0]
    txn = begin(txns, routine, job, task)
    txns.abort(txn.txn_id, "below quorum")
    routine.report(job.job_id, task.task_id, "FAILED", "TOO_FEW_REPLICAS", "too few alive replicas", {}, [])
    assert job.state is JobState.PAUSED and job.sm.reason_kind is PauseReasonKind.TOO_FEW_REPLICAS
