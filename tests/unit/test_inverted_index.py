"""The catalog's inverted index (backend -> tablet -> replica, StarRocks' TabletInvertedIndex)
equals a walk of the catalog after every kind of change, live and replayed, and a tablet report
touches only the reporting BE's replicas."""

from __future__ import annotations

from fe.catalog.model import Replica, ReplicaState, Tablet
from fe.system.report import ReportedTablet, TabletReportHandler
from tests.unit.test_catalog import FakeClients, build, spec
from tests.unit.test_txn import Clock, setup


def walked(catalog) -> dict[int, dict[int, Replica]]:
    out: dict[int, dict[int, Replica]] = {}
    for loc in catalog.tablet_locations():
        for r in loc.tablet.replicas:
            out.setdefault(r.backend_id, {})[loc.tablet.tablet_id] = r
    return out


def assert_index_is_the_walk(catalog) -> None:
    walk = walked(catalog)
    index = {be: catalog.replicas_on(be) for be in catalog._by_backend}
    assert index == walk
    for be, replicas in walk.items():  # the very replica objects the catalog holds
        assert all(index[be][t] is r for t, r in replicas.items())
        assert catalog.replica_count(be) == len(replicas)
    counts = catalog.replicas_per_backend()
    assert {be: n for be, n in counts.items() if n} == {be: len(r) for be, r in walk.items()}


def as_dicts(catalog) -> dict[int, dict[int, dict]]:
    return {be: {t: r.to_dict() for t, r in catalog.replicas_on(be).items()} for be in catalog._by_backend}


async def test_the_index_equals_a_walk_after_every_change_and_after_replay(tmp_path):
    journal, catalog = build(tmp_path, FakeClients(), bes=4)
    bes = [b.backend_id for b in catalog._backends.all()]
    assert_index_is_the_walk(catalog)
    catalog.create_database("d")
    catalog.create_database("e")
    t1 = await catalog.create_table("d", spec("t1", buckets=4, properties={"replication_num": "3"}))
    await catalog.create_table("d", spec("t2", buckets=3, properties={"replication_num": "2"}))
    await catalog.create_table("e", spec("t3", buckets=2, properties={"replication_num": "1"}))
    assert_index_is_the_walk(catalog)

    tablet = t1.partitions[0].tablets[0]
    spare = next(be for be in bes if tablet.replica_on(be) is None)
    catalog.add_replica(tablet.tablet_id, Replica(catalog._ids.next(), spare, state=ReplicaState.CLONE))
    assert_index_is_the_walk(catalog)
    assert catalog.replicas_on(spare)[tablet.tablet_id].state is ReplicaState.CLONE
    catalog.add_replica(tablet.tablet_id, Replica(catalog._ids.next(), spare))  # re-made on the same BE
    assert_index_is_the_walk(catalog)
    catalog.update_replicas([{"tablet_id": tablet.tablet_id, "backend_id": spare, "version": 4, "bad": True}])
    assert catalog.replicas_on(spare)[tablet.tablet_id].bad
    catalog.drop_replica(tablet.tablet_id, tablet.replicas[0].backend_id)
    assert_index_is_the_walk(catalog)
    catalog.drop_replica(tablet.tablet_id, 987654)  # no replica there: nothing changes
    assert_index_is_the_walk(catalog)

    await catalog.drop_table("d", "t2")
    assert_index_is_the_walk(catalog)
    live = as_dicts(catalog)
    journal.close()

    journal2, replayed = build(tmp_path, FakeClients(), bes=4)  # replay: the same index
    assert as_dicts(replayed) == live
    assert_index_is_the_walk(replayed)
    await replayed.drop_database("e")
    assert_index_is_the_walk(replayed)
    journal2.checkpoint()
    live = as_dicts(replayed)
    journal2.close()

    journal3, from_image = build(tmp_path, FakeClients(), bes=4)  # image load, no tail
    assert journal3.replayed == 0
    assert as_dicts(from_image) == live
    assert_index_is_the_walk(from_image)
    from_image.load(from_image.dump())  # load() rebuilds it from scratch
    assert as_dicts(from_image) == live
    assert_index_is_the_walk(from_image)
    await from_image.drop_database("d")
    assert from_image._by_backend == {} and from_image.replicas_per_backend() == dict.fromkeys(bes, 0)
    journal3.close()


async def test_a_report_touches_only_the_reporting_backends_replicas(tmp_path, monkeypatch):
    journal, catalog, txns = await setup(tmp_path, Clock())
    catalog.create_database("d")
    await catalog.create_table("d", spec("t", buckets=9, properties={"replication_num": "1"}))
    be = catalog._backends.all()[0].backend_id
    mine = catalog.replicas_on(be)
    assert 0 < len(mine) < 9
    report = [ReportedTablet(t, r.replica_id, r.version + 1, 5, 50, 2) for t, r in mine.items()]
    lost = report.pop()  # the BE lost one replica

    def no_walk():
        raise AssertionError("a report for one BE walked every tablet of the catalog")

    asked: list[int] = []
    real_replica_on = Tablet.replica_on

    def replica_on(self, backend_id):
        asked.append(self.tablet_id)
        return real_replica_on(self, backend_id)

    monkeypatch.setattr(catalog, "tablet_locations", no_walk)
    monkeypatch.setattr(Tablet, "replica_on", replica_on)
    handler = TabletReportHandler(catalog, catalog._backends, txns)
    first = handler.handle(be, report, [])
    second = handler.handle(be, report, [])
    assert sorted(first.synced) == sorted(t.tablet_id for t in report)
    assert second.marked_missing == [lost.tablet_id]
    assert set(asked) <= set(mine), "the report looked at tablets that have no replica on this BE"
    assert catalog.replicas_on(be)[lost.tablet_id].bad
    assert all(catalog.replicas_on(be)[t.tablet_id].version == t.version for t in report)
    journal.close()
