"""BackendService: what the FE and peer BEs call on a BE."""

from __future__ import annotations

from collections.abc import Callable

from be.storage.store import BeStore
from common.gen.tabletsim.v1 import backend_pb2, backend_pb2_grpc
from common.rpc import servicer


@servicer
class BackendServicer(backend_pb2_grpc.BackendServiceServicer):
    def __init__(self, store: BeStore, start_time_ms: int, backend_id: Callable[[], int]) -> None:
        self._store = store
        self._start_time_ms = start_time_ms
        self._backend_id = backend_id

    async def GetBackendInfo(self, request, context):
        return backend_pb2.GetBackendInfoResponse(
            backend_id=self._backend_id(),
            start_time_ms=self._start_time_ms,
            tablet_num=self._store.tablet_count(),
            storage_dir=self._store.storage_dir,
        )
