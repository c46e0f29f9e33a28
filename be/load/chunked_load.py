"""A routine load task's batch, loaded chunk by chunk inside the task's one transaction.

The consumer hands the batch over a chunk at a time (about ``write_buffer_size`` bytes of message
values). Each chunk is parsed and mapped into an Arrow table, routed on whole columns, encoded as
columnar segments and written to the replicas of its tablets while the consumer reads the next
one; the consumer waits (its "blocking put time") while the chunk before is still being written.
So a task holds at most two chunks and the objects made from one of them, whatever
max_batch_size is - as a StarRocks routine load task streams its Kafka batch through a pipe into
the tablet sink, whose delta writers flush memtables into the segments of one pending rowset per
tablet (be/load/writer.py TabletSink, be/storage/rowsets.py). Preparing, counting and writing a
chunk is be/load/pipeline.py LoadPipeline, which Stream Load of a large body uses too. Measured on
the routine load bench (400,000 ~100-byte JSON rows, 3 tasks): 16 MiB chunks load about a third faster than 4 MiB ones,
whose consumers wait for the chunk before and miss the end of their partitions within the batch
interval (common/config.py write_buffer_size).

The txn begins with the first chunk. Row counts, error samples (the rows mapping filtered, then
the rows no partition takes, as for the batch in one chunk) and max_filter_ratio cover the whole
batch: the ratio is checked once every chunk is written (as StarRocks checks it at the end
of the task), and a batch over it fails the task, whose txn is then aborted - the FE's abort
clears the segments already written on every BE.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from be.load.coordinator import LoadCoordinator, spec_from_params
from be.load.pipeline import BatchCounts, LoadPipeline
from be.load.router import Router
from be.load.writer import TabletSink, TooManyVersions, WriteOutcome
from common.errors import TabletsimError, Unavailable
from common.gen.tabletsim.v1 import backend_pb2, frontend_pb2, types_pb2
from common.loadformat import LoadPlan

__all__ = ["BatchCounts", "ChunkedLoad", "TaskFailed"]
log = logging.getLogger(__name__)


class TaskFailed(Exception):
    def __init__(self, kind: str, message: str, samples: list[types_pb2.FilteredRow] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.samples = samples or []


class ChunkedLoad:
    """Parse, map and write one task's batch in chunks, in one txn (see the module docstring).

    ``add`` each chunk, then ``finish`` for the commit infos; ``close`` in any case (it stops a
    chunk still being written when the task fails)."""

    def __init__(self, coordinator: LoadCoordinator, req: backend_pb2.RoutineLoadTask) -> None:
        self._coordinator = coordinator
        self._req = req
        self._spec = spec_from_params(req.params)
        self.begun: frontend_pb2.BeginTxnResponse | None = None
        self._plan: LoadPlan | None = None
        self._router: Router | None = None
        self._pipeline: LoadPipeline | None = None
        self._inflight: asyncio.Task | None = None

    @property
    def counts(self) -> BatchCounts:
        """The counts of the chunks prepared so far."""
        return self._pipeline.counts if self._pipeline is not None else BatchCounts(self._spec.max_error_samples)

    @property
    def txn_id(self) -> int:
        """The task's txn, 0 before the first chunk began it."""
        return self.begun.txn_id if self.begun is not None else 0

    async def add(self, values: list[bytes]) -> None:
        """Hand over the next chunk of message values: wait until the chunk before is written,
        then start this one (the txn begins with the first); raises the failure of the chunk before."""
        await self._drain()
        if not values:
            return
        if self.begun is None:
            await self._begin()
        self._inflight = asyncio.create_task(self._load(values), name=f"routine-load-chunk-{self._req.task_id}")

    def check(self) -> None:
        """Raise now if the chunk being written has failed (the consumer stops at once)."""
        if self._inflight is not None and self._inflight.done() and not self._inflight.cancelled():
            exc = self._inflight.exception()
            if exc is not None:
                self._inflight = None
                raise exc

    async def finish(self) -> WriteOutcome:
        """Wait for the last chunk, refuse a batch over max_filter_ratio, and give the commit infos."""
        await self._drain()
        assert self._pipeline is not None, "finish() before any chunk was added"
        c = self.counts
        considered = c.total_rows - c.unselected_rows
        params = self._req.params
        max_ratio = params.max_filter_ratio if params.HasField("max_filter_ratio") else 1.0
        if considered and c.filtered_rows / considered > max_ratio:
            raise TaskFailed(
                "ERROR_ROWS",
                f"too many filtered rows in a batch: {c.filtered_rows} of {considered} "
                f"({c.filtered_rows / considered:.4f}) > max_filter_ratio {max_ratio:g}; see error_samples",
                [types_pb2.FilteredRow(row=e.row, reason=e.reason) for e in c.errors])
        return self._pipeline.sink.close()

    async def close(self) -> None:
        """Stop the chunk being written, if any (the task failed or is cancelled)."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None and not inflight.done():
            inflight.cancel()
            await asyncio.gather(inflight, return_exceptions=True)

    # ------------------------------------------------------------------ steps
    async def _drain(self) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await inflight

    async def _begin(self) -> None:
        req, coordinator = self._req, self._coordinator
        self.begun = await coordinator.begin(req.db, req.table, req.label, req.timeout_s, "ROUTINE_LOAD_TASK")
        try:
            self._plan, self._router = coordinator.compile(self._spec, self.begun.target)
        except TabletsimError as exc:
            raise TaskFailed("OTHER", str(exc)) from None
        sink = TabletSink(self.begun.txn_id, self._router, coordinator.send, quorum=self.begun.target.quorum)
        self._pipeline = LoadPipeline(sink, self._router, self._spec.max_error_samples)

    async def _load(self, values: list[bytes]) -> None:
        """Prepare the chunk (one worker-thread hop for the CPU-heavy part), then write it."""
        assert self._plan is not None and self._pipeline is not None
        encoded = await self._pipeline.prepare(partial(self._plan.parse_messages, values))
        del values  # only the encoded rows are kept while they are written
        try:
            await self._pipeline.write(encoded, wait=True)
        except TooManyVersions as exc:
            # transient (compaction catches up): the FE retries with a backoff, the job keeps RUNNING
            raise TaskFailed("TOO_MANY_VERSIONS", str(exc)) from None
        except Unavailable as exc:
            raise TaskFailed("TOO_FEW_REPLICAS", f"too few alive replicas for the write quorum: {exc}") from None
