"""Issue 12, 3.7: partitions added to a topic are consumed and shown in Lag.

As StarRocks' KafkaRoutineLoadJob does (customKafkaPartitions empty: the partition list is
fetched again and new partitions start at kafka_default_offsets), the scheduler's periodic
refresh picks up new partitions of a job that consumes the whole topic, and the job is divided
again. The embedded broker cannot add partitions (no CreatePartitions), so the scheduler runs
here over a fake Kafka metadata source, fake BE stubs, and a real journal, catalog and txns.
"""

from __future__ import annotations

import json

from common.gen.tabletsim.v1 import backend_pb2
from fe.routineload.kafka_meta import KafkaMetadata
from fe.routineload.properties import KafkaSource, OffsetSpec, resolve_start_offset
from fe.routineload.scheduler import RoutineLoadScheduler
from fe.routineload.state import JobState
from fe.service.admin_routine import job_row
from fe.txn.state import SourceType, TxnStatus
from tests.unit.test_catalog import FakeClients, FakeStub, alive_backends, build, spec, txns_and_routine
from tests.unit.test_txn import Clock

SOURCE = {"kafka_broker_list": "127.0.0.1:9092", "kafka_topic": "events"}


class FakeTopic(KafkaMetadata):
    """One topic whose partitions each hold offsets [0, end); partitions may be added at any time."""

    def __init__(self, ends: dict[int, int]) -> None:
        self.ends = dict(ends)
        self.down = False
        self.lookups = 0

    def _reach(self) -> None:
        if self.down:
            raise ConnectionError("broker 127.0.0.1:9092 unreachable")

    async def partitions(self, src: KafkaSource) -> list[int]:
        self._reach()
        self.lookups += 1
        return sorted(self.ends)

    async def start_offsets(self, src: KafkaSource, specs: dict[int, OffsetSpec],
                            timezone: str) -> tuple[dict[int, int], dict[int, int]]:
        self._reach()
        starts = {p: resolve_start_offset(s, 0, self.ends[p], lambda ms: None, timezone) for p, s in specs.items()}
        return starts, {p: self.ends[p] for p in specs}

    async def end_offsets(self, src: KafkaSource, partitions: list[int]) -> dict[int, int]:
        self._reach()
        return {p: self.ends[p] for p in partitions}


class TaskStub(FakeStub):
    """Creates tablets like the catalog's fake stub and takes routine load tasks."""

    def __init__(self, be_id: int, fail: set[int], sent: list) -> None:
        super().__init__(be_id, fail)
        self.sent = sent

    async def SubmitRoutineLoadTask(self, request: backend_pb2.RoutineLoadTask, timeout=None):
        self.sent.append((self.be_id, request))


class TaskClients(FakeClients):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[int, backend_pb2.RoutineLoadTask]] = []

    def stub(self, be_id: int) -> TaskStub:
        return self.stubs.setdefault(be_id, TaskStub(be_id, self.fail, self.sent))


async def cluster(tmp_path, topic: FakeTopic, clock: Clock):
    clients = TaskClients()

    more = txns_and_routine(lambda: clock.ms)
    journal, catalog, (txns, routine) = build(tmp_path, clients, more=more)
    catalog._backends._wall_ms = lambda: clock.ms  # one FE wall clock for heartbeats and jobs
    scheduler = RoutineLoadScheduler(routine, catalog, catalog._backends, clients, txns, catalog._config,
                                     lambda: clock.ms, kafka=topic)
    return journal, catalog, txns, routine, scheduler, clients


async def start_job(tmp_path, topic: FakeTopic, source: dict[str, str] | None = None):
    clock = Clock()
    journal, catalog, txns, routine, scheduler, clients = await cluster(tmp_path, topic, clock)
    catalog.create_database("d")
    await catalog.create_table("d", spec("t", buckets=1))
    routine.create("d", "j", "t", "", "", {"desired_concurrent_number": "3"}, {**SOURCE, **(source or {})})
    await scheduler.run_once()  # NEED_SCHEDULE -> RUNNING
    await scheduler.run_once()  # the tasks go to BEs
    return journal, txns, routine, scheduler, clients, routine.job("d", "j")


