"""Issue 12, 3.3 without processes: what the FE does when a BE registers with a new start time
before heartbeat_timeout_second passed (it never looked dead). The scheduler runs over the fake
topic and BE stubs of test_partition_refresh, with a real journal, catalog and txns.
"""

from __future__ import annotations

from fe.routineload.state import JobState
from fe.txn.state import SourceType, TxnStatus
from tests.unit.test_catalog import spec
from tests.unit.test_partition_refresh import FakeTopic, cluster
from tests.unit.test_txn import Clock

SOURCE = {"kafka_broker_list": "127.0.0.1:9092", "kafka_topic": "events",
          "property.kafka_default_offsets": "OFFSET_BEGINNING"}


async def test_restart_aborts_the_old_process_txns_and_renews_its_tasks_at_once(tmp_path):
    clock = Clock()
    journal, catalog, txns, routine, scheduler, clients = await cluster(tmp_path, FakeTopic({0: 9, 1: 9, 2: 9}),
                                                                        clock)
    backends = catalog._backends
    catalog.create_database("d")
    await catalog.create_table("d", spec("t", buckets=1))
    for name in ("a", "b"):
        routine.create("d", name, "t", "", "", {"desired_concurrent_number": "3"}, SOURCE)
    await scheduler.run_once()
    await scheduler.run_once()
    a, b = routine.job("d", "a"), routine.job("d", "b")
    assert all(t.submitted for t in a.tasks + b.tasks) and len(a.tasks) == len(b.tasks) == 3
    be = backends.all()[0]
    on_be = {j.name: next(t for t in j.tasks if t.backend_id == be.backend_id) for j in (a, b)}
    elsewhere = [t for j in (a, b) for t in j.tasks if t.backend_id != be.backend_id]

    def begin(label: str, coordinator: int, source=SourceType.BACKEND_STREAMING):
        return txns.begin("d", "t", label, 30, f"BE: {coordinator}", source)[0]

    # job a's task on the BE has its txn open; job b's has not begun one yet
    running = begin(a.label_for(on_be["a"]), be.backend_id, SourceType.ROUTINE_LOAD_TASK)
    routine.task_began(a, on_be["a"], running.txn_id)
    stream = begin("stream-old", be.backend_id)
    committed = begin("stream-committed", be.backend_id)
    tablet = catalog.table("d", "t")[1].partitions[0].tablets[0]
    txns.commit(committed.txn_id, {tablet.tablet_id: [r.backend_id for r in tablet.replicas]}, {})
    other = begin("stream-other", backends.all()[1].backend_id)

    # the BE restarts; its new process begins a stream load before it registers
    clock.ms += 1000
    start_ms = clock.ms
    clock.ms += 100
    fresh = begin("stream-new", be.backend_id)
    backends.register(be.backend_id, be.host, be.be_port, be.http_port, start_ms)

    reason = f"coordinator backend {be.backend_id} restarted: its loads ended with the old process"
    assert (running.status, running.reason) == (TxnStatus.ABORTED, reason)
    assert (stream.status, stream.reason) == (TxnStatus.ABORTED, reason)
    assert committed.status is TxnStatus.COMMITTED  # it publishes
    assert other.status is TxnStatus.PREPARE and fresh.status is TxnStatus.PREPARE
    assert be.alive  # never dead: no re-division
    assert a.state is JobState.RUNNING and b.state is JobState.RUNNING

    # both tasks of the BE are renewed now (a's by its txn's abort), over the same partitions
    for job in (a, b):
        old = on_be[job.name]
        assert job.task(old.task_id) is None
        renewed = next(t for t in job.tasks if t.partitions == old.partitions)
        assert not renewed.submitted and renewed.next_schedule_ms <= clock.ms + 1000
    assert "restarted" in next(t for t in b.tasks if t.partitions == on_be["b"].partitions).message
    assert all(t in a.tasks + b.tasks for t in elsewhere)  # the other BEs' tasks run on

    # the next round sends the renewed tasks again, from the stored progress
    clients.sent.clear()
    clock.ms += 1000
    await scheduler.run_once()
    resent = sorted((r.job_name, tuple(r.start_offsets.items())) for _, r in clients.sent)
    assert resent == sorted((name, tuple((p, 0) for p in on_be[name].partitions)) for name in ("a", "b"))
