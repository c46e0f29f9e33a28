"""FrontendService.ReportTablets: a BE's tablet report, decoded for :mod:`fe.system.report`."""

from __future__ import annotations

from common.compaction_status import CompactionStatus
from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import frontend_pb2
from fe.system.report import ReportedTablet, TabletReportHandler


def reported_tablet(t: frontend_pb2.TabletReport) -> ReportedTablet:
    return ReportedTablet(
        t.tablet_id, t.replica_id, t.version, t.row_count, t.data_size, t.version_count,
        CompactionStatus(
            cumulative_point=t.cumulative_point,
            last_cumulative_ms=t.last_cumulative_compaction_ms,
            last_cumulative_result=t.last_cumulative_compaction_result,
            last_base_ms=t.last_base_compaction_ms,
            last_base_result=t.last_base_compaction_result,
            stale_rowset_num=t.stale_rowset_num,
        ))


class ReportServiceMixin:
    """Mixed into the FrontendServicer; errors are mapped by its @servicer decorator."""

    _reports: TabletReportHandler | None = None

    def attach_reports(self, handler: TabletReportHandler) -> None:
        self._reports = handler

    async def ReportTablets(self, request, context):
        if request.backend_id <= 0:
            raise InvalidArgument("field 'backend_id' is required: register first (RegisterBackend)")
        if self._reports is None:
            return frontend_pb2.ReportTabletsResponse()
        out = self._reports.handle(request.backend_id, [reported_tablet(t) for t in request.tablets],
                                   list(request.pending_txn_ids))
        return frontend_pb2.ReportTabletsResponse(drop_tablet_ids=out.drop_tablet_ids,
                                                  drop_replica_ids=out.drop_replica_ids,
                                                  finished_txn_ids=out.finished_txn_ids)