def lag(job) -> dict[str, int]:
    return json.loads(job_row(job).lag)


def consumed(job) -> str:
    return json.loads(job_row(job).data_source_properties)["currentKafkaPartitions"]


async def test_added_partitions_are_divided_into_tasks_and_shown_in_lag(tmp_path):
    topic = FakeTopic({0: 10})
    journal, txns, routine, scheduler, clients, job = await start_job(
        tmp_path, topic, {"property.kafka_default_offsets": "OFFSET_BEGINNING"})
    assert job.state is JobState.RUNNING and [t.partitions for t in job.tasks] == [[0]]
    assert [dict(r.start_offsets) for _, r in clients.sent] == [{0: 0}]
    assert lag(job) == {"0": 10} and consumed(job) == "0"

    # the running task has begun its txn when the topic grows from 1 to 3 partitions
    old = job.tasks[0]
    txn, _, _ = txns.begin("d", "t", job.label_for(old), 30, "BE: 1", SourceType.ROUTINE_LOAD_TASK)
    routine.task_began(job, old, txn.txn_id)
    topic.ends.update({1: 4, 2: 7})
    await scheduler.refresh_lag()

    # the new partitions start at kafka_default_offsets and show in Lag and the consumed partitions
    assert job.partitions == [0, 1, 2] and job.progress == {0: 0, 1: 0, 2: 0}
    assert lag(job) == {"0": 10, "1": 4, "2": 7} and consumed(job) == "0,1,2"
    # the job is divided again: the old task's txn is aborted, its partition's progress unchanged
    assert job.state is JobState.NEED_SCHEDULE
    assert txn.status is TxnStatus.ABORTED and "new partitions 1,2" in txn.reason

    clients.sent.clear()
    await scheduler.run_once()  # divided again, and the new tasks submitted in the same round
    assert job.state is JobState.RUNNING
    assert sorted(t.partitions for t in job.tasks) == [[0], [1], [2]]
    assert sorted(tuple(r.start_offsets.items()) for _, r in clients.sent) == [((0, 0),), ((1, 0),), ((2, 0),)]
    assert len({be for be, _ in clients.sent}) == 3  # one task per alive BE

    # nothing new: the next refreshes leave the tasks alone
    tasks = list(job.tasks)
    await scheduler.refresh_lag()
    assert job.state is JobState.RUNNING and job.tasks == tasks

    # the partitions and their progress are journaled: a replay gives the same job
    live = journal.dump()
    journal.close()
    journal2, _, _, routine2, _, _ = await cluster(tmp_path, FakeTopic({}), Clock())
    assert journal2.dump() == live
    replayed = routine2.job("d", "j")
    assert replayed.partitions == [0, 1, 2] and replayed.progress == {0: 0, 1: 0, 2: 0}


async def test_added_partitions_start_at_the_end_by_default(tmp_path):
    topic = FakeTopic({0: 10, 1: 3})
    _, _, _, scheduler, _, job = await start_job(tmp_path, topic)  # no kafka_default_offsets: OFFSET_END
    assert job.progress == {0: 10, 1: 3}
    topic.ends.update({2: 5})
    await scheduler.refresh_lag()
    assert job.partitions == [0, 1, 2] and job.progress == {0: 10, 1: 3, 2: 5}
    assert lag(job) == {"0": 0, "1": 0, "2": 0}
    await scheduler.run_once()
    assert sorted(t.partitions for t in job.tasks) == [[0], [1], [2]]


async def test_pinned_partitions_are_not_refreshed(tmp_path):
    topic = FakeTopic({0: 10, 1: 10})
    _, _, _, scheduler, _, job = await start_job(tmp_path, topic, {"kafka_partitions": "0", "kafka_offsets": "2"})
    tasks = list(job.tasks)
    topic.ends.update({2: 5})
    await scheduler.refresh_lag()
    assert job.state is JobState.RUNNING and job.tasks == tasks
    assert job.partitions == [0] and job.progress == {0: 2} and lag(job) == {"0": 8}


