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


class _Stub:
    """The FE: answers a report with one finished txn, while a worker thread takes the tablet
    lock for HOLD_S (as a long publish would) right after the report was built."""

    def __init__(self, lock) -> None:
        self._lock = lock
        self.holder: threading.Thread | None = None
        self.holding = threading.Event()

    def _hold(self) -> None:
        with self._lock:
            self.holding.set()
            time.sleep(HOLD_S)

    async def ReportTablets(self, request, timeout=None):  # noqa: N802 - gRPC method name
        self.holder = threading.Thread(target=self._hold)
        self.holder.start()
        await asyncio.to_thread(self.holding.wait, 5)
        return frontend_pb2.ReportTabletsResponse(finished_txn_ids=[7])


def test_a_report_answer_is_handled_without_the_tablet_lock_on_the_loop(tmp_path):
    _store, tablets, rowsets, _cmp = open_store(tmp_path)
    tablets.create([TabletMeta(1, 2, 1, 2, 3, 1, "[]")])
    load(rowsets, 3, 2, [(1,)])
    stub = _Stub(tablets.lock)
    reporter = TabletReporter(60, lambda: 10001, lambda: stub, tablets, rowsets, lambda: set())

    async def scenario() -> float:
        worst = 0.0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal worst
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                worst = max(worst, now - last)
                last = now

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        try:
            await reporter.report_once()
        finally:
            done.set()
            await tick
            stub.holder.join(5)
        return worst

    worst = asyncio.run(scenario())
    assert worst < HOLD_S / 2, f"the event loop stood still {worst:.2f} s behind the tablet lock"
