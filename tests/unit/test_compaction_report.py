"""Compaction status from a BE's tablet report to SHOW TABLET(S): in memory only, and an
unchanged report journals nothing (fake BEs, no processes)."""

from __future__ import annotations

import time

from be.agent.report import TabletReporter
from be.storage.rowsets import RowsetStore
from be.storage.store import BeStore
from be.storage.tablets import CompactionStatus, TabletManager, TabletMeta
from common.gen.tabletsim.v1 import admin_pb2, frontend_pb2
from common.timefmt import fmt_ms
from fe.service.admin_catalog import replica_row
from fe.service.frontend_report import reported_tablet
from fe.system.report import TabletReportHandler
from tests.unit.test_catalog import spec
from tests.unit.test_txn import Clock, setup

CUMULATIVE_MS = int(time.time() * 1000) - 60_000


def report_of(tablet_id: int, replica_id: int, version: int, version_count: int, *, rows: int = 7,
              cumulative_ms: int = CUMULATIVE_MS, stale: int = 3) -> frontend_pb2.TabletReport:
    """The protobuf a BE sends (the servicer decodes it with ``reported_tablet``)."""
    return frontend_pb2.TabletReport(
        tablet_id=tablet_id, replica_id=replica_id, version=version, row_count=rows, data_size=rows * 10,
        version_count=version_count, cumulative_point=version - 1, last_cumulative_compaction_ms=cumulative_ms,
        last_cumulative_compaction_result="OK: merged 4 rowsets" if cumulative_ms else "",
        last_base_compaction_ms=0, last_base_compaction_result="", stale_rowset_num=stale)


async def test_report_fills_show_tablet_compaction_status_without_journaling_it(tmp_path):
    journal, catalog, txns = await setup(tmp_path, Clock())
    catalog.create_database("d")
    table = await catalog.create_table("d", spec("t", buckets=1))
    tablet = table.partitions[0].tablets[0]
    part = table.partitions[0]
    replica = tablet.replicas[0]
    be = replica.backend_id
    handler = TabletReportHandler(catalog, catalog._backends, txns)

    # no report yet: the row carries no compaction status
    assert not replica_row(tablet, replica, part).HasField("compaction_status")

    # a report at a higher version syncs the version (one record) and shows the status
    before = journal._editlog.last_seq
    handler.handle(be, [reported_tablet(report_of(tablet.tablet_id, replica.replica_id, 5, 5))], [])
    assert journal._editlog.last_seq == before + 1
    row = replica_row(tablet, replica, part)
    assert row.version == 5 and row.version_count == 5
    assert row.compaction_status == admin_pb2.CompactionStatus(
        cumulative_point=4, last_cumulative_compaction_time=fmt_ms(CUMULATIVE_MS),
        last_cumulative_compaction_result="OK: merged 4 rowsets", last_base_compaction_time="",
        last_base_compaction_result="", stale_rowset_num=3)
    assert row.compaction_status.last_cumulative_compaction_time.count(":") == 2  # 'YYYY-MM-DD HH:MM:SS'

    # the same report again: nothing journaled; a new compaction status alone: nothing journaled
    seq = journal._editlog.last_seq
    handler.handle(be, [reported_tablet(report_of(tablet.tablet_id, replica.replica_id, 5, 5))], [])
    later = CUMULATIVE_MS + 30_000
    handler.handle(be, [reported_tablet(report_of(tablet.tablet_id, replica.replica_id, 5, 5,
                                                  cumulative_ms=later, stale=0))], [])
    assert journal._editlog.last_seq == seq
    row = replica_row(tablet, replica, part)
    assert row.compaction_status.last_cumulative_compaction_time == fmt_ms(later)
    assert row.compaction_status.stale_rowset_num == 0

    # compaction lowered the version count at the same version: synced, once
    out = handler.handle(be, [reported_tablet(report_of(tablet.tablet_id, replica.replica_id, 5, 2))], [])
    assert out.synced == [tablet.tablet_id] and replica.version_count == 2
    assert journal._editlog.last_seq == seq + 1
    handler.handle(be, [reported_tablet(report_of(tablet.tablet_id, replica.replica_id, 5, 2))], [])
    assert journal._editlog.last_seq == seq + 1

    # a report of another replica id (a stale copy) does not set this replica's status
    other = tablet.replicas[1]
    handler.handle(other.backend_id, [reported_tablet(report_of(tablet.tablet_id, other.replica_id + 999, 5, 2))],
                   [])
    assert other.compaction is None

    # never journaled: not in the dump, and a replayed FE has none until the next report
    live = journal.dump()
    assert "compaction" not in str(live["catalog"])
    journal.close()
    journal2, catalog2, txns2 = await setup(tmp_path, Clock())
    assert journal2.dump() == live
    replayed = catalog2.location(tablet.tablet_id).tablet.replica_on(be)
    assert replayed.compaction is None and replayed.version_count == 2


class _NoStub:
    pass


def test_be_report_carries_the_compaction_status(tmp_path):
    store = BeStore(str(tmp_path))
    tablets = TabletManager(store)
    tablets.create([TabletMeta(11, 12, 1, 2, 3, 1, "[]"), TabletMeta(21, 22, 1, 2, 3, 1, "[]")])
    rowsets = RowsetStore(store, tablets)
    status = {11: CompactionStatus(cumulative_point=3, last_cumulative_ms=1_700_000_000_000,
                                   last_cumulative_result="OK: merged 3 rowsets", last_base_ms=1_700_000_100_000,
                                   last_base_result="FAILED: disk full", stale_rowset_num=2)}
    reporter = TabletReporter(5.0, lambda: 1, lambda: _NoStub(), tablets, rowsets, set,
                              compaction_status=lambda t: status.get(t, CompactionStatus()))
    sent = {t.tablet_id: t for t in reporter._build().tablets}
    assert (sent[11].cumulative_point, sent[11].last_cumulative_compaction_ms, sent[11].last_cumulative_compaction_result,
            sent[11].last_base_compaction_ms, sent[11].last_base_compaction_result, sent[11].stale_rowset_num) == (
        3, 1_700_000_000_000, "OK: merged 3 rowsets", 1_700_000_100_000, "FAILED: disk full", 2)
    assert sent[21].cumulative_point == 0 and sent[21].last_cumulative_compaction_result == ""
    # without the argument (a BE that runs no compaction) every field is zero
    plain = TabletReporter(5.0, lambda: 1, lambda: _NoStub(), tablets, rowsets, set)
    assert all(t.last_cumulative_compaction_ms == 0 and t.stale_rowset_num == 0 for t in plain._build().tablets)
    decoded = reported_tablet(sent[11])
    assert decoded.compaction.last_base_result == "FAILED: disk full" and decoded.version_count == 1