async def test_a_failed_partition_lookup_keeps_the_job_running(tmp_path):
    topic = FakeTopic({0: 10})
    _, _, _, scheduler, _, job = await start_job(tmp_path, topic)
    tasks = list(job.tasks)
    topic.ends.update({1: 5})
    topic.down = True
    await scheduler.refresh_lag()
    assert job.state is JobState.RUNNING and job.tasks == tasks and job.partitions == [0]
    topic.down = False
    await scheduler.refresh_lag()
    assert job.partitions == [0, 1] and job.state is JobState.NEED_SCHEDULE


async def test_a_paused_job_picks_up_new_partitions_once_resumed(tmp_path):
    topic = FakeTopic({0: 10})
    _, _, routine, scheduler, _, job = await start_job(tmp_path, topic)
    routine.pause("d", "j")
    topic.ends.update({1: 6})
    await scheduler.refresh_lag()
    assert job.state is JobState.PAUSED and job.partitions == [0]
    routine.resume("d", "j")
    await scheduler.run_once()  # divided over the partitions known so far
    await scheduler.refresh_lag()
    assert job.partitions == [0, 1] and job.progress == {0: 10, 1: 6}
    await scheduler.run_once()
    assert sorted(t.partitions for t in job.tasks) == [[0], [1]]


async def test_auto_resume_counts_only_replicas_a_load_would_write_to(tmp_path):
    """A TOO_FEW_REPLICAS pause is auto-resumed once every tablet has a write quorum of NORMAL,
    not-bad replicas on alive BEs: the replicas the coordinator writes to (common/quorum.py).
    Counting every replica on an alive BE resumed a job whose next load then paused it again."""
    from fe.catalog.model import ReplicaState
    from fe.routineload.state import PauseReasonKind
    _, _, routine, scheduler, _, job = await start_job(tmp_path, FakeTopic({0: 10}))
    backends = scheduler._backends
    table = scheduler._catalog.table("d", "t")[1]
    (tablet,) = [t for p in table.partitions for t in p.tablets]
    assert len(tablet.replicas) == 3 and table.quorum == 2
    tablet.replicas[1].state = ReplicaState.CLONE
    tablet.replicas[2].bad = True
    routine.pause_for(job, PauseReasonKind.TOO_FEW_REPLICAS, "tablet reached 1 of the 2 replicas")
    backends._wall_ms = lambda: job.sm.pause_time_ms + 1000
    alive_backends(backends, 3)  # every BE heartbeats after the pause
    await scheduler.run_once()
    assert job.state is JobState.PAUSED  # one writable replica of the two MAJORITY needs
    tablet.replicas[1].state = ReplicaState.NORMAL  # the clone finished
    await scheduler.run_once()
    assert job.state in (JobState.NEED_SCHEDULE, JobState.RUNNING)


async def test_auto_resume_waits_for_a_heartbeat_after_the_pause(tmp_path):
    """The flaky test_too_few_replicas_pauses_and_auto_resumes: BEs killed a moment before the
    pause still look alive until heartbeat_timeout_second passes, so counting them resumed the
    job into the same failure three times in a second and spent its auto-resume budget (3 in
    5 minutes). A replica counts for auto-resume only once its BE heartbeated after the pause."""
    from fe.routineload.state import PauseReasonKind
    clock_ms = [0]
    _, _, routine, scheduler, _, job = await start_job(tmp_path, FakeTopic({0: 10}))
    backends = scheduler._backends
    backends._wall_ms = lambda: clock_ms[0]
    clock_ms[0] = 1_700_000_000_000 - 500  # every BE heartbeats, then two of them die
    alive_backends(backends, 3)
    routine.pause_for(job, PauseReasonKind.TOO_FEW_REPLICAS, "tablet reached 1 of the 2 replicas")
    assert all(b.alive for b in backends.all())  # the FE has not noticed yet
    for _ in range(5):
        await scheduler.run_once()
        assert job.state is JobState.PAUSED, "resumed on BEs that have not heartbeated since the pause"
    assert job.auto_resume.resumed_at_ms == []
    clock_ms[0] = job.sm.pause_time_ms + 1000  # the BEs are back: their heartbeats follow the pause
    alive_backends(backends, 3)
    await scheduler.run_once()
    assert job.state in (JobState.NEED_SCHEDULE, JobState.RUNNING)
