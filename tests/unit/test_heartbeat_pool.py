"""A BE's heartbeat must not wait behind the BE's other blocking work.

Scans, checksums, writes and publishes run in the event loop's default executor
(``asyncio.to_thread``). The heartbeat used to read its disk figures there too, so a BE whose
pool was busy with a few long reads (a Query and CheckConsistency over 1.8 million rows at the
end of a 30-minute soak) sent no heartbeat for more than heartbeat_timeout_second and the FE
declared it dead. The heartbeat has a thread of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from types import SimpleNamespace

from be.agent.heartbeat import FeLink
from common.config import BeConfig

POOL_THREADS = 2


class _Store:
    storage_dir = "/nonexistent"

    def backend_id(self) -> int:
        return 10001

    def disk_usage(self, capacity: int | None) -> tuple[int, int, int]:
        return 100, 10, 90


WANTED = 5


class _Stub:
    def __init__(self) -> None:
        self.sent: list[float] = []
        self.enough = asyncio.Event()

    async def Heartbeat(self, request, timeout):  # noqa: N802 - gRPC method name
        self.sent.append(time.monotonic())
        if len(self.sent) >= WANTED:
            self.enough.set()
        return SimpleNamespace(need_register=False, heartbeat_interval_ms=0)


def test_heartbeats_go_on_while_every_default_pool_thread_is_busy():
    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=POOL_THREADS)
        loop.set_default_executor(pool)
        release = threading.Event()
        busy = [asyncio.to_thread(release.wait, 30) for _ in range(POOL_THREADS * 2)]  # long reads
        busy_tasks = [asyncio.ensure_future(b) for b in busy]
        config = BeConfig(storage_dir="/nonexistent", fe_address="127.0.0.1:1", cluster_token="t",
                          heartbeat_interval_ms=50)
        link = FeLink(config, _Store(), start_time_ms=1, tablet_count=lambda: 0)
        stub = _Stub()
        link._stub = stub
        try:
            link.start()
            await asyncio.wait([asyncio.ensure_future(stub.enough.wait())], timeout=3.0)
            return len(stub.sent)
        finally:
            release.set()
            await asyncio.gather(*busy_tasks)
            await link.close()

    sent = asyncio.run(scenario())
    assert sent >= WANTED, f"only {sent} heartbeats in 3 s while the default executor was busy (interval 50 ms)"
