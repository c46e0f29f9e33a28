"""BackendService: what the FE and peer BEs call on a BE."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from be.storage.store import BeStore
from be.storage.tablets import TabletManager, TabletMeta
from common.errors import InvalidArgument
from common.gen.tabletsim.v1 import backend_pb2, backend_pb2_grpc
from common.rpc import servicer


@servicer
class BackendServicer(backend_pb2_grpc.BackendServiceServicer):
    def __init__(self, store: BeStore, tablets: TabletManager, start_time_ms: int,
                 backend_id: Callable[[], int]) -> None:
        self._store = store
        self._tablets = tablets
        self._start_time_ms = start_time_ms
        self._backend_id = backend_id

    async def GetBackendInfo(self, request, context):
        return backend_pb2.GetBackendInfoResponse(
            backend_id=self._backend_id(),
            start_time_ms=self._start_time_ms,
            tablet_num=len(self._tablets),
            storage_dir=self._store.storage_dir,
        )

    async def CreateTablets(self, request, context):
        metas = []
        for t in request.tablets:
            if t.tablet_id <= 0 or t.replica_id <= 0 or t.version <= 0:
                raise InvalidArgument(
                    f"tablet {t.tablet_id}: tablet_id, replica_id and version must be positive"
                )
            metas.append(TabletMeta(
                tablet_id=t.tablet_id, replica_id=t.replica_id, db_id=t.db_id, table_id=t.table_id,
                partition_id=t.partition_id, version=t.version, schema_json=t.schema_json,
            ))
        created = await asyncio.to_thread(self._tablets.create, metas)
        return backend_pb2.CreateTabletsResponse(created=created)

    async def DropTablets(self, request, context):
        dropped = await asyncio.to_thread(self._tablets.drop, list(request.tablet_ids))
        return backend_pb2.DropTabletsResponse(dropped=dropped)
