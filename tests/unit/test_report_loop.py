"""The BE's tablet report never takes the tablet lock on the event loop.

Publishes, clone installs, compaction swaps, creates and drops hold the one tablet lock
(``TabletManager.lock``), in worker threads, for as long as their RocksDB writes take. The
report handler used to read the pending rowsets (and forget dropped tablets) under that lock on
the loop, so a long holder stalled every RPC and the heartbeat of the BE with it.
"""

from __future__ import annotations

import asyncio
import threading
import time

from be.agent.report import TabletReporter
from be.storage.tablets import TabletMeta
from common.gen.tabletsim.v1 import frontend_pb2
from tests.unit.test_compaction import load, open_store

HOLD_S = 0.8
PROBES = 20


class _Stub:
    """The FE: answers a report with one finished txn, while a worker thread takes the tablet
    lock (as a long publish would) right after the report was built. The holder keeps the lock
    until a prober thread has seen the event loop run PROBES callbacks, or HOLD_S at most."""

    def __init__(self, lock, loop: asyncio.AbstractEventLoop) -> None:
        self._lock = lock
        self._loop = loop
        self.holder: threading.Thread | None = None
        self.holding = threading.Event()
        self.worst = 0.0  # the longest the loop took to run a callback while the lock was held

    def _hold(self) -> None:
        with self._lock:
            self.holding.set()
            deadline = time.monotonic() + HOLD_S
            for _ in range(PROBES):
                ran = threading.Event()
                posted = time.monotonic()
                self._loop.call_soon_threadsafe(ran.set)
                if not ran.wait(max(0.0, deadline - time.monotonic())):
                    self.worst = max(self.worst, time.monotonic() - posted)
                    return  # the loop did not turn while the lock was held
                self.worst = max(self.worst, time.monotonic() - posted)

    async def ReportTablets(self, request, timeout=None):  # noqa: N802 - gRPC method name
        self.holder = threading.Thread(target=self._hold)
        self.holder.start()
        await asyncio.to_thread(self.holding.wait, 5)
        return frontend_pb2.ReportTabletsResponse(finished_txn_ids=[7])


def test_a_report_answer_is_handled_without_the_tablet_lock_on_the_loop(tmp_path):
    _store, tablets, rowsets, _cmp = open_store(tmp_path)
    tablets.create([TabletMeta(1, 2, 1, 2, 3, 1, "[]")])
    load(rowsets, 3, 2, [(1,)])

    async def scenario() -> float:
        stub = _Stub(tablets.lock, asyncio.get_running_loop())
        reporter = TabletReporter(60, lambda: 10001, lambda: stub, tablets, rowsets, lambda: set())
        await reporter.report_once()
        await asyncio.to_thread(stub.holder.join, 5)
        return stub.worst

    worst = asyncio.run(scenario())
    assert worst < HOLD_S / 2, f"the event loop stood still {worst:.2f} s behind the tablet lock"
