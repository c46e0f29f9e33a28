"""One txn's rows loaded piece by piece: each piece prepared off the loop while the one before is written.

A piece (a Kafka chunk of a routine load task, or a few MB of a Stream Load body cut at row
delimiters) is parsed, mapped, routed and encoded in one worker-thread hop (:func:`prepare`), then
written to the replicas of its tablets through the txn's :class:`TabletSink`, in a task, while the
caller prepares the next piece: so at most two pieces' objects are held, the one being written and
the one being prepared. The pieces' counts and filtered-row samples add up to those of the whole
input mapped in one piece (:class:`BatchCounts`); the caller checks max_filter_ratio on them once
every piece is written, and aborts the txn when it is over (the FE's abort clears the segments
already written on every BE).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from be.load.router import Router
from be.load.writer import Chunk, TabletSink, encode_tablet_tables
from common import columnar
from common.loadformat import BatchResult, FilteredRow

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A batch parsed, mapped and routed, ready to replicate."""

    batch: BatchResult
    encoded: dict[int, list[Chunk]]
    filtered: int
    errors: list[FilteredRow]
    """The batch's own samples (parse and mapping), then those of rows no partition takes."""


def prepare(batch: BatchResult, router: Router, max_samples: int = 20) -> Prepared:
    """Route the batch's table and encode each tablet's rows as columnar segments (no row
    tuples: a batch parsed into rows only is made a table first)."""
    table = batch.table if getattr(batch, "table", None) is not None else \
        columnar.table_from_rows(batch.rows, router.schema)
    errors = list(batch.errors)
    by_tablet, rejected = router.route_table(table, max(0, max_samples - len(errors)))
    del table
    errors.extend(FilteredRow(row=row, reason=reason) for row, reason in rejected.samples)
    encoded = encode_tablet_tables(router, by_tablet)
    return Prepared(batch, encoded, batch.filtered_rows + rejected.count, errors)


@dataclass
class BatchCounts:
    """The row counts of the pieces prepared so far (a routine load's commit attachment carries them)."""

    max_samples: int = 20
    total_rows: int = 0
    unselected_rows: int = 0
    filtered_rows: int = 0
    row_errors: list[FilteredRow] = field(default_factory=list)
    """The first max_samples rows filtered by parsing and mapping."""
    routing_errors: list[FilteredRow] = field(default_factory=list)
    """The first max_samples rows no partition takes."""
    chunks: int = 0
    prepare_ms: int = 0
    """Time spent parsing, mapping, routing and encoding the pieces (in a worker thread)."""
    write_ms: int = 0
    """Time spent writing the pieces to the replicas of their tablets."""

    @property
    def errors(self) -> list[FilteredRow]:
        """The samples as one piece would give them: the rows parsing filtered, then unrouted ones."""
        return (self.row_errors + self.routing_errors)[: self.max_samples]

    def add(self, prepared: Prepared) -> None:
        batch = prepared.batch
        self.chunks += 1
        self.total_rows += batch.total_rows
        self.unselected_rows += batch.unselected_rows
        self.filtered_rows += prepared.filtered
        self.row_errors.extend(batch.errors[: max(0, self.max_samples - len(self.row_errors))])
        self.routing_errors.extend(
            prepared.errors[len(batch.errors):][: max(0, self.max_samples - len(self.routing_errors))])


class LoadPipeline:
    """Prepare and write one txn's pieces (see the module docstring).

    Call :meth:`prepare` then :meth:`write` for each piece in order (``wait`` for the last), and
    :meth:`close` in any case: it stops a piece still being written when the load fails."""

    def __init__(self, sink: TabletSink, router: Router, max_samples: int) -> None:
        self.sink = sink
        self._router = router
        self.counts = BatchCounts(max_samples=max_samples)
        self._inflight: asyncio.Task | None = None

    async def prepare(self, parse: Callable[[int], BatchResult]) -> dict[int, list[Chunk]]:
        """Map the next piece and encode its tablets' segments in a worker thread, while the piece
        before is being written; ``parse(first_row)`` maps it, given the rows of the pieces before."""
        t0 = time.perf_counter()
        prepared = await asyncio.to_thread(self._prepare, parse, self.counts.total_rows)
        self.counts.prepare_ms += int((time.perf_counter() - t0) * 1000)
        self.counts.add(prepared)
        return prepared.encoded

    def _prepare(self, parse: Callable[[int], BatchResult], first_row: int) -> Prepared:
        return prepare(parse(first_row), self._router, self.counts.max_samples)

    async def write(self, encoded: dict[int, list[Chunk]], *, wait: bool = False) -> None:
        """Write a prepared piece once the piece before is written (whose failure this raises): in a
        task, or here with ``wait`` (the last piece)."""
        await self.drain()
        if wait:
            await self._write(encoded)
        else:
            self._inflight = asyncio.create_task(self._write(encoded), name=f"load-piece-txn-{self.sink.txn_id}")

    async def _write(self, encoded: dict[int, list[Chunk]]) -> None:
        t0 = time.perf_counter()
        await self.sink.write(encoded)
        self.counts.write_ms += int((time.perf_counter() - t0) * 1000)

    async def drain(self) -> None:
        """Wait until the piece being written is written; raise its failure."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await inflight

    async def close(self) -> None:
        """Stop the piece being written, if any (the load failed or is cancelled)."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None and not inflight.done():
            inflight.cancel()
        if inflight is not None:
            await asyncio.gather(inflight, return_exceptions=True)
