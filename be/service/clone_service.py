"""BackendService methods of clone: CloneTablet (this BE is the destination) and ReadRowsets
(this BE is the source). Mixed into the BackendServicer; its @servicer decorator maps errors."""

from __future__ import annotations

from be.clone.source import stream_rowsets
from be.clone.task import CloneRunner
from be.storage.rowsets import RowsetStore, StorageError
from be.storage.store import BeStore
from common.errors import FailedPrecondition, InvalidArgument


class CloneServiceMixin:
    _store: BeStore
    _rowsets: RowsetStore
    _cloner: CloneRunner | None = None

    def attach_cloner(self, cloner: CloneRunner) -> None:
        self._cloner = cloner

    async def CloneTablet(self, request, context):
        if self._cloner is None:
            raise FailedPrecondition("this backend does not run clone tasks yet (starting up)")
        return await self._cloner.clone(request, context.time_remaining())

    async def ReadRowsets(self, request, context):
        if request.tablet_id <= 0 or request.version_to <= 0 or request.version_from < 0:
            raise InvalidArgument("ReadRowsets needs tablet_id, version_from >= 0 and version_to > 0")
        try:
            async for chunk in stream_rowsets(self._store, self._rowsets, request.tablet_id,
                                              request.version_from, request.version_to):
                yield chunk
        except StorageError as exc:
            raise FailedPrecondition(str(exc)) from None
