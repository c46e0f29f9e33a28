"""Group commit: the thread that makes journal records durable.

``Journal.log`` gives a record its seq and applies it on the event loop at once, then queues it
here. One writer thread takes everything queued (up to :data:`MAX_GROUP_RECORDS`), writes it in
one RocksDB WriteBatch and syncs once: while a sync runs, the records logged meanwhile gather
into the next group, so a busy FE pays one sync for many records and the loop never waits for
a disk.

Nothing may leave the FE before the records it may depend on are durable. Code that sends or
answers awaits :meth:`GroupCommitWriter.wait` for the last seq handed out (fe/persist/durability.py
does it for every RPC the FE serves or sends); threads (a checkpoint) use
:meth:`GroupCommitWriter.wait_blocking`.

A failed write is fatal, as in StarRocks (which exits when an edit log write fails): memory is
already ahead of the disk, and an FE that went on would acknowledge what a restart forgets. The
writer stops, every waiter (now and later) gets :class:`JournalWriteFailed`, and ``on_fatal``
runs: :func:`exit_process` in the FE, which logs the traceback and ends the process. A restart
replays what was written.

States of one record: prepared (seq given, applied in memory) -> queued -> written and synced
(``durable_seq`` covers it). Invariant: ``durable_seq <= last queued seq``, and every record up
to ``durable_seq`` is on disk.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_GROUP_RECORDS = 4096  # one WriteBatch; rocksdict holds the GIL while it inserts (~1 us a record)
JOURNAL_FAILURE_EXIT_CODE = 74  # EX_IOERR


class JournalWriteFailed(RuntimeError):
    """The edit log could not be written; the FE must stop (its memory is ahead of its disk)."""


def exit_process(exc: BaseException) -> None:
    """``on_fatal`` of a real FE: log the failure with its traceback and end the process now."""
    log.critical("edit log write failed: the FE stops so that it never serves state its disk does "
                 "not hold (StarRocks exits on an edit log write failure too). Check the disk of the "
                 "meta dir, then restart the FE: it replays what was written", exc_info=exc)
    _flush_log_handlers()  # os._exit skips every handler's own flush
    os._exit(JOURNAL_FAILURE_EXIT_CODE)


def _flush_log_handlers() -> None:
    logger: logging.Logger | None = log
    while logger is not None:
        for handler in logger.handlers:
            handler.flush()
        logger = logger.parent if logger.propagate else None


Write = Callable[[list[tuple[int, bytes]]], None]


class GroupCommitWriter:
    """Writes queued ``(seq, bytes)`` records in groups through ``write`` (one batch, one sync)."""

    def __init__(self, write: Write, on_fatal: Callable[[BaseException], None],
                 max_group_records: int = MAX_GROUP_RECORDS) -> None:
        self._write = write
        self._on_fatal = on_fatal
        self._max_group = max_group_records
        self._cond = threading.Condition()
        self._queue: deque[tuple[int, bytes]] = deque()
        self._queued_seq = 0  # last seq queued or written in place
        self._durable_seq = 0
        self._writing = False
        self._failure: JournalWriteFailed | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        self._waiters: list[tuple[int, int, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._order = itertools.count()
        self.groups = 0  # batches written (one sync each)
        self.records = 0  # records written

    def start_at(self, seq: int) -> None:
        """Everything up to ``seq`` is on disk already (the replayed log)."""
        with self._cond:
            if self._queue or self._writing:
                raise RuntimeError("the journal writer was repositioned while records were queued")
            self._queued_seq = self._durable_seq = seq

    @property
    def durable_seq(self) -> int:
        return self._durable_seq

    def check(self) -> None:
        """Raise if no record may be logged any more (a write failed, or the writer is closed)."""
        if self._failure is not None:
            raise self._failure
        if self._closing:
            raise RuntimeError("the journal is closed: no record can be logged")

    # ------------------------------------------------------------------ writing
    def submit(self, seq: int, payload: bytes) -> None:
        """Queue one record for the writer thread (seqs in increasing order)."""
        with self._cond:
            self.check()
            if seq <= self._queued_seq:
                raise ValueError(f"journal record {seq} queued after record {self._queued_seq}")
            self._queue.append((seq, payload))
            self._queued_seq = seq
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fe-journal-writer", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def write_through(self, seq: int, payload: bytes) -> None:
        """Write one record in this thread, synced, after whatever is queued (no event loop to
        keep free: tools, synchronous tests)."""
        with self._cond:
            self.check()
            while self._queue or self._writing:
                self._cond.wait()
                self.check()
            if seq <= self._queued_seq:
                raise ValueError(f"journal record {seq} written after record {self._queued_seq}")
            self._queued_seq = seq
            try:
                self._write([(seq, payload)])
            except BaseException as exc:  # noqa: BLE001 - fatal: _fail stops the process
                failure = exc
            else:
                failure = None
                self._durable_seq = seq
                self.groups += 1
                self.records += 1
        if failure is not None:
            self._fail(failure, seq, seq)
            raise self._failure from failure

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return  # closing, and everything is written
                group = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_group))]
                self._writing = True
            try:
                self._write(group)
            except BaseException as exc:  # noqa: BLE001 - fatal: _fail stops the process
                self._fail(exc, group[0][0], group[-1][0])
                return
            with self._cond:
                self._writing = False
                self._durable_seq = group[-1][0]
                self.groups += 1
                self.records += len(group)
                self._cond.notify_all()
                ready = []
                while self._waiters and self._waiters[0][0] <= self._durable_seq:
                    ready.append(heapq.heappop(self._waiters))
            self._wake(ready, None)

    def _fail(self, exc: BaseException, first: int, last: int) -> None:
        with self._cond:
            self._failure = JournalWriteFailed(
                f"writing edit log records {first}..{last} failed ({type(exc).__name__}: {exc}); "
                f"records up to {self._durable_seq} are on disk")
            self._failure.__cause__ = exc
            self._writing = False
            self._queue.clear()
            ready, self._waiters = self._waiters, []
            self._cond.notify_all()
        self._wake(ready, self._failure)
        self._on_fatal(exc)

    # ------------------------------------------------------------------ waiting
    async def wait(self, seq: int) -> None:
        """Return once every record up to ``seq`` is durable (at once if it is)."""
        with self._cond:
            if self._durable_seq >= seq:
                return
            if self._failure is not None:
                raise self._failure
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            heapq.heappush(self._waiters, (seq, next(self._order), loop, future))
        await future

    def wait_blocking(self, seq: int) -> None:
        """:meth:`wait` for a thread that has no event loop to keep free."""
        with self._cond:
            while self._durable_seq < seq:
                if self._failure is not None:
                    raise self._failure
                self._cond.wait()

    @staticmethod
    def _wake(waiters: list[tuple[int, int, asyncio.AbstractEventLoop, asyncio.Future]],
              failure: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
        for _, _, loop, future in waiters:
            by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, futures, failure)
            except RuntimeError:
                pass  # that loop is closed: nobody waits there any more

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()


def _settle(futures: list[asyncio.Future], failure: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue  # the waiter was cancelled
        if failure is None:
            future.set_result(None)
        else:
            future.set_exception(failure)
