"""A periodic background task with a proper life cycle (start / close), never fire-and-forget."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class PeriodicDaemon:
    """Runs ``step()`` every ``interval_s()`` seconds until closed.

    The interval is read before every round, so a dynamic config change takes effect at once.
    An exception in one round is logged with its traceback and the next round still runs.
    """

    def __init__(self, name: str, interval_s: Callable[[], float], step: Callable[[], Awaitable[None] | None]):
        self.name = name
        self._interval_s = interval_s
        self._step = step
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        """Run the next round now instead of at the end of the interval."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                result = self._step()
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("daemon %s: round failed; next round in %.1f s", self.name, self._interval_s())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s())
            except TimeoutError:
                pass
            self._wake.clear()

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
