"""FrontendService.ReportTablets: a BE's tablet report, decoded for :mod:`fe.system.report`."""

from __future__ import annotations

from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import frontend_pb2
from fe.system.report import ReportedTablet, TabletReportHandler


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
        out = self._reports.handle(
            request.backend_id,
            [ReportedTablet(t.tablet_id, t.replica_id, t.version, t.row_count, t.data_size,
                            t.version_count) for t in request.tablets],
            list(request.pending_txn_ids))
        return frontend_pb2.ReportTabletsResponse(drop_tablet_ids=out.drop_tablet_ids,
                                                  finished_txn_ids=out.finished_txn_ids)
