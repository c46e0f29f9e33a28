"""The commit compare-and-swap that makes routine load exactly once (no processes)."""

from __future__ import annotations

import pytest

from common.errors import AlreadyExists, FailedPrecondition
from fe.routineload.manager import RoutineLoadManager
from fe.routineload.state import JobState
from fe.txn.manager import TransactionManager
from fe.txn.state import SourceType, TxnStatus
from tests.unit.test_catalog import FakeClients, build, spec


async def setup(tmp_path):
    def more(journal, catalog):
        txns = TransactionManager(journal, catalog._ids, catalog, catalog._backends, catalog._config,
                                  lambda: 1_700_000_000_000)
        journal.register("txn", txns)
        routine = RoutineLoadManager(journal, catalog._ids, catalog, txns, catalog._config, lambda: 1_700_000_000_000)
        journal.register("routineload", routine)
        return txns, routine

    journal, catalog, (txns, routine) = build(tmp_path, FakeClients(), more=more)
    return journal, catalog, txns, routine


def tablet_infos(table):
    return {t.tablet_id: [r.backend_id for r in t.replicas] for t in table.partitions[0].tablets}


async def test_only_the_current_task_from_the_stored_progress_commits(tmp_path):
    journal, catalog, txns, routine = await setup(tmp_path)
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=1))
    job = routine.create("d", "j", "t", "", "", {}, {"kafka_broker_list": "127.0.0.1:9092", "kafka_topic": "x"})
    routine.init_progress(job, [0, 1], {0: 100, 1: 50})
    routine.divide(job, [[0, 1]])
    assert job.state is JobState.RUNNING
    task = job.tasks[0]

    def begin(task_id: str):
        job_, task_ = routine.check_task_label(f"j-{task_id}")
        txn, _, _ = txns.begin("d", "t", f"j-{task_id}", 30, "BE: 1", SourceType.ROUTINE_LOAD_TASK)
        routine.task_began(job_, task_, txn.txn_id)
        return txn

    def attachment(task_id: str, offsets: dict[int, tuple[int, int]]):
        return {"job_id": job.job_id, "task_id": task_id, "total_rows": 10, "loaded_rows": 10,
                "offsets": {str(p): list(v) for p, v in offsets.items()}}

    # a commit whose start offsets are not the stored progress is refused (and aborted)
    stale = begin(task.task_id)
    with pytest.raises(FailedPrecondition, match="read partition 0 from offset 90 but the job's progress is 100"):
        txns.commit(stale.txn_id, tablet_infos(table), attachment(task.task_id, {0: (90, 120), 1: (50, 60)}))
    assert stale.status is TxnStatus.ABORTED and job.progress == {0: 100, 1: 50}

    # the renewed task, from the stored progress: accepted, progress moves in the same record
    fresh = job.tasks[0]
    assert fresh.task_id != task.task_id
    good = begin(fresh.task_id)
    txns.commit(good.txn_id, tablet_infos(table), attachment(fresh.task_id, {0: (100, 130), 1: (50, 70)}))
    assert good.status is TxnStatus.COMMITTED and job.progress == {0: 130, 1: 70}
    assert job.stat.committed_task_num == 1 and job.stat.loaded_rows == 10

    # a task that is no longer current cannot even begin; nor commit twice over the same offsets
    with pytest.raises(FailedPrecondition, match="not a current task"):
        routine.check_task_label(f"j-{task.task_id}")
    with pytest.raises(AlreadyExists, match="Label Already Exists"):
        begin(fresh.task_id)  # one task = one txn: its label cannot begin twice
    assert job.progress == {0: 130, 1: 70}

    # a paused job takes no commit at all
    routine.pause("d", "j")
    assert routine.job("d", "j").state is JobState.PAUSED

    # replay gives the same progress, state and statistics
    live = journal.dump()
    journal.close()
    journal2, _, _, routine2 = await setup(tmp_path)
    assert journal2.dump() == live
    assert routine2.job("d", "j").progress == {0: 130, 1: 70}
