"""Running a node as a process: asyncio main with graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Node(Protocol):
    async def start(self) -> None: ...

    async def stop(self, grace_s: float = 2.0) -> None: ...


async def run_until_signalled(make_node: Callable[[], Node]) -> None:
    """Build the node inside the running loop (gRPC aio objects bind to it), run, stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    node = make_node()
    try:
        await node.start()
        await stop.wait()
        log.info("signal received, stopping")
    finally:
        await node.stop()
