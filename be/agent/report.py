"""Tablet reports: every report interval (and right after start) the BE tells the FE every tablet
it holds, with versions, row counts, sizes, version counts and compaction status, and the txns it
keeps pending rowsets of.

The FE answers with orphan replicas to drop and finished txns whose pending rowsets to delete.
Tablets being cloned (``busy``) are never dropped nor cleared here, whatever the answer says, and
a drop names the replica the report showed: a tablet whose replica here changed since (a clone
re-made it) is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from be.storage.rowsets import RowsetStore
from be.storage.tablets import CompactionStatus, TabletManager, TabletMeta
from common.daemon import PeriodicDaemon
from common.gen.tabletsim.v1 import frontend_pb2, frontend_pb2_grpc

log = logging.getLogger(__name__)


def no_compaction_status(tablet_id: int) -> CompactionStatus:
    """For a BE that runs no compaction: every field at its zero value."""
    return CompactionStatus()


class TabletReporter:
    def __init__(self, interval_s: float, backend_id: Callable[[], int],
                 stub: Callable[[], frontend_pb2_grpc.FrontendServiceStub], tablets: TabletManager,
                 rowsets: RowsetStore, busy: Callable[[], set[int]],
                 compaction_status: Callable[[int], CompactionStatus] = no_compaction_status) -> None:
        self._interval_s = interval_s
        self._compaction_status = compaction_status
        self._backend_id = backend_id
        self._stub = stub
        self._tablets = tablets
        self._rowsets = rowsets
        self._busy = busy
        self._failures = 0
        self.reports = 0
        self.failed_reports = 0
        """Reports the FE did not take (``reports`` counts those it did): StarRocks'
        engine_requests_total{type="report_all_tablets", status="failed" | "total"}."""
        self._daemon = PeriodicDaemon("tablet-report", lambda: self._interval_s, self._report_logged)

    def start(self) -> None:
        self._daemon.start()

    async def close(self) -> None:
        await self._daemon.close()

    def _tablet(self, m: TabletMeta) -> frontend_pb2.TabletReport:
        c = self._compaction_status(m.tablet_id)
        return frontend_pb2.TabletReport(
            tablet_id=m.tablet_id, replica_id=m.replica_id, version=m.version, row_count=m.row_count,
            data_size=m.data_size, version_count=m.version_count,
            cumulative_point=c.cumulative_point,
            last_cumulative_compaction_ms=c.last_cumulative_ms,
            last_cumulative_compaction_result=c.last_cumulative_result,
            last_base_compaction_ms=c.last_base_ms,
            last_base_compaction_result=c.last_base_result,
            stale_rowset_num=c.stale_rowset_num)

    def _build(self) -> frontend_pb2.ReportTabletsRequest:
        tablets = [self._tablet(m) for m in self._tablets.all()]
        return frontend_pb2.ReportTabletsRequest(backend_id=self._backend_id(), tablets=tablets,
                                                 pending_txn_ids=sorted(self._rowsets.pending_txns()))

    def _drop(self, tablet_ids: list[int], replica_ids: list[int] | None) -> list[int]:
        """Drop the replicas and forget their pending markers (a worker thread: both take the
        tablet lock, which publishes and clone installs hold while they write)."""
        dropped = self._tablets.drop(tablet_ids, replica_ids)
        for tablet_id in dropped:
            self._rowsets.forget_tablet(tablet_id)
        return dropped

    async def report_once(self) -> frontend_pb2.ReportTabletsResponse | None:
        if self._backend_id() <= 0:
            return None
        request = await asyncio.to_thread(self._build)
        resp = await self._stub().ReportTablets(request, timeout=max(self._interval_s, 10.0))
        busy = self._busy()
        named = len(resp.drop_replica_ids) == len(resp.drop_tablet_ids)  # else an FE naming none
        drop = [i for i, t in enumerate(resp.drop_tablet_ids) if t not in busy]
        if drop:
            tablet_ids = [resp.drop_tablet_ids[i] for i in drop]
            replica_ids = [resp.drop_replica_ids[i] for i in drop] if named else None
            dropped = await asyncio.to_thread(self._drop, tablet_ids, replica_ids)
            log.info("dropped %d of %d orphan replicas the FE does not know here: %s", len(dropped),
                     len(tablet_ids), dropped[:20])
        if resp.finished_txn_ids:
            pending = await asyncio.to_thread(self._rowsets.pending_tablets)  # takes the tablet lock
            cleared = 0
            for txn_id in resp.finished_txn_ids:
                tablets = sorted(pending.get(txn_id, set()) - busy)
                if tablets:
                    cleared += await asyncio.to_thread(self._rowsets.clear, txn_id, tablets)
            if cleared:
                log.info("cleared %d pending rowsets of %d finished txns", cleared, len(resp.finished_txn_ids))
        self.reports += 1
        return resp

    async def _report_logged(self) -> None:
        """One round of the daemon: a failed report is logged (rarely) and tried next round."""
        try:
            await self.report_once()
            self._failures = 0
        except grpc.aio.AioRpcError as exc:
            self._failures += 1
            self.failed_reports += 1
            if self._failures in (1, 10) or self._failures % 100 == 0:
                log.warning("tablet report failed (%d in a row): %s %s", self._failures,
                            exc.code().name, exc.details())
