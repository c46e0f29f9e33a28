"""FrontendService: what BEs call on the FE."""

from __future__ import annotations

from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import frontend_pb2, frontend_pb2_grpc
from common.rpc import servicer
from fe.system.backends import BackendRegistry, DiskInfo, Heartbeat


def _require_endpoint(host: str, port: int) -> None:
    if not host:
        raise InvalidArgument("field 'host' is required: the address the BE listens on")
    if not 0 < port < 65536:
        raise InvalidArgument(f"field 'be_port' = {port}: must be a TCP port in 1..65535")


@servicer
class FrontendServicer(frontend_pb2_grpc.FrontendServiceServicer):
    def __init__(self, backends: BackendRegistry, heartbeat_interval_ms: int) -> None:
        self._backends = backends
        self._interval_ms = heartbeat_interval_ms

    async def RegisterBackend(self, request, context):
        _require_endpoint(request.host, request.be_port)
        if request.start_time_ms <= 0:
            raise InvalidArgument("field 'start_time_ms' must be the BE's start time in epoch millis")
        backend_id = self._backends.register(
            request.backend_id, request.host, request.be_port, request.http_port, request.start_time_ms
        )
        return frontend_pb2.RegisterBackendResponse(
            backend_id=backend_id, heartbeat_interval_ms=self._interval_ms
        )

    async def Heartbeat(self, request, context):
        if request.backend_id <= 0:
            raise InvalidArgument("field 'backend_id' is required: register first (RegisterBackend)")
        _require_endpoint(request.host, request.be_port)
        disk = request.disk
        known = self._backends.heartbeat(
            Heartbeat(
                backend_id=request.backend_id,
                host=request.host,
                be_port=request.be_port,
                http_port=request.http_port,
                start_time_ms=request.start_time_ms,
                disk=DiskInfo(
                    total_capacity=disk.total_capacity_bytes,
                    data_used=disk.data_used_bytes,
                    avail_capacity=disk.avail_capacity_bytes,
                ),
                tablet_num=request.tablet_num,
            )
        )
        return frontend_pb2.HeartbeatResponse(
            need_register=not known, heartbeat_interval_ms=self._interval_ms
        )
