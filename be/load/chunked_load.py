"""A routine load task's batch, loaded chunk by chunk inside the task's one transaction.

The consumer hands the batch over a chunk at a time (about ``write_buffer_size`` bytes of message
values). Each chunk is parsed and mapped into an Arrow table, routed on whole columns, encoded as
columnar segments and written to the replicas of its tablets while the consumer reads the next
one; the consumer waits (its "blocking put time") while the chunk before is still being written.
So a task holds at most two chunks and the objects made from one of them, whatever
max_batch_size is - as a StarRocks routine load task streams its Kafka batch through a pipe into
the tablet sink, whose delta writers flush memtables into the segments of one pending rowset per
tablet (be/load/writer.py TabletSink, be/storage/rowsets.py). Measured on the routine load bench
(400,000 ~100-byte JSON rows, 3 tasks): 16 MiB chunks load about a third faster than 4 MiB ones,
whose consumers wait for the chunk before and miss the end of their partitions within the batch
interval (common/config.py write_buffer_size).

The txn begins with the first chunk. Row counts, error samples and max_filter_ratio cover the
whole batch: the ratio is checked once every chunk is written (as StarRocks checks it at the end
of the task), and a batch over it fails the task, whose txn is then aborted - the FE's abort
clears the segments already written on every BE.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from be.load.coordinator import LoadCoordinator, Prepared, spec_from_params
from be.load.router import Router
from be.load.writer import Chunk, TabletSink, TooManyVersions, WriteOutcome
from common.errors import TabletsimError, Unavailable
from common.gen.tabletsim.v1 import backend_pb2, frontend_pb2, types_pb2
from common.loadformat import FilteredRow, LoadPlan

log = logging.getLogger(__name__)


class TaskFailed(Exception):
    def __init__(self, kind: str, message: str, samples: list[types_pb2.FilteredRow] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.samples = samples or []


@dataclass
class BatchCounts:
    """The row counts of the chunks written so far, as the commit attachment carries them."""

    total_rows: int = 0
    unselected_rows: int = 0
    filtered_rows: int = 0
    errors: list[FilteredRow] = field(default_factory=list)
    """The first max_error_samples filtered rows of the batch."""
    chunks: int = 0
    prepare_ms: int = 0
    """Time spent parsing, mapping, routing and encoding the chunks (in a worker thread)."""
    write_ms: int = 0
    """Time spent writing the chunks to the replicas of their tablets."""


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
        self._sink: TabletSink | None = None
        self.counts = BatchCounts()
        self._inflight: asyncio.Task | None = None

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
        assert self._sink is not None, "finish() before any chunk was added"
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
        return self._sink.close()

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
        self._sink = TabletSink(self.begun.txn_id, self._router, coordinator.send, quorum=self.begun.target.quorum)

    async def _load(self, values: list[bytes]) -> None:
        assert self._plan is not None and self._router is not None and self._sink is not None
        c = self.counts
        t0 = time.perf_counter()
        prepared = await asyncio.to_thread(self._prepare, values, c.total_rows)
        del values
        t1 = time.perf_counter()
        c.prepare_ms += int((t1 - t0) * 1000)
        batch = prepared.batch
        c.chunks += 1
        c.total_rows += batch.total_rows
        c.unselected_rows += batch.unselected_rows
        c.filtered_rows += prepared.filtered
        c.errors.extend(prepared.errors[: max(0, self._spec.max_error_samples - len(c.errors))])
        encoded: dict[int, list[Chunk]] = prepared.encoded
        del batch, prepared  # only the encoded rows are kept while they are written
        try:
            await self._sink.write(encoded)
            c.write_ms += int((time.perf_counter() - t1) * 1000)
        except TooManyVersions as exc:
            # transient (compaction catches up): the FE retries with a backoff, the job keeps RUNNING
            raise TaskFailed("TOO_MANY_VERSIONS", str(exc)) from None
        except Unavailable as exc:
            raise TaskFailed("TOO_FEW_REPLICAS", f"too few alive replicas for the write quorum: {exc}") from None

    def _prepare(self, values: list[bytes], first_row: int) -> Prepared:
        """Parse and map the chunk into a table, route it and encode each tablet's segments (in a
        worker thread: one hop for the whole CPU-heavy part)."""
        assert self._plan is not None and self._router is not None
        batch = self._plan.parse_messages(values, first_row)
        return self._coordinator.prepare(batch, self._router, self._spec.max_error_samples)
