"""Orphan drops from tablet reports name the replica, and a BE drop waits for publish and clone
install: a drop meant for an old replica never deletes one a clone has just made in its place,
and never races a write of the same tablet's meta (fake FE link, real BE storage)."""

from __future__ import annotations

import threading

from be.agent.report import TabletReporter
from be.storage.rowsets import RowsetStore
from be.storage.store import BeStore
from be.storage.tablets import TabletManager, TabletMeta
from common.gen.tabletsim.v1 import frontend_pb2
from common.rowcodec import encode_rows
from fe.service.frontend_report import ReportServiceMixin
from fe.system.report import ReportedTablet, TabletReportHandler
from tests.unit.test_catalog import spec
from tests.unit.test_txn import Clock, setup


class FeLink:
    """The BE's FrontendService stub, answered by a real report handler in process. ``between``
    runs after the FE has answered and before the BE reads the answer (a slow link)."""

    def __init__(self, handler: TabletReportHandler) -> None:
        self.servicer = ReportServiceMixin()
        self.servicer.attach_reports(handler)
        self.between = lambda: None
        self.answers = []

    async def ReportTablets(self, request, timeout=None):
        resp = await self.servicer.ReportTablets(request, None)
        self.answers.append(resp)
        self.between()
        return resp


def be_storage(path):
    store = BeStore(str(path))
    tablets = TabletManager(store)
    return store, tablets, RowsetStore(store, tablets)


async def test_a_late_orphan_drop_spares_the_replica_a_clone_just_made(tmp_path):
    journal, catalog, txns = await setup(tmp_path / "fe", Clock())
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=1))
    be = catalog._backends.all()[0].backend_id
    tablet = table.partitions[0].tablets[0]
    old = tablet.replica_on(be)
    store, tablets, rowsets = be_storage(tmp_path / "be")
    tablets.create([TabletMeta(tablet.tablet_id, old.replica_id, table.db_id, table.table_id,
                               table.partitions[0].partition_id, 1, "[]")])
    catalog.drop_replica(tablet.tablet_id, be)  # a balance move whose BE drop was lost: an orphan now

    link = FeLink(TabletReportHandler(catalog, catalog._backends, txns))
    reporter = TabletReporter(1.0, lambda: be, lambda: link, tablets, rowsets, busy=set)
    await reporter.report_once()
    assert list(link.answers[-1].drop_tablet_ids) == []  # one strike only
    new_replica_id = catalog._ids.next()

    def clone_back() -> None:
        """The scheduler clones the tablet back onto this BE (DropTablets, CreateTablets, ...)."""
        tablets.drop([tablet.tablet_id], [old.replica_id])
        tablets.create([TabletMeta(tablet.tablet_id, new_replica_id, table.db_id, table.table_id,
                                   table.partitions[0].partition_id, 1, "[]")])

    link.between = clone_back
    await reporter.report_once()
    assert list(link.answers[-1].drop_tablet_ids) == [tablet.tablet_id]  # the old one, by then
    kept = tablets.get(tablet.tablet_id)
    assert kept is not None and kept.replica_id == new_replica_id, \
        "the orphan drop for the old replica deleted the replica the clone made"
    store.close()


async def test_orphan_drops_name_the_reported_replica_and_restart_when_it_changes(tmp_path):
    journal, catalog, txns = await setup(tmp_path, Clock())
    catalog.create_database("d")
    await catalog.create_table("d", spec("t", buckets=1))
    be = catalog._backends.all()[0].backend_id
    handler = TabletReportHandler(catalog, catalog._backends, txns)
    servicer = ReportServiceMixin()
    servicer.attach_reports(handler)

    def report(*replicas: tuple[int, int]):
        return [ReportedTablet(tablet_id, replica_id, 1, 0, 0, 1) for tablet_id, replica_id in replicas]

    assert handler.handle(be, report((777, 1001)), []).drop_tablet_ids == []
    # the BE now holds another replica of tablet 777 (re-made there): its strikes start again
    assert handler.handle(be, report((777, 1002)), []).drop_tablet_ids == []
    out = handler.handle(be, report((777, 1002), (778, 1003)), [])
    assert (out.drop_tablet_ids, out.drop_replica_ids) == ([777], [1002])

    request = frontend_pb2.ReportTabletsRequest(backend_id=be, tablets=[
        frontend_pb2.TabletReport(tablet_id=778, replica_id=1003, version=1)])
    resp = await servicer.ReportTablets(request, None)
    assert (list(resp.drop_tablet_ids), list(resp.drop_replica_ids)) == ([778], [1003])


def test_a_drop_waits_for_a_publish_of_the_same_tablet(tmp_path):
    """A drop that ran in the middle of a publish (between the publish reading the meta and
    writing it back) let the publish write the dropped tablet's meta again: the tablet came
    back at the next start, without its rows."""
    store, tablets, rowsets = be_storage(tmp_path)
    tablets.create([TabletMeta(5, 6, 1, 2, 3, 1, "[]")])
    rowsets.write(100, [(5, 3, encode_rows([(1, "a")]), 1)])
    real_db = store.db
    in_publish, go_on = threading.Event(), threading.Event()

    class PausingDb:
        """The BE's RocksDB, holding the publish's write until the test lets it go."""

        def __getattr__(self, name):
            return getattr(real_db, name)

        def write(self, batch, opts):
            if threading.current_thread().name == "publish":
                in_publish.set()
                assert go_on.wait(10), "the test never let the publish go on"
            return real_db.write(batch, opts)

    store.db = PausingDb()
    publish = threading.Thread(target=rowsets.publish, args=(100, 5, 2), name="publish")
    publish.start()
    assert in_publish.wait(10), "the publish never reached its write"
    drop = threading.Thread(target=tablets.drop, args=([5], [6]), name="drop")
    drop.start()
    drop.join(0.5)  # without the shared lock the drop finishes here, inside the publish
    go_on.set()
    publish.join(10)
    drop.join(10)
    assert not publish.is_alive() and not drop.is_alive()
    assert tablets.get(5) is None
    store.db = real_db
    store.close()
    store, tablets, _ = be_storage(tmp_path)
    assert tablets.get(5) is None, "the dropped tablet came back after a restart"
    store.close()
