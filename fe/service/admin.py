"""AdminService: what an operator does, over gRPC (grpcurl-friendly)."""

from __future__ import annotations

from common.gen.tabletsim.v1 import admin_pb2, admin_pb2_grpc
from common.rpc import servicer
from common.timefmt import fmt_bytes, fmt_ms
from fe.system.backends import BackendRegistry


@servicer
class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, backends: BackendRegistry) -> None:
        self._backends = backends

    async def ShowBackends(self, request, context):
        rows = []
        for be in self._backends.all():
            disk = be.disk
            used_pct = (
                f"{100.0 * (disk.total_capacity - disk.avail_capacity) / disk.total_capacity:.2f} %"
                if disk.total_capacity
                else "0.00 %"
            )
            rows.append(
                admin_pb2.BackendRow(
                    backend_id=be.backend_id,
                    host=be.host,
                    be_port=be.be_port,
                    http_port=be.http_port,
                    last_start_time=fmt_ms(be.last_start_time_ms),
                    last_heartbeat=fmt_ms(be.last_heartbeat_ms),
                    alive=be.alive,
                    tablet_num=be.tablet_num,
                    data_used_capacity=fmt_bytes(disk.data_used),
                    avail_capacity=fmt_bytes(disk.avail_capacity),
                    total_capacity=fmt_bytes(disk.total_capacity),
                    used_pct=used_pct,
                    err_msg=be.err_msg,
                )
            )
        return admin_pb2.ShowBackendsResponse(backends=rows)
