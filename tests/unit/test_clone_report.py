"""Tablet report reconciliation and the replica journal verbs (fake BEs, no processes)."""

from __future__ import annotations

import pytest

from common.errors import NotFound
from fe.catalog.model import Replica, ReplicaState
from fe.system.report import ReportedTablet, TabletReportHandler
from fe.txn.state import SourceType, TxnStatus
from tests.unit.test_catalog import FakeClients, build, spec
from tests.unit.test_txn import Clock, setup


def held(catalog, backend_id: int, **override) -> list[ReportedTablet]:
    """What a BE that lost nothing would report."""
    out = []
    for loc in catalog.tablet_locations():
        r = loc.tablet.replica_on(backend_id)
        if r is not None:
            out.append(ReportedTablet(loc.tablet.tablet_id, r.replica_id, override.get("version", r.version),
                                      r.row_count, r.data_size, r.version_count))
    return out


async def test_missing_replicas_are_marked_bad_after_two_reports(tmp_path):
    journal, catalog, txns = await setup(tmp_path, Clock())
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=4))
    be = catalog._backends.all()[0].backend_id
    handler = TabletReportHandler(catalog, catalog._backends, txns)
    full = held(catalog, be)
    assert len(full) == 4
    assert handler.handle(be, full, []).marked_missing == []
    lost = full[0].tablet_id
    first = handler.handle(be, full[1:], [])
    assert first.marked_missing == []  # one report might predate the replica: not yet
    assert handler.handle(be, full, []).marked_missing == []  # back: the strike is forgotten
    handler.handle(be, full[1:], [])
    second = handler.handle(be, full[1:], [])
    assert second.marked_missing == [lost]
    assert catalog.location(lost).tablet.replica_on(be).bad
    assert handler.handle(be, full[1:], []).marked_missing == []  # already bad: once only
    with pytest.raises(NotFound):
        handler.handle(987654, [], [])
    assert table.partitions[0].tablets


async def test_orphans_dropped_after_two_reports_but_not_during_ddl_or_clone(tmp_path):
    journal, catalog, txns = await setup(tmp_path, Clock())
    catalog.create_database("d")
    await catalog.create_table("d", spec("t", buckets=2))
    be = catalog._backends.all()[0].backend_id
    busy: set[tuple[int, int]] = set()
    handler = TabletReportHandler(catalog, catalog._backends, txns, busy=lambda b, t: (b, t) in busy)
    orphan = ReportedTablet(555, 556, 3, 10, 100, 3)
    cloning = ReportedTablet(777, 778, 1, 0, 0, 1)
    busy.add((be, 777))
    report = held(catalog, be) + [orphan, cloning]
    assert handler.handle(be, report, []).drop_tablet_ids == []
    await catalog._lock.acquire()  # a CREATE TABLE between its BE calls and its record
    try:
        assert handler.handle(be, report, []).drop_tablet_ids == []
    finally:
        catalog._lock.release()
    assert handler.handle(be, report, []).drop_tablet_ids == [555]


async def test_versions_only_go_up_and_finished_txns_are_answered(tmp_path):
    clock = Clock()
    journal, catalog, txns = await setup(tmp_path, clock)
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=1))
    tablet = table.partitions[0].tablets[0]
    be = tablet.replicas[0].backend_id
    replica = tablet.replicas[0]
    catalog.update_replicas([{"tablet_id": tablet.tablet_id, "backend_id": be, "last_failed_version": 3}])
    handler = TabletReportHandler(catalog, catalog._backends, txns)
    up = [ReportedTablet(tablet.tablet_id, replica.replica_id, 3, 7, 70, 3)]
    out = handler.handle(be, up, [])
    assert out.synced == [tablet.tablet_id]
    assert (replica.version, replica.row_count, replica.data_size, replica.last_failed_version) == (3, 7, 70, -1)
    down = [ReportedTablet(tablet.tablet_id, replica.replica_id, 2, 1, 1, 2)]
    assert handler.handle(be, down, []).synced == [] and replica.version == 3

    open_txn, _, _ = txns.begin("d", "t", "a", 60, "BE: 1", SourceType.BACKEND_STREAMING)
    done, _, _ = txns.begin("d", "t", "b", 60, "BE: 1", SourceType.BACKEND_STREAMING)
    txns.abort(done.txn_id, "test")
    assert txns.get(done.txn_id).status is TxnStatus.ABORTED
    out = handler.handle(be, up, [open_txn.txn_id, done.txn_id, 424242])
    assert out.finished_txn_ids == [done.txn_id, 424242]


async def test_replica_verbs_replay_to_the_same_state(tmp_path):
    clients = FakeClients()
    journal, catalog = build(tmp_path, clients, bes=4)
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=2))
    tablet = table.partitions[0].tablets[0]
    spare = next(b.backend_id for b in catalog._backends.all()
                 if tablet.replica_on(b.backend_id) is None)
    catalog.add_replica(tablet.tablet_id, Replica(99999, spare, version=1, last_success_version=-1,
                                                  state=ReplicaState.CLONE))
    catalog.update_replicas([{"tablet_id": tablet.tablet_id, "backend_id": spare, "state": "NORMAL",
                              "version": 1, "data_size": 5}])
    victim = tablet.replicas[0].backend_id
    catalog.update_replicas([{"tablet_id": tablet.tablet_id, "backend_id": victim, "bad": True}])
    catalog.drop_replica(tablet.tablet_id, victim)
    with pytest.raises(ValueError):
        catalog.update_replicas([{"tablet_id": tablet.tablet_id, "backend_id": spare, "colour": 1}])
    live = journal.dump()["catalog"]
    journal.close()
    journal2, catalog2 = build(tmp_path, FakeClients(), bes=4)
    assert journal2.dump()["catalog"] == live
    t2 = catalog2.location(tablet.tablet_id).tablet
    assert t2.replica_on(victim) is None and t2.replica_on(spare).state is ReplicaState.NORMAL
    assert t2.replica_on(spare).data_size == 5
    assert catalog2._ids.next() > 99999
